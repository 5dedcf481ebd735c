#include "limit/fixed_window.hpp"

#include "limit/math.hpp"

#include <algorithm>

namespace llmgate::limit {

namespace {

// The window `now` falls in; a clock that went back stays in the newest window seen.
std::int64_t window_of(const fixed_window::params& p, const fixed_window::state& s, nanos now) {
  return std::max(clamp64(floor_div(now.count(), p.window.count())), s.window_index);
}

std::int64_t count_in(const fixed_window::state& s, std::int64_t window) {
  return window == s.window_index ? s.count : 0;
}

} // namespace

decision fixed_window::check(const params& p, const state& s, nanos now, std::int64_t cost) {
  const auto w = window_of(p, s, now);
  const auto used = count_in(s, w);
  const nanos reset{clamp64((wide(w) + 1) * p.window.count() - now.count())};
  decision d;
  d.limit = p.limit;
  d.reset = reset;
  d.allowed = used + cost <= p.limit;
  d.remaining = std::max<std::int64_t>(0, p.limit - used - (d.allowed ? cost : 0));
  if (!d.allowed) d.retry_after = cost > p.limit ? k_never : reset; // a new window starts empty
  return d;
}

void fixed_window::commit(const params& p, state& s, nanos now, std::int64_t cost) {
  const auto w = window_of(p, s, now);
  s.count = count_in(s, w) + cost;
  s.window_index = w;
}

void fixed_window::adjust(const params& p, state& s, nanos now, std::int64_t delta) {
  const auto w = window_of(p, s, now);
  s.count = std::max<std::int64_t>(0, count_in(s, w) + delta);
  s.window_index = w;
}

bool fixed_window::idle(const params& p, const state& s, nanos now) { return count_in(s, window_of(p, s, now)) == 0; }

} // namespace llmgate::limit
