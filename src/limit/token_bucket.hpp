#pragma once
// Token bucket: holds up to `burst` tokens, refilled at count/period; a
// request takes `cost` tokens or is refused. A fresh key starts full. Exact
// integer arithmetic (tokens scaled by the period). 32 bytes per key. Pure;
// not thread-safe.
#include "limit/decision.hpp"
#include "limit/math.hpp"

namespace llmgate::limit {

struct token_bucket {
  struct params {
    rate refill{1, nanos{1'000'000'000}};
    std::int64_t burst = 1; // default in the config: the rate's count
  };
  struct state {
    static constexpr wide k_fresh = -(wide(1) << 120);
    wide level = k_fresh; // tokens × period (ns); k_fresh: never used, i.e. full
    nanos last{0};
  };
  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost);
  // Charge (delta > 0; the level may go below zero: a debt paid by waiting) or refund (delta < 0).
  static void adjust(const params& p, state& s, nanos now, std::int64_t delta);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
};

} // namespace llmgate::limit
