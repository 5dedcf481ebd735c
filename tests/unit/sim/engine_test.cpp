#include "sim/engine.hpp"

#include <algorithm>
#include <chrono>
#include <gtest/gtest.h>
#include <vector>

namespace llmgate::sim {
namespace {

using namespace std::chrono_literals;

// Round numbers so expected step times are easy to read: 10 ms + 1 ms a
// sequence, 1 µs a prompt token, two sequences at most, 1000 KV tokens.
profile test_profile() {
  profile p;
  p.name = "test";
  p.step_base = 10ms;
  p.step_per_seq = 1ms;
  p.prefill_per_token = 1us;
  p.max_running = 2;
  p.kv_capacity_tokens = 1000;
  return p;
}

std::vector<std::uint64_t> ids(const std::vector<engine::progress>& progress) {
  std::vector<std::uint64_t> out;
  for (const auto& p : progress) out.push_back(p.id);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(engine, idle_engine_takes_no_time) {
  engine e(test_profile());
  EXPECT_TRUE(e.idle());
  EXPECT_EQ(e.begin_step().count(), 0);
  EXPECT_TRUE(e.end_step().empty());
}

TEST(engine, step_duration_grows_with_batch_size) {
  engine e(test_profile());
  e.add(1, 0, 10);
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(11ms));
  (void)e.end_step();
  e.add(2, 0, 10);
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(12ms));
  (void)e.end_step();
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(12ms));
}

TEST(engine, prefill_is_paid_in_the_joining_step_only) {
  engine e(test_profile());
  e.add(1, 500, 10);
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(11ms + 500us));
  (void)e.end_step();
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(11ms));
}

TEST(engine, max_running_caps_the_batch) {
  engine e(test_profile());
  e.add(1, 0, 2);
  e.add(2, 0, 2);
  e.add(3, 0, 2);
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(12ms));
  EXPECT_EQ(e.running(), 2u);
  EXPECT_EQ(e.waiting(), 1u);
  EXPECT_EQ(ids(e.end_step()), (std::vector<std::uint64_t>{1, 2}));

  (void)e.begin_step();
  EXPECT_EQ(e.waiting(), 1u); // still full
  auto done = e.end_step();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_TRUE(done[0].finished);
  EXPECT_TRUE(done[1].finished);
  EXPECT_EQ(e.running(), 0u);

  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(11ms)); // the waiting one joins
  EXPECT_EQ(e.running(), 1u);
  EXPECT_EQ(e.waiting(), 0u);
  EXPECT_EQ(ids(e.end_step()), (std::vector<std::uint64_t>{3}));
}

TEST(engine, one_token_per_step) {
  engine e(test_profile());
  e.add(7, 0, 3);
  for (std::int64_t step = 1; step <= 3; ++step) {
    (void)e.begin_step();
    const auto p = e.end_step();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].id, 7u);
    EXPECT_EQ(p[0].generated, step);
    EXPECT_EQ(p[0].finished, step == 3);
  }
  EXPECT_TRUE(e.idle());
  EXPECT_EQ(e.begin_step().count(), 0);
}

TEST(engine, at_least_one_token) {
  engine e(test_profile());
  e.add(1, 0, 0);
  (void)e.begin_step();
  const auto p = e.end_step();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(p[0].finished);
  EXPECT_EQ(p[0].generated, 1);
}

TEST(engine, cancel_removes_running_and_waiting) {
  engine e(test_profile());
  e.add(1, 0, 5);
  e.add(2, 0, 5);
  e.add(3, 0, 5);
  (void)e.begin_step();
  e.cancel(1);  // during the step
  e.cancel(3);  // still waiting
  e.cancel(99); // unknown: nothing happens
  EXPECT_EQ(ids(e.end_step()), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(e.running(), 1u);
  EXPECT_EQ(e.waiting(), 0u);
  EXPECT_EQ(e.begin_step(), std::chrono::nanoseconds(11ms));
  EXPECT_EQ(ids(e.end_step()), (std::vector<std::uint64_t>{2}));
  e.cancel(2);
  EXPECT_TRUE(e.idle());
}

TEST(engine, kv_usage_rises_and_returns_to_zero) {
  engine e(test_profile());
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.0);
  e.add(1, 100, 3);
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.0); // waiting sequences hold no KV cache
  (void)e.begin_step();
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.1);
  (void)e.end_step();
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.101);
  (void)e.begin_step();
  (void)e.end_step();
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.102);
  (void)e.begin_step();
  (void)e.end_step(); // finished
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.0);

  e.add(2, 200, 10);
  (void)e.begin_step();
  (void)e.end_step();
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.201);
  e.cancel(2);
  EXPECT_DOUBLE_EQ(e.kv_usage(), 0.0);
}

TEST(engine, full_kv_cache_keeps_sequences_waiting) {
  engine e(test_profile());
  e.add(1, 600, 5);
  e.add(2, 600, 5);
  (void)e.begin_step();
  EXPECT_EQ(e.running(), 1u);
  EXPECT_EQ(e.waiting(), 1u);
}

TEST(engine, find_profile_knows_instant_and_default) {
  profile p;
  ASSERT_TRUE(find_profile("instant", p));
  EXPECT_TRUE(p.instant);
  EXPECT_EQ(p.name, "instant");

  ASSERT_TRUE(find_profile("default", p));
  EXPECT_FALSE(p.instant);
  EXPECT_EQ(p.name, "qwen3-1.7b-l4");
  ASSERT_TRUE(find_profile("qwen3-1.7b-l4", p));
  EXPECT_FALSE(p.instant);

  EXPECT_FALSE(find_profile("no-such-profile", p));
}

TEST(engine, slow_profile_runs_thousands_at_once_at_one_token_a_step) {
  profile p;
  ASSERT_TRUE(find_profile("slow", p));
  engine e(p);
  for (std::uint64_t id = 0; id < 5000; ++id) e.add(id, 512, 3);
  EXPECT_EQ(e.begin_step(), std::chrono::milliseconds(500)); // no prefill cost, no per-sequence cost
  EXPECT_EQ(e.running(), 5000u);
  EXPECT_EQ(e.end_step().size(), 5000u);
}

} // namespace
} // namespace llmgate::sim
