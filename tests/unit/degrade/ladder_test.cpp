#include "degrade/ladder.hpp"
#include "degrade/window_stats.hpp"
#include "observe/metrics.hpp"

#include <gtest/gtest.h>
#include <thread>
#include <vector>

namespace llmgate::degrade {
namespace {

using namespace std::chrono_literals;
using control::signal;

TEST(ladder, a_tier_is_degraded_only_from_its_level) {
  EXPECT_EQ(applied_level(0, 1), 0);
  EXPECT_EQ(applied_level(1, 1), 1);
  EXPECT_EQ(applied_level(2, 3), 0) << "gold (from L3) keeps full service at L2";
  EXPECT_EQ(applied_level(3, 3), 3);
  EXPECT_EQ(applied_level(4, 1), 4);
}

TEST(ladder, the_highest_trigger_above_its_threshold_sets_the_target) {
  const std::vector<control::trigger_config> triggers{
      {signal::gpu_temp, 80, 1}, {signal::gpu_temp, 90, 3}, {signal::breakers_open, 0.5, 2}};
  auto v = unknown_signals();
  EXPECT_EQ(target_level(triggers, v), 0) << "unknown signals ask for nothing";
  at(v, signal::gpu_temp) = 80;
  EXPECT_EQ(target_level(triggers, v), 0) << "above, not at";
  at(v, signal::gpu_temp) = 85;
  EXPECT_EQ(target_level(triggers, v), 1);
  at(v, signal::breakers_open) = 0.75;
  EXPECT_EQ(target_level(triggers, v), 2);
  at(v, signal::gpu_temp) = 95;
  EXPECT_EQ(target_level(triggers, v), 3);
}

TEST(ladder, rises_at_once_and_falls_one_step_per_dwell) {
  model_ladder l;
  EXPECT_EQ(l.level(), 0);
  EXPECT_EQ(l.on_target(3, 0s, 30s), 3) << "up at once";
  EXPECT_EQ(l.on_target(0, 1s, 30s), std::nullopt) << "the dwell starts";
  EXPECT_EQ(l.on_target(0, 30s, 30s), std::nullopt);
  EXPECT_EQ(l.on_target(0, 31s, 30s), 2) << "one step after a whole dwell";
  EXPECT_EQ(l.on_target(0, 40s, 30s), std::nullopt);
  EXPECT_EQ(l.on_target(2, 45s, 30s), std::nullopt) << "asked for again: it stays";
  EXPECT_EQ(l.on_target(0, 50s, 30s), std::nullopt) << "a new dwell starts";
  EXPECT_EQ(l.on_target(0, 79s, 30s), std::nullopt);
  EXPECT_EQ(l.on_target(0, 80s, 30s), 1);
  EXPECT_EQ(l.on_target(0, 110s, 30s), 0);
  EXPECT_EQ(l.on_target(0, 200s, 30s), std::nullopt);
  EXPECT_EQ(l.level(), 0);
}

TEST(ladder, a_level_set_by_hand_overrides_the_triggers_until_released) {
  model_ladder l(2); // set by config
  EXPECT_EQ(l.level(), 2);
  EXPECT_EQ(l.on_target(4, 0s, 30s), std::nullopt) << "the triggers are followed underneath, not applied";
  EXPECT_EQ(l.state().automatic, 4);
  EXPECT_EQ(l.set_manual(1), 1);
  EXPECT_EQ(l.release(), 4) << "released: the triggers' level at once";
  EXPECT_FALSE(l.state().manual);
  EXPECT_EQ(l.set_manual(9), std::nullopt) << "clamped to L4, where it already is";
  EXPECT_EQ(l.state().manual, 4);
}

// Each worker records into a ring of its own (its metrics shard); a read
// merges them: answers and first tokens from four threads on four shards.
TEST(window_stats, what_every_worker_records_is_read_together) {
  window_stats w(10s);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&w, t] {
      observe::set_shard(t);
      for (int i = 0; i < 1000; ++i) {
        w.record_answer(t == 0 && i < 100, 50s);
        w.record_ttft(t == 3 ? 8.0 : 0.1, 50s);
      }
    });
  for (auto& th : threads) th.join();
  const auto s = w.read(50s);
  EXPECT_EQ(s.answers, 4000u);
  EXPECT_NEAR(s.error_rate, 100.0 / 4000.0, 1e-9);
  EXPECT_EQ(s.ttfts, 4000u);
  EXPECT_GT(s.ttft_p95, 7.0) << "the slow quarter, all from one worker, sets the p95";
}

TEST(window_stats, p95s_and_error_rate_over_the_window_only) {
  window_stats w(10s);
  for (int i = 0; i < 95; ++i) w.record_ttft(0.1, 100s);
  for (int i = 0; i < 5; ++i) w.record_ttft(8.0, 101s);
  auto s = w.read(101s);
  EXPECT_EQ(s.ttfts, 100u);
  EXPECT_GE(s.ttft_p95, 0.1);
  EXPECT_LT(s.ttft_p95, 0.2) << "the 95th of 100 is still a fast one";
  w.record_ttft(8.0, 102s);
  EXPECT_GT(w.read(102s).ttft_p95, 7.0) << "one more slow one tips it";
  EXPECT_TRUE(std::isnan(w.read(102s).queue_wait_p95)) << "no samples: unknown";
  for (int i = 0; i < 3; ++i) w.record_answer(i == 0, 103s);
  EXPECT_NEAR(w.read(103s).error_rate, 1.0 / 3.0, 1e-9);
  EXPECT_EQ(w.read(111s).ttfts, 1u) << "ten seconds on, only the one of 102 s is left";
  EXPECT_EQ(w.read(112s).ttfts, 0u);
  EXPECT_EQ(w.read(112s).answers, 3u);
  EXPECT_EQ(w.read(113s).answers, 0u);
  w.record_answer(false, 200s);
  EXPECT_EQ(w.read(200s).answers, 1u) << "a reused slot starts afresh";
}

} // namespace
} // namespace llmgate::degrade
