#include "upstream/retry_budget.hpp"

#include <algorithm>

namespace llmgate::upstream {

retry_budget::retry_budget(double ratio, double min_per_second, nanos window)
    : ratio_(ratio), min_per_second_(min_per_second),
      buckets_(static_cast<std::size_t>(
          std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(window).count()))) {}

retry_budget::bucket& retry_budget::current(nanos now) {
  const auto second = std::chrono::duration_cast<std::chrono::seconds>(now).count();
  auto& b = buckets_[static_cast<std::size_t>(second) % buckets_.size()];
  if (b.second != second) b = bucket{second, 0, 0}; // a second that fell out of the window
  return b;
}

retry_budget::figures retry_budget::sum(nanos now) const {
  const auto second = std::chrono::duration_cast<std::chrono::seconds>(now).count();
  const auto oldest = second - static_cast<std::int64_t>(buckets_.size()) + 1;
  figures f;
  for (const auto& b : buckets_)
    if (b.second >= oldest && b.second <= second) {
      f.requests += b.requests;
      f.retries += b.retries;
    }
  return f;
}

void retry_budget::on_request(nanos now) {
  std::lock_guard lock(mutex_);
  ++current(now).requests;
}

bool retry_budget::try_retry(nanos now) {
  std::lock_guard lock(mutex_);
  auto& b = current(now);
  const auto f = sum(now);
  const double allowed =
      ratio_ * static_cast<double>(f.requests) + min_per_second_ * static_cast<double>(buckets_.size());
  if (static_cast<double>(f.retries + 1) > allowed) return false;
  ++b.retries;
  return true;
}

retry_budget::figures retry_budget::in_window(nanos now) {
  std::lock_guard lock(mutex_);
  return sum(now);
}

std::chrono::nanoseconds full_jitter_backoff(int retry, std::chrono::nanoseconds base, std::chrono::nanoseconds cap,
                                             std::mt19937_64& rng) {
  if (retry < 1 || base.count() <= 0) return std::chrono::nanoseconds{0};
  auto ceiling = base;
  for (int i = 1; i < retry && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  std::uniform_int_distribution<std::int64_t> d(0, ceiling.count());
  return std::chrono::nanoseconds{d(rng)};
}

} // namespace llmgate::upstream
