#pragma once
// Leaky bucket, both ways the seed and nginx use it:
// - as a meter: each request pours `cost` into a bucket of size `burst` that
//   leaks at count/period; a request that would overflow it is refused.
// - as a shaper (nginx's limit_req): requests beyond the rate wait in line so
//   they leave at a steady rate. `burst` is how many may wait (excess over the
//   rate), the first `delay` of them go at once (nginx's delay=; nodelay is
//   delay = burst), and a request that would wait longer than max_wait is
//   refused instead. The decision's `delay` says how long to hold it.
// Exact integer arithmetic; 32 bytes per key. Pure; not thread-safe.
#include "limit/decision.hpp"
#include "limit/math.hpp"

namespace llmgate::limit {

struct leaky_bucket {
  enum class mode { meter, shaper };
  struct params {
    rate leak{1, nanos{1'000'000'000}};
    std::int64_t burst = 1;
    mode how = mode::meter;
    std::int64_t delay = 0;   // shaper: excess units forwarded without waiting
    nanos max_wait = k_never; // shaper: longest hold
  };
  struct state {
    static constexpr wide k_fresh = -(wide(1) << 120);
    wide level = k_fresh; // meter: water × period; shaper: excess × period; k_fresh: never used
    nanos last{0};
  };
  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost);
  static void adjust(const params& p, state& s, nanos now, std::int64_t delta);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
};

} // namespace llmgate::limit
