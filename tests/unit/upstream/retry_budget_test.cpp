#include "upstream/retry_budget.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <gtest/gtest.h>
#include <limits>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace llmgate::upstream {
namespace {

using namespace std::chrono_literals;
using nanos = std::chrono::nanoseconds;

// How many of `attempts` retries the budget lets through at `now`.
int retries_allowed(retry_budget& budget, nanos now, int attempts = 1000) {
  int allowed = 0;
  for (int i = 0; i < attempts; ++i) allowed += budget.try_retry(now) ? 1 : 0;
  return allowed;
}

TEST(retry_budget, allows_the_ratio_of_requests_seen) {
  retry_budget budget{0.2, 0, 10s};
  for (int i = 0; i < 100; ++i) budget.on_request(1s + i * 10ms);
  EXPECT_EQ(retries_allowed(budget, 2s), 20);
  const auto f = budget.in_window(2s);
  EXPECT_EQ(f.requests, 100u);
  EXPECT_EQ(f.retries, 20u); // only the retries that went are counted
}

// Each worker counts its requests in a ring of its own (observe::per_worker):
// the budget is over all of them, whichever worker retries.
TEST(retry_budget, the_requests_of_every_worker_make_room_for_retries) {
  retry_budget budget{0.1, 0, 10s};
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < 4; ++w)
    workers.emplace_back([&budget, w] {
      observe::set_shard(w);
      for (int i = 0; i < 250; ++i) budget.on_request(1s + i * 10ms);
    });
  for (auto& t : workers) t.join();
  EXPECT_EQ(budget.in_window(5s).requests, 1000u);
  EXPECT_EQ(retries_allowed(budget, 5s), 100);
}

TEST(retry_budget, no_requests_and_no_minimum_means_no_retries) {
  retry_budget budget{0.2, 0, 10s};
  EXPECT_EQ(retries_allowed(budget, 5s), 0);
  EXPECT_EQ(budget.in_window(5s).retries, 0u);
}

TEST(retry_budget, more_requests_make_room_for_more_retries) {
  retry_budget budget{0.2, 0, 10s};
  for (int i = 0; i < 10; ++i) budget.on_request(1s);
  EXPECT_EQ(retries_allowed(budget, 1s), 2);
  for (int i = 0; i < 10; ++i) budget.on_request(2s);
  EXPECT_EQ(retries_allowed(budget, 2s), 2); // 20 requests: 4 retries in all, 2 already spent
}

TEST(retry_budget, the_minimum_adds_per_second_times_the_window) {
  retry_budget idle{0, 0.5, 10s};
  EXPECT_EQ(retries_allowed(idle, 3s), 5); // 0.5/s over 10 s, with no traffic at all

  retry_budget busy{0.1, 0.5, 10s};
  for (int i = 0; i < 30; ++i) busy.on_request(3s);
  EXPECT_EQ(retries_allowed(busy, 3s), 8); // 30 × 0.1 + 0.5 × 10
}

TEST(retry_budget, old_seconds_fall_out_of_the_window) {
  retry_budget budget{0.2, 0, 10s};
  for (int i = 0; i < 100; ++i) budget.on_request(500ms);
  EXPECT_EQ(retries_allowed(budget, 500ms), 20);
  EXPECT_EQ(retries_allowed(budget, 5s), 0); // still spent
  EXPECT_EQ(budget.in_window(9s + 999ms).requests, 100u);

  // Second 0 has left the 10 s window: its requests and retries count no more.
  const auto later = 10s + 500ms;
  EXPECT_EQ(budget.in_window(later).requests, 0u);
  EXPECT_EQ(budget.in_window(later).retries, 0u);
  EXPECT_EQ(retries_allowed(budget, later), 0);
  for (int i = 0; i < 10; ++i) budget.on_request(later); // the same slot of the ring as second 0
  EXPECT_EQ(budget.in_window(later).requests, 10u);
  EXPECT_EQ(retries_allowed(budget, later), 2);
}

TEST(retry_budget, the_window_slides_one_second_at_a_time) {
  retry_budget budget{0.2, 0, 10s};
  for (int second = 0; second < 10; ++second)
    for (int i = 0; i < 10; ++i) budget.on_request(std::chrono::seconds(second) + 100ms);
  EXPECT_EQ(budget.in_window(9s + 900ms).requests, 100u);
  EXPECT_EQ(budget.in_window(10s).requests, 90u);
  EXPECT_EQ(budget.in_window(14s).requests, 50u);
  EXPECT_EQ(budget.in_window(19s).requests, 0u);
}

TEST(full_jitter_backoff, no_wait_before_the_first_attempt) {
  std::mt19937_64 rng{42};
  EXPECT_EQ(full_jitter_backoff(0, 100ms, 1s, rng), nanos{0});
  EXPECT_EQ(full_jitter_backoff(-3, 100ms, 1s, rng), nanos{0});
  EXPECT_EQ(full_jitter_backoff(2, 0ms, 1s, rng), nanos{0}); // no base, no wait
}

TEST(full_jitter_backoff, stays_below_the_doubling_ceiling_and_the_cap) {
  std::mt19937_64 rng{7};
  const nanos base = 100ms;
  const nanos cap = 1s;
  for (int retry = 1; retry <= 8; ++retry) {
    const nanos ceiling = std::min<nanos>(cap, base * (std::int64_t{1} << (retry - 1)));
    nanos largest{0};
    for (int draw = 0; draw < 2000; ++draw) {
      const auto d = full_jitter_backoff(retry, base, cap, rng);
      ASSERT_GE(d, nanos{0}) << "retry " << retry;
      ASSERT_LE(d, ceiling) << "retry " << retry;
      largest = std::max(largest, d);
    }
    // The draws reach up near the ceiling: it doubles until the cap, not stuck at the base.
    EXPECT_GT(largest, ceiling * 3 / 4) << "retry " << retry;
  }
}

TEST(full_jitter_backoff, the_cap_holds_for_large_retry_numbers) {
  std::mt19937_64 rng{99};
  for (const int retry : {30, 64, 1000, std::numeric_limits<int>::max()})
    for (int draw = 0; draw < 200; ++draw) {
      const auto d = full_jitter_backoff(retry, 25ms, 1s, rng);
      ASSERT_GE(d, nanos{0}) << retry;
      ASSERT_LE(d, nanos{1s}) << retry;
    }
}

TEST(full_jitter_backoff, draws_are_jittered) {
  std::mt19937_64 rng{2024};
  std::set<std::int64_t> seen;
  nanos smallest = 1s;
  for (int draw = 0; draw < 100; ++draw) {
    const auto d = full_jitter_backoff(3, 100ms, 1s, rng);
    seen.insert(d.count());
    smallest = std::min(smallest, d);
  }
  EXPECT_GT(seen.size(), 90u); // not one fixed delay
  EXPECT_LT(smallest, 100ms);  // full jitter: from zero, not from half the ceiling
}

} // namespace
} // namespace llmgate::upstream
