#include "degrade/window_stats.hpp"

#include "observe/second_ring.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace llmgate::degrade {

namespace {

// Bucket i holds values up to 1 ms × 1.6^i (the last one everything above
// ~2 min). Worked out once: a half-second first token cost 13 calls to pow.
const auto k_bounds = [] {
  std::array<double, window_stats::k_buckets> b{};
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.001 * std::pow(1.6, static_cast<double>(i));
  return b;
}();
double upper_bound(std::size_t i) { return k_bounds[i]; }

} // namespace

window_stats::window_stats(std::chrono::nanoseconds window)
    : seconds_(
          static_cast<std::size_t>(std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(window).count()))),
      rings_(ring(seconds_)) {}

std::size_t window_stats::bucket(double seconds) {
  for (std::size_t i = 0; i + 1 < k_buckets; ++i)
    if (seconds <= upper_bound(i)) return i;
  return k_buckets - 1;
}

window_stats::slot& window_stats::current(ring& r, std::chrono::nanoseconds now) { return observe::slot_at(r, now); }

void window_stats::record_ttft(double seconds, std::chrono::nanoseconds now) {
  rings_.mine([&](ring& r) { ++current(r, now).ttft[bucket(seconds)]; });
}

void window_stats::record_queue_wait(double seconds, std::chrono::nanoseconds now) {
  rings_.mine([&](ring& r) { ++current(r, now).wait[bucket(seconds)]; });
}

void window_stats::record_answer(bool failed, std::chrono::nanoseconds now) {
  rings_.mine([&](ring& r) {
    auto& s = current(r, now);
    ++s.answers;
    if (failed) ++s.failed;
  });
}

double window_stats::p95(const std::array<std::uint64_t, k_buckets>& counts, std::uint64_t total) {
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();
  const auto rank = static_cast<std::uint64_t>(std::ceil(0.95 * static_cast<double>(total)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < k_buckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return upper_bound(i);
  }
  return upper_bound(k_buckets - 1);
}

window_stats::summary window_stats::read(std::chrono::nanoseconds now) const {
  std::array<std::uint64_t, k_buckets> ttft{}, wait{};
  summary out;
  std::uint64_t failed = 0;
  rings_.each([&](const ring& r) {
    for (const auto& s : r) {
      if (!observe::in_window(r, s, now)) continue;
      for (std::size_t i = 0; i < k_buckets; ++i) {
        ttft[i] += s.ttft[i];
        wait[i] += s.wait[i];
        out.ttfts += s.ttft[i];
        out.waits += s.wait[i];
      }
      out.answers += s.answers;
      failed += s.failed;
    }
  });
  out.ttft_p95 = p95(ttft, out.ttfts);
  out.queue_wait_p95 = p95(wait, out.waits);
  out.error_rate = out.answers ? static_cast<double>(failed) / static_cast<double>(out.answers)
                               : std::numeric_limits<double>::quiet_NaN();
  return out;
}

} // namespace llmgate::degrade
