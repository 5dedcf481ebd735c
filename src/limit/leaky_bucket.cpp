#include "limit/leaky_bucket.hpp"

#include <algorithm>

namespace llmgate::limit {

namespace {

// What is left after leaking since the last change; never below zero for the
// meter. The shaper keeps nginx's rule: a request that finds the line drained
// counts itself as the conforming one, so the leak may credit one unit.
wide drained(const leaky_bucket::params& p, const leaky_bucket::state& s, nanos now) {
  const wide floor = p.how == leaky_bucket::mode::meter ? 0 : -wide(p.leak.period.count());
  if (s.level == leaky_bucket::state::k_fresh) return floor;
  const wide elapsed = std::max<wide>(0, wide(now.count()) - s.last.count());
  return std::max(floor, s.level - elapsed * p.leak.count);
}

// The level after pouring `cost` in at `now`.
wide poured(const leaky_bucket::params& p, const leaky_bucket::state& s, nanos now, std::int64_t cost) {
  const wide after = drained(p, s, now) + wide(cost) * p.leak.period.count();
  return p.how == leaky_bucket::mode::meter ? after : std::max<wide>(0, after);
}

} // namespace

decision leaky_bucket::check(const params& p, const state& s, nanos now, std::int64_t cost) {
  const wide w = p.leak.period.count();
  const wide n = p.leak.count;
  const wide cap = wide(p.burst) * w;
  const wide after = poured(p, s, now, cost);
  decision d;
  d.limit = p.burst;
  d.allowed = after <= cap;
  if (d.allowed && p.how == mode::shaper) {
    // Beyond the first `delay` units of excess, wait until the line has drained to them.
    const wide over = after - wide(p.delay) * w;
    if (over > 0) d.delay = nanos{clamp64(ceil_div(over, n))};
    if (d.delay > p.max_wait) d.allowed = false;
  }
  const wide level = d.allowed ? after : std::max<wide>(0, drained(p, s, now));
  d.remaining = std::max<std::int64_t>(0, clamp64(floor_div(cap - level, w)));
  d.reset = nanos{clamp64(ceil_div(level, n))};
  if (d.allowed) return d;
  const std::int64_t entry = p.how == mode::meter ? cost : cost - 1; // the shaper's first unit is the conforming one
  if (entry > p.burst) {
    d.retry_after = k_never;
    return d;
  }
  // Wait until it fits the bucket and, for the shaper, until its hold would be within max_wait.
  wide limit_level = cap;
  if (p.how == mode::shaper && p.max_wait != k_never)
    limit_level = std::min(limit_level, wide(p.delay) * w + wide(p.max_wait.count()) * n);
  if (limit_level < wide(entry) * w) {
    d.retry_after = k_never; // even an empty line would hold it longer than max_wait
    return d;
  }
  d.retry_after = nanos{clamp64(std::max<wide>(1, ceil_div(after - limit_level, n)))};
  return d;
}

void leaky_bucket::commit(const params& p, state& s, nanos now, std::int64_t cost) {
  s.level = poured(p, s, now, cost);
  s.last = std::max(now, s.last);
}

void leaky_bucket::adjust(const params& p, state& s, nanos now, std::int64_t delta) {
  s.level = std::max<wide>(0, drained(p, s, now) + wide(delta) * p.leak.period.count());
  s.last = std::max(now, s.last);
}

// Idle: drained back to a fresh bucket's level — empty for the meter, one
// unit of credit for the shaper (whose next request is the conforming one).
// Dropping a shaper's key any earlier would forget the line it still has.
bool leaky_bucket::idle(const params& p, const state& s, nanos now) {
  const wide fresh = p.how == mode::meter ? 0 : -wide(p.leak.period.count());
  return drained(p, s, now) <= fresh;
}

} // namespace llmgate::limit
