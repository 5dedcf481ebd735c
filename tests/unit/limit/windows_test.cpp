// fixed_window, sliding_window and sliding_log against reference models that
// recount the admitted requests from scratch.
#include "limit/fixed_window.hpp"
#include "limit/math.hpp"
#include "limit/sliding_log.hpp"
#include "limit/sliding_window.hpp"

#include <gtest/gtest.h>

#include "streams.hpp"

namespace llmgate::limit {
namespace {

using namespace std::chrono_literals;
using testing::arrival;

struct admitted_log {
  std::vector<arrival> items;
  std::int64_t sum(auto&& pred) const {
    std::int64_t n = 0;
    for (const auto& a : items)
      if (pred(a.at)) n += a.cost;
    return n;
  }
};

std::int64_t window_index(nanos t, nanos w) { return static_cast<std::int64_t>(floor_div(t.count(), w.count())); }

TEST(fixed_window, matches_a_recount_on_random_streams) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const fixed_window::params p{5 + static_cast<std::int64_t>(seed % 7), nanos{1'000'000'000}};
    admitted_log log;
    testing::run<fixed_window>(p, testing::random_stream(seed, 3000, p.window, 4),
                               [&](const arrival& a, const decision& d, const fixed_window::state& s) {
                                 const auto w = window_index(a.at, p.window);
                                 const auto used = log.sum([&](nanos t) { return window_index(t, p.window) == w; });
                                 const bool expect = used + a.cost <= p.limit;
                                 ASSERT_EQ(d.allowed, expect) << "seed " << seed << " at " << a.at.count();
                                 if (expect) {
                                   log.items.push_back(a);
                                   EXPECT_EQ(d.remaining, p.limit - used - a.cost);
                                 } else if (a.cost > p.limit) {
                                   EXPECT_EQ(d.retry_after, k_never);
                                 } else {
                                   EXPECT_EQ(d.retry_after, (w + 1) * p.window - a.at);
                                 }
                                 EXPECT_TRUE(testing::retry_is_exact<fixed_window>(p, s, a.at, a.cost, d));
                               });
  }
}

TEST(fixed_window, lets_twice_the_limit_through_around_an_edge) {
  const fixed_window::params p{3, 1s};
  fixed_window::state s;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(fixed_window::check(p, s, 999ms, 1).allowed);
    fixed_window::commit(p, s, 999ms, 1);
  }
  EXPECT_FALSE(fixed_window::check(p, s, 999ms, 1).allowed);
  EXPECT_EQ(fixed_window::check(p, s, 999ms, 1).retry_after, 1ms);
  EXPECT_TRUE(fixed_window::check(p, s, 1000ms, 3).allowed); // the next window starts empty
}

TEST(fixed_window, a_clock_that_goes_back_does_not_reopen_a_window) {
  const fixed_window::params p{2, 1s};
  fixed_window::state s;
  fixed_window::commit(p, s, 5s, 2);
  EXPECT_FALSE(fixed_window::check(p, s, 4s, 1).allowed);
  EXPECT_FALSE(fixed_window::check(p, s, 5s, 1).allowed);
  EXPECT_TRUE(fixed_window::check(p, s, 6s, 1).allowed);
}

TEST(sliding_window, matches_the_weighted_recount_on_random_streams) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const sliding_window::params p{4 + static_cast<std::int64_t>(seed % 9), nanos{60'000'000'000}};
    admitted_log log;
    testing::run<sliding_window>(p, testing::random_stream(seed * 7, 3000, p.window, 4),
                                 [&](const arrival& a, const decision& d, const sliding_window::state& s) {
                                   const auto w = window_index(a.at, p.window);
                                   const auto cur = log.sum([&](nanos t) { return window_index(t, p.window) == w; });
                                   const auto prev =
                                       log.sum([&](nanos t) { return window_index(t, p.window) == w - 1; });
                                   const wide e = a.at.count() - wide(w) * p.window.count();
                                   const bool expect =
                                       wide(prev) * (p.window.count() - e) + wide(cur + a.cost) * p.window.count() <=
                                       wide(p.limit) * p.window.count();
                                   ASSERT_EQ(d.allowed, expect) << "seed " << seed;
                                   if (expect) log.items.push_back(a);
                                   if (!expect && a.cost > p.limit) {
                                     EXPECT_EQ(d.retry_after, k_never);
                                   }
                                   EXPECT_TRUE(testing::retry_is_exact<sliding_window>(p, s, a.at, a.cost, d));
                                 });
  }
}

TEST(sliding_window, weighs_the_previous_window_by_its_overlap) {
  const sliding_window::params p{10, 60s};
  sliding_window::state s;
  sliding_window::commit(p, s, 30s, 10); // previous window full
  // 15 s into the next window, 45/60 of the previous 10 still count: 7.5 → 2 more fit.
  EXPECT_TRUE(sliding_window::check(p, s, 75s, 2).allowed);
  EXPECT_FALSE(sliding_window::check(p, s, 75s, 3).allowed);
  EXPECT_EQ(sliding_window::check(p, s, 75s, 2).remaining, 0);
  // Two windows later nothing of it is left.
  EXPECT_TRUE(sliding_window::check(p, s, 180s, 10).allowed);
}

TEST(sliding_log, matches_an_exact_recount_on_random_streams) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const sliding_log::params p{3 + static_cast<std::int64_t>(seed % 6), nanos{1'000'000'000}};
    admitted_log log;
    testing::run<sliding_log>(p, testing::random_stream(seed * 13, 3000, p.window, 3),
                              [&](const arrival& a, const decision& d, const sliding_log::state& s) {
                                const auto live = log.sum([&](nanos t) { return t > a.at - p.window; });
                                const bool expect = live + a.cost <= p.limit;
                                ASSERT_EQ(d.allowed, expect) << "seed " << seed;
                                if (expect) {
                                  log.items.push_back(a);
                                  EXPECT_EQ(d.remaining, p.limit - live - a.cost);
                                }
                                if (!expect && a.cost > p.limit) {
                                  EXPECT_EQ(d.retry_after, k_never);
                                }
                                EXPECT_TRUE(testing::retry_is_exact<sliding_log>(p, s, a.at, a.cost, d));
                              });
  }
}

TEST(sliding_log, never_lets_more_than_the_limit_into_any_window) {
  const sliding_log::params p{5, 1s};
  sliding_log::state s;
  std::vector<nanos> admitted;
  for (const auto& a : testing::random_stream(99, 5000, p.window, 1)) {
    if (sliding_log::check(p, s, a.at, 1).allowed) {
      sliding_log::commit(p, s, a.at, 1);
      admitted.push_back(a.at);
    }
  }
  for (std::size_t i = 0; i + 5 < admitted.size(); ++i) EXPECT_GE(admitted[i + 5] - admitted[i], p.window);
}

TEST(sliding_log, refunds_take_back_the_newest_units) {
  const sliding_log::params p{10, 1s};
  sliding_log::state s;
  sliding_log::commit(p, s, 0ms, 4);
  sliding_log::commit(p, s, 500ms, 6);
  sliding_log::adjust(p, s, 600ms, -5);
  EXPECT_EQ(s.total, 5);
  EXPECT_EQ(sliding_log::check(p, s, 1100ms, 10).allowed, false); // the 1 left at 500 ms still counts
  EXPECT_EQ(sliding_log::check(p, s, 1100ms, 9).allowed, true);
  EXPECT_TRUE(sliding_log::idle(p, s, 1600ms));
}

} // namespace
} // namespace llmgate::limit
