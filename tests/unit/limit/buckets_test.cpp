// token_bucket, gcra and the leaky bucket as a meter: all three are checked
// against one reference, the min-plus form of a bucket of size b refilled at
// rate r (a cost c passes at t iff for every earlier admission time s,
// b + r·(t − s) − admitted[s, t] ≥ c), and against each other.
#include "limit/gcra.hpp"
#include "limit/leaky_bucket.hpp"
#include "limit/token_bucket.hpp"

#include <functional>
#include <gtest/gtest.h>

#include "streams.hpp"

namespace llmgate::limit {
namespace {

using namespace std::chrono_literals;
using testing::arrival;

// Scaled by the period W: b·W + N·(t − s) − A·W ≥ c·W.
bool reference_admits(const std::vector<arrival>& admitted, std::int64_t burst, rate r, nanos t, std::int64_t cost) {
  if (cost > burst) return false;
  const wide w = r.period.count();
  wide after = 0; // units admitted at or after admitted[i].at
  for (auto it = admitted.rbegin(); it != admitted.rend(); ++it) {
    after += it->cost;
    if (wide(burst) * w + wide(r.count) * (t.count() - it->at.count()) - after * w < wide(cost) * w) return false;
  }
  return true;
}

struct bucket_case {
  rate r;
  std::int64_t burst;
};

std::vector<bucket_case> cases() {
  return {{{5, 1s}, 5}, {{30, 60s}, 30}, {{1, 1s}, 3}, {{7, 2s}, 1}, {{100, 3600s}, 10}, {{3, 100ms}, 8}};
}

TEST(token_bucket, matches_the_reference_on_random_streams) {
  std::uint64_t seed = 1;
  for (const auto& c : cases()) {
    const token_bucket::params p{c.r, c.burst};
    for (int round = 0; round < 3; ++round, ++seed) {
      std::vector<arrival> admitted;
      testing::run<token_bucket>(p, testing::random_stream(seed, 1500, c.r.period, c.burst),
                                 [&](const arrival& a, const decision& d, const token_bucket::state& s) {
                                   const bool expect = reference_admits(admitted, c.burst, c.r, a.at, a.cost);
                                   ASSERT_EQ(d.allowed, expect) << "seed " << seed << " at " << a.at.count();
                                   if (expect) admitted.push_back(a);
                                   if (a.cost > c.burst) {
                                     EXPECT_EQ(d.retry_after, k_never);
                                   }
                                   EXPECT_TRUE(testing::retry_is_exact<token_bucket>(p, s, a.at, a.cost, d));
                                 });
    }
  }
}

// Runs the token bucket and another algorithm side by side over the same
// streams, committing what the token bucket admits, and requires the same
// decision in every field.
template <class Other, class MakeParams> void decides_like_the_token_bucket(std::uint64_t seed, MakeParams make) {
  for (const auto& c : cases()) {
    const token_bucket::params tp{c.r, c.burst};
    const typename Other::params op = make(c);
    for (int round = 0; round < 3; ++round, ++seed) {
      token_bucket::state ts;
      typename Other::state os;
      for (const auto& a : testing::random_stream(seed, 3000, c.r.period, c.burst)) {
        const auto td = token_bucket::check(tp, ts, a.at, a.cost);
        const auto od = Other::check(op, os, a.at, a.cost);
        ASSERT_EQ(td.allowed, od.allowed) << "seed " << seed;
        EXPECT_EQ(td.remaining, od.remaining);
        EXPECT_EQ(td.retry_after, od.retry_after);
        EXPECT_EQ(td.reset, od.reset);
        EXPECT_TRUE(testing::retry_is_exact<Other>(op, os, a.at, a.cost, od));
        if (td.allowed) {
          token_bucket::commit(tp, ts, a.at, a.cost);
          Other::commit(op, os, a.at, a.cost);
        }
      }
    }
  }
}

TEST(gcra, decides_exactly_like_the_token_bucket) {
  decides_like_the_token_bucket<gcra>(100, [](const bucket_case& c) { return gcra::params{c.r, c.burst}; });
}

TEST(leaky_bucket, as_a_meter_decides_exactly_like_the_token_bucket) {
  decides_like_the_token_bucket<leaky_bucket>(200, [](const bucket_case& c) {
    return leaky_bucket::params{c.r, c.burst, leaky_bucket::mode::meter};
  });
}

TEST(token_bucket, starts_full_refills_at_the_rate_and_caps_at_the_burst) {
  const token_bucket::params p{{5, 1s}, 10};
  token_bucket::state s;
  EXPECT_TRUE(token_bucket::check(p, s, 0s, 10).allowed);
  token_bucket::commit(p, s, 0s, 10);
  EXPECT_FALSE(token_bucket::check(p, s, 0s, 1).allowed);
  EXPECT_EQ(token_bucket::check(p, s, 0s, 1).retry_after, 200ms);
  EXPECT_EQ(token_bucket::check(p, s, 1s, 1).remaining, 4);
  EXPECT_EQ(token_bucket::check(p, s, 100s, 1).remaining, 9); // capped at 10, minus this one
  EXPECT_TRUE(token_bucket::idle(p, s, 2s));
  EXPECT_FALSE(token_bucket::idle(p, s, 1s));
}

TEST(token_bucket, a_cost_above_the_burst_can_never_pass) {
  const token_bucket::params p{{5, 1s}, 10};
  token_bucket::state s;
  const auto d = token_bucket::check(p, s, 0s, 11);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, k_never);
}

TEST(token_bucket, charges_and_refunds_after_the_answer) {
  const token_bucket::params p{{100, 60s}, 100};
  token_bucket::state s;
  token_bucket::commit(p, s, 0s, 60); // estimate
  token_bucket::adjust(p, s, 0s, 30); // the answer used 30 more
  EXPECT_EQ(token_bucket::check(p, s, 0s, 1).remaining, 9);
  token_bucket::adjust(p, s, 0s, -1000); // a refund never fills past the burst
  EXPECT_EQ(token_bucket::check(p, s, 0s, 1).remaining, 99);
  token_bucket::adjust(p, s, 0s, 150); // a charge may leave a debt
  EXPECT_FALSE(token_bucket::check(p, s, 0s, 1).allowed);
  // 50 tokens in debt, 1 wanted: 51 tokens at 100 a minute.
  EXPECT_EQ(token_bucket::check(p, s, 0s, 1).retry_after, nanos{std::chrono::milliseconds(60000) * 51 / 100});
}

TEST(token_bucket, a_clock_that_goes_back_refills_nothing) {
  const token_bucket::params p{{1, 1s}, 1};
  token_bucket::state s;
  token_bucket::commit(p, s, 10s, 1);
  EXPECT_FALSE(token_bucket::check(p, s, 5s, 1).allowed);
  EXPECT_FALSE(token_bucket::check(p, s, 10s, 1).allowed);
  EXPECT_TRUE(token_bucket::check(p, s, 11s, 1).allowed);
}

constexpr nanos k_refused{-1};

// n requests at the same instant through a shaper: each one's hold, or
// k_refused; refusals' retry_after is passed to on_refused.
std::vector<nanos> hold_times(const leaky_bucket::params& p, int n, const std::function<void(nanos)>& on_refused = {}) {
  leaky_bucket::state s;
  std::vector<nanos> out;
  for (int i = 0; i < n; ++i) {
    const auto d = leaky_bucket::check(p, s, 0s, 1);
    if (!d.allowed) {
      out.push_back(k_refused);
      if (on_refused) on_refused(d.retry_after);
      continue;
    }
    out.push_back(d.delay);
    leaky_bucket::commit(p, s, 0s, 1);
  }
  return out;
}

// nginx's limit_req: rate=1r/s burst=5; six requests at once.
TEST(leaky_bucket, shaper_delays_the_excess_like_nginx) {
  const std::vector<nanos> expect{0s, 1s, 2s, 3s, 4s, 5s, k_refused};
  EXPECT_EQ(hold_times({{1, 1s}, 5, leaky_bucket::mode::shaper}, 7), expect);
}

TEST(leaky_bucket, shaper_forwards_the_first_delay_units_at_once_and_respects_max_wait) {
  const std::vector<nanos> expect{0s, 0s, 0s, 1s, 2s, k_refused, k_refused};
  // A refusal is told when the line will have drained to a 2.5 s wait.
  EXPECT_EQ(
      hold_times({{1, 1s}, 5, leaky_bucket::mode::shaper, 2, 2500ms}, 7, [](nanos retry) { EXPECT_EQ(retry, 500ms); }),
      expect);
  // nodelay: delay = burst, every admitted request goes at once.
  leaky_bucket::params nodelay{{1, 1s}, 5, leaky_bucket::mode::shaper, 5};
  leaky_bucket::state n;
  for (int i = 0; i < 6; ++i) {
    const auto d = leaky_bucket::check(nodelay, n, 0s, 1);
    ASSERT_TRUE(d.allowed);
    EXPECT_EQ(d.delay, 0s);
    leaky_bucket::commit(nodelay, n, 0s, 1);
  }
  EXPECT_FALSE(leaky_bucket::check(nodelay, n, 0s, 1).allowed);
  EXPECT_TRUE(leaky_bucket::check(nodelay, n, 1s, 1).allowed);
}

TEST(leaky_bucket, shaper_departures_keep_the_rate) {
  // Holding each admitted request for its delay, departures never run ahead of
  // the rate by more than the delay allowance.
  leaky_bucket::params p{{4, 1s}, 20, leaky_bucket::mode::shaper, 0};
  leaky_bucket::state s;
  std::vector<nanos> departures;
  for (const auto& a : testing::random_stream(7, 4000, 1s, 1)) {
    const auto d = leaky_bucket::check(p, s, a.at, 1);
    if (!d.allowed) continue;
    leaky_bucket::commit(p, s, a.at, 1);
    departures.push_back(a.at + d.delay);
  }
  std::sort(departures.begin(), departures.end());
  for (std::size_t i = 1; i < departures.size(); ++i) EXPECT_GE(departures[i] - departures[i - 1], 250ms - 1ns);
}

TEST(gcra, keeps_one_number_and_refuses_impossible_costs) {
  static_assert(sizeof(gcra::state) == 16);
  const gcra::params p{{10, 1s}, 5};
  gcra::state s;
  EXPECT_EQ(gcra::check(p, s, 0s, 6).retry_after, k_never);
  EXPECT_TRUE(gcra::check(p, s, 0s, 5).allowed);
}

} // namespace
} // namespace llmgate::limit

