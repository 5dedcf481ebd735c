#pragma once
// What one model's pool did over the last degrade.window, for the triggers:
// p95 of the time to first token and of the wait in a backend's line, and
// the share of failed answers. A ring of one-second slots, each a small
// histogram (log-spaced buckets, 1 ms to 2 min), merged when read; older
// slots fall out as time moves on. Pure and thread-safe; time is injected.
// Every answer is recorded, by every worker: each worker writes a ring of
// its own (the shard of observe::set_shard, under a lock and on cache lines
// no other worker writes), and read() merges them.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

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
  struct alignas(64) ring {
    mutable std::mutex m;
    std::vector<slot> slots;
  };
  ring& mine();                                                // this thread's
  static slot& current(ring& r, std::chrono::nanoseconds now); // under r.m
  static std::size_t bucket(double seconds);
  static double p95(const std::array<std::uint64_t, k_buckets>& counts, std::uint64_t total);

  std::unique_ptr<ring[]> rings_; // one per metrics shard (observe::k_shards)
  std::size_t slots_per_ring_;
};

} // namespace llmgate::degrade
