#include "limit/sliding_log.hpp"

#include <algorithm>
#include <optional>

namespace llmgate::limit {

namespace {

// An entry at t counts while t > now − W.
bool expired(const sliding_log::params& p, nanos t, nanos now) { return t <= now - p.window; }

} // namespace

decision sliding_log::check(const params& p, const state& s, nanos now, std::int64_t cost) {
  std::int64_t live = s.total;
  auto it = s.entries.begin();
  for (; it != s.entries.end() && expired(p, it->first, now); ++it) live -= it->second;
  decision d;
  d.limit = p.limit;
  d.allowed = live + cost <= p.limit;
  d.remaining = std::max<std::int64_t>(0, p.limit - live - (d.allowed ? cost : 0));
  // Whole again when the newest live entry (this request's, if admitted) expires.
  std::optional<nanos> newest;
  if (live > 0) newest = s.entries.back().first;
  if (d.allowed && cost > 0) newest = std::max(now, newest.value_or(now));
  d.reset = newest ? std::max(nanos{0}, *newest + p.window - now) : nanos{0};
  if (d.allowed) return d;
  if (cost > p.limit) {
    d.retry_after = k_never;
    return d;
  }
  // The oldest live entries must expire until the cost fits.
  for (; it != s.entries.end(); ++it) {
    live -= it->second;
    if (live + cost <= p.limit) {
      d.retry_after = std::max(nanos{1}, it->first + p.window - now);
      break;
    }
  }
  return d;
}

void sliding_log::prune(const params& p, state& s, nanos now) {
  while (!s.entries.empty() && expired(p, s.entries.front().first, now)) {
    s.total -= s.entries.front().second;
    s.entries.pop_front();
  }
}

void sliding_log::commit(const params& p, state& s, nanos now, std::int64_t cost) {
  prune(p, s, now);
  // A clock that went back still logs in order, so pruning stays oldest-first.
  const nanos t = s.entries.empty() ? now : std::max(now, s.entries.back().first);
  s.entries.emplace_back(t, cost);
  s.total += cost;
}

void sliding_log::adjust(const params& p, state& s, nanos now, std::int64_t delta) {
  if (delta > 0) {
    commit(p, s, now, delta);
    return;
  }
  prune(p, s, now);
  // A refund takes back the newest units first.
  for (std::int64_t left = -delta; left > 0 && !s.entries.empty();) {
    auto& last = s.entries.back();
    const auto take = std::min(left, last.second);
    last.second -= take;
    s.total -= take;
    left -= take;
    if (last.second == 0) s.entries.pop_back();
  }
}

bool sliding_log::idle(const params& p, const state& s, nanos now) {
  return s.entries.empty() || expired(p, s.entries.back().first, now);
}

} // namespace llmgate::limit
