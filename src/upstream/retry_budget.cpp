#include "upstream/retry_budget.hpp"

#include "observe/second_ring.hpp"

#include <algorithm>

namespace llmgate::upstream {

namespace {
std::size_t seconds_in(std::chrono::nanoseconds window) {
  return static_cast<std::size_t>(
      std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(window).count()));
}
} // namespace

retry_budget::retry_budget(double ratio, double min_per_second, nanos window)
    : ratio_(ratio), min_per_second_(min_per_second), requests_(ring(seconds_in(window))),
      retries_(seconds_in(window)) {}

retry_budget::bucket& retry_budget::current(ring& r, nanos now) { return observe::slot_at(r, now); }

std::uint64_t retry_budget::sum(const ring& r, nanos now) {
  std::uint64_t total = 0;
  for (const auto& b : r)
    if (observe::in_window(r, b, now)) total += b.count;
  return total;
}

retry_budget::figures retry_budget::sum(nanos now) const {
  figures f;
  requests_.each([&](const ring& r) { f.requests += sum(r, now); });
  f.retries = sum(retries_, now);
  return f;
}

void retry_budget::on_request(nanos now) {
  requests_.mine([&](ring& r) { ++current(r, now).count; });
}

bool retry_budget::try_retry(nanos now) {
  std::lock_guard lock(mutex_);
  const auto f = sum(now);
  const double allowed =
      ratio_ * static_cast<double>(f.requests) + min_per_second_ * static_cast<double>(retries_.size());
  if (static_cast<double>(f.retries + 1) > allowed) return false;
  ++current(retries_, now).count;
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
