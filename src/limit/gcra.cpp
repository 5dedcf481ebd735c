#include "limit/gcra.hpp"

#include <algorithm>

namespace llmgate::limit {

// All times are scaled by count: t·N. One unit moves the TAT by the period W
// (= N emission intervals of W/N each).
decision gcra::check(const params& p, const state& s, nanos now, std::int64_t cost) {
  const wide n = p.refill.count;
  const wide w = p.refill.period.count();
  const wide now_s = wide(now.count()) * n;
  const wide tolerance = wide(p.burst) * w;
  const wide base = std::max(s.tat, now_s);
  const wide new_tat = base + wide(cost) * w;
  decision d;
  d.limit = p.burst;
  d.allowed = new_tat - now_s <= tolerance;
  const wide ahead = (d.allowed ? new_tat : base) - now_s; // how far the TAT runs ahead of now
  d.remaining = std::max<std::int64_t>(0, clamp64(floor_div(tolerance - ahead, w)));
  d.reset = nanos{clamp64(ceil_div(ahead, n))};
  if (!d.allowed) d.retry_after = cost > p.burst ? k_never : nanos{clamp64(ceil_div(new_tat - tolerance - now_s, n))};
  return d;
}

void gcra::commit(const params& p, state& s, nanos now, std::int64_t cost) {
  s.tat = std::max(s.tat, wide(now.count()) * p.refill.count) + wide(cost) * p.refill.period.count();
}

void gcra::adjust(const params& p, state& s, nanos now, std::int64_t delta) {
  const wide now_s = wide(now.count()) * p.refill.count;
  // A refund never moves the TAT before now (no credit beyond a full bucket).
  s.tat = std::max(now_s, std::max(s.tat, now_s) + wide(delta) * p.refill.period.count());
}

bool gcra::idle(const params& p, const state& s, nanos now) { return s.tat <= wide(now.count()) * p.refill.count; }

} // namespace llmgate::limit
