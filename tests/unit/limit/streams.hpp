#pragma once
// Random request streams for the algorithms' property tests: gaps that are
// mostly short, sometimes zero (a clock that stands still) and sometimes
// several windows long (a clock that jumps); costs mostly small, sometimes
// larger than any burst.
#include "limit/decision.hpp"

#include <cstdint>
#include <random>
#include <vector>

namespace llmgate::limit::testing {

struct arrival {
  nanos at;
  std::int64_t cost;
};

inline std::vector<arrival> random_stream(std::uint64_t seed, std::size_t n, nanos window, std::int64_t max_cost) {
  std::mt19937_64 rng(seed);
  std::vector<arrival> out;
  out.reserve(n);
  nanos t{window.count() * 3 + static_cast<std::int64_t>(rng() % 1000)};
  for (std::size_t i = 0; i < n; ++i) {
    const auto kind = rng() % 100;
    if (kind < 10) {
      // same instant
    } else if (kind < 12) {
      t += window * static_cast<std::int64_t>(1 + rng() % 3); // a jump
    } else {
      t += nanos{static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(window.count() / 8 + 1))};
    }
    const auto c = rng() % 100;
    const std::int64_t cost = c < 80 ? 1 : c < 97 ? 1 + static_cast<std::int64_t>(rng() % max_cost) : max_cost + 1;
    out.push_back({t, cost});
  }
  return out;
}

// Runs the algorithm over a stream, committing what it admits; calls
// on_decision(arrival, decision, state_before) for each.
template <class Algo, class F>
void run(const typename Algo::params& p, const std::vector<arrival>& stream, F&& on_decision) {
  typename Algo::state s{};
  for (const auto& a : stream) {
    const auto d = Algo::check(p, s, a.at, a.cost);
    on_decision(a, d, s);
    if (d.allowed) Algo::commit(p, s, a.at, a.cost);
  }
}

// retry_after is exact: with no further admissions, the cost passes at
// now + retry_after and not one nanosecond sooner.
template <class Algo>::testing::AssertionResult retry_is_exact(const typename Algo::params& p,
                                                               const typename Algo::state& s, nanos now,
                                                               std::int64_t cost, const decision& d) {
  if (d.allowed || d.retry_after == k_never) return ::testing::AssertionSuccess();
  if (!Algo::check(p, s, now + d.retry_after, cost).allowed)
    return ::testing::AssertionFailure() << "still refused after retry_after=" << d.retry_after.count();
  if (d.retry_after > nanos{1} && Algo::check(p, s, now + d.retry_after - nanos{1}, cost).allowed)
    return ::testing::AssertionFailure() << "already allowed before retry_after=" << d.retry_after.count();
  return ::testing::AssertionSuccess();
}

} // namespace llmgate::limit::testing
