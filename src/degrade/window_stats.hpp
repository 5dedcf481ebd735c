#pragma once
// What one model's pool did over the last degrade.window, for the triggers:
// p95 of the time to first token and of the wait in a backend's line, and
// the share of failed answers. A ring of one-second slots, each a small
// histogram (log-spaced buckets, 1 ms to 2 min), merged when read; older
// slots fall out as time moves on. Pure and thread-safe; time is injected.
// Every answer is recorded, by every worker: each worker writes a ring of
// its own (observe::per_worker), and read() merges them.
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "observe/per_worker.hpp"

namespace llmgate::degrade {

class window_stats {
public:
  explicit window_stats(std::chrono::nanoseconds window);

  void record_ttft(double seconds, std::chrono::nanoseconds now);
  void record_queue_wait(double seconds, std::chrono::nanoseconds now);
  void record_answer(bool failed, std::chrono::nanoseconds now);

  struct summary {
    double ttft_p95 = 0, queue_wait_p95 = 0, error_rate = 0;
    std::uint64_t answers = 0, ttfts = 0, waits = 0; // samples behind them (a p95 of nothing is NaN)
  };
  [[nodiscard]] summary read(std::chrono::nanoseconds now) const;

  static constexpr std::size_t k_buckets = 24;

private:
  struct slot {
    std::int64_t second = -1;
    std::array<std::uint32_t, k_buckets> ttft{}, wait{};
    std::uint32_t answers = 0, failed = 0;
  };
  using ring = std::vector<slot>; // one slot per second of the window
  static slot& current(ring& r, std::chrono::nanoseconds now);
  static std::size_t bucket(double seconds);
  static double p95(const std::array<std::uint64_t, k_buckets>& counts, std::uint64_t total);

  std::size_t seconds_;
  observe::per_worker<ring> rings_;
};

} // namespace llmgate::degrade
