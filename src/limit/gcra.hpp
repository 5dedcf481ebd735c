#pragma once
// GCRA (generic cell rate algorithm): the token bucket in its "virtual
// scheduling" form. Keeps one number per key, the theoretical arrival time
// (TAT) of the next request; a request may pass when it would not push the
// TAT more than `burst` emission intervals ahead of now. Same decisions as
// token_bucket with the same rate and burst, in 16 bytes. Pure; not thread-safe.
#include "limit/decision.hpp"
#include "limit/math.hpp"

namespace llmgate::limit {

struct gcra {
  struct params {
    rate refill{1, nanos{1'000'000'000}};
    std::int64_t burst = 1;
  };
  struct state {
    wide tat = 0; // theoretical arrival time × count (so the emission interval period/count stays exact)
  };
  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost);
  static void adjust(const params& p, state& s, nanos now, std::int64_t delta);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
};

} // namespace llmgate::limit
