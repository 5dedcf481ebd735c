#include "upstream/circuit_breaker.hpp"

#include <gtest/gtest.h>

namespace llmgate::upstream {
namespace {

using namespace std::chrono_literals;
using state = circuit_breaker::state;

TEST(circuit_breaker, opens_after_five_consecutive_failures_and_probes_after_thirty_seconds) {
  circuit_breaker b{breaker_config{}}; // the seed's failure_threshold=5, recovery_timeout=30
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(b.allow(0s));
    b.on_failure(0s);
  }
  EXPECT_EQ(b.current(0s), state::closed);
  ASSERT_TRUE(b.allow(1s));
  b.on_failure(1s);
  EXPECT_EQ(b.current(1s), state::open);
  EXPECT_FALSE(b.allow(10s));
  EXPECT_EQ(b.retry_after(10s), 21s);
  EXPECT_EQ(b.current(31s), state::half_open);
  EXPECT_TRUE(b.allow(31s));  // the one probe
  EXPECT_FALSE(b.allow(31s)); // no second one while it runs
  b.on_success(32s, 1s);
  EXPECT_EQ(b.current(32s), state::closed);
  EXPECT_TRUE(b.allow(32s));
  EXPECT_EQ(b.times_opened(), 1u);
}

TEST(circuit_breaker, a_failed_probe_opens_it_again) {
  circuit_breaker b{breaker_config{.failure_threshold = 1}};
  ASSERT_TRUE(b.allow(0s));
  b.on_failure(0s);
  ASSERT_TRUE(b.allow(30s));
  b.on_failure(30s);
  EXPECT_EQ(b.current(31s), state::open);
  EXPECT_EQ(b.retry_after(31s), 29s);
  EXPECT_EQ(b.times_opened(), 2u);
}

TEST(circuit_breaker, a_success_resets_the_consecutive_count) {
  circuit_breaker b{breaker_config{.failure_threshold = 3, .failure_rate_threshold = 1.0}};
  for (int round = 0; round < 10; ++round) {
    b.on_failure(0s);
    b.on_failure(0s);
    b.on_success(0s, 1ms);
  }
  EXPECT_EQ(b.current(0s), state::closed);
}

TEST(circuit_breaker, opens_on_the_failure_rate_over_the_window) {
  circuit_breaker b{
      breaker_config{.failure_threshold = 100, .window = 10, .minimum_calls = 10, .failure_rate_threshold = 0.5}};
  for (int i = 0; i < 9; ++i) {
    if (i % 2)
      b.on_failure(0s);
    else
      b.on_success(0s, 1ms);
  }
  EXPECT_EQ(b.current(0s), state::closed); // 9 calls: below minimum_calls
  b.on_failure(0s);                        // 10 calls, 5 failed: 50%
  EXPECT_EQ(b.current(0s), state::open);
}

TEST(circuit_breaker, opens_on_the_slow_call_rate) {
  circuit_breaker b{
      breaker_config{.window = 4, .minimum_calls = 4, .slow_call_duration = 2s, .slow_call_rate_threshold = 0.75}};
  b.on_success(0s, 3s);
  b.on_success(0s, 1s);
  b.on_success(0s, 3s);
  EXPECT_EQ(b.current(0s), state::closed);
  b.on_success(0s, 5s); // 3 of 4 slow
  EXPECT_EQ(b.current(0s), state::open);
}

TEST(circuit_breaker, half_open_needs_every_probe_to_succeed) {
  circuit_breaker b{breaker_config{.failure_threshold = 1, .half_open_probes = 3}};
  b.on_failure(0s);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.allow(30s));
  EXPECT_FALSE(b.allow(30s));
  b.on_success(31s, 1ms);
  b.on_success(31s, 1ms);
  EXPECT_EQ(b.current(31s), state::half_open);
  b.on_success(31s, 1ms);
  EXPECT_EQ(b.current(31s), state::closed);
}

} // namespace
} // namespace llmgate::upstream