namespace llmgate::limit {
namespace {

TEST(leaky_bucket, a_shaper_is_idle_only_once_its_line_has_fully_drained) {
  // 6/minute: one unit drains in 10 s. After a conforming request the line
  // is empty but owes the next request its 10 s: not idle until then.
  leaky_bucket::params p{{6, std::chrono::minutes(1)}, 5, leaky_bucket::mode::shaper};
  leaky_bucket::state s;
  EXPECT_TRUE(leaky_bucket::idle(p, s, 0s));
  ASSERT_EQ(leaky_bucket::check(p, s, 0s, 1).delay, 0ns);
  leaky_bucket::commit(p, s, 0s, 1);
  EXPECT_FALSE(leaky_bucket::idle(p, s, 1500ms)) << "forgetting it now would let the next request through unheld";
  EXPECT_GT(leaky_bucket::check(p, s, 1500ms, 1).delay, 8s);
  EXPECT_TRUE(leaky_bucket::idle(p, s, 10s));
  // The meter: idle as soon as it is empty.
  leaky_bucket::params m{{6, std::chrono::minutes(1)}, 5, leaky_bucket::mode::meter};
  leaky_bucket::state t;
  leaky_bucket::commit(m, t, 0s, 1);
  EXPECT_FALSE(leaky_bucket::idle(m, t, 9s));
  EXPECT_TRUE(leaky_bucket::idle(m, t, 10s));
}

} // namespace
} // namespace llmgate::limit
