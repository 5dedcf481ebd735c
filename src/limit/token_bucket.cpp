#include "limit/token_bucket.hpp"

#include <algorithm>

namespace llmgate::limit {

namespace {

// The level at `now`: refilled since the last change, capped at the burst.
// A clock that went back refills nothing.
wide level_at(const token_bucket::params& p, const token_bucket::state& s, nanos now) {
  const wide full = wide(p.burst) * p.refill.period.count();
  if (s.level == token_bucket::state::k_fresh) return full;
  const wide elapsed = std::max<wide>(0, wide(now.count()) - s.last.count());
  return std::min(full, s.level + elapsed * p.refill.count);
}

} // namespace

decision token_bucket::check(const params& p, const state& s, nanos now, std::int64_t cost) {
  const wide period = p.refill.period.count();
  const wide full = wide(p.burst) * period;
  const wide level = level_at(p, s, now);
  const wide need = wide(cost) * period;
  decision d;
  d.limit = p.burst;
  d.allowed = level >= need;
  const wide after = d.allowed ? level - need : level;
  d.remaining = std::max<std::int64_t>(0, clamp64(floor_div(after, period)));
  d.reset = nanos{clamp64(ceil_div(full - after, p.refill.count))};
  if (!d.allowed) d.retry_after = cost > p.burst ? k_never : nanos{clamp64(ceil_div(need - level, p.refill.count))};
  return d;
}

void token_bucket::commit(const params& p, state& s, nanos now, std::int64_t cost) {
  s.level = level_at(p, s, now) - wide(cost) * p.refill.period.count();
  s.last = std::max(now, s.last);
}

void token_bucket::adjust(const params& p, state& s, nanos now, std::int64_t delta) {
  const wide full = wide(p.burst) * p.refill.period.count();
  s.level = std::min(full, level_at(p, s, now) - wide(delta) * p.refill.period.count());
  s.last = std::max(now, s.last);
}

bool token_bucket::idle(const params& p, const state& s, nanos now) {
  return level_at(p, s, now) >= wide(p.burst) * p.refill.period.count();
}

} // namespace llmgate::limit
