#include "limit/sliding_window.hpp"

#include "limit/math.hpp"

#include <algorithm>

namespace llmgate::limit {

namespace {

struct view {
  std::int64_t window;   // index of the window now falls in
  std::int64_t elapsed;  // ns since that window began
  std::int64_t current;  // units in it
  std::int64_t previous; // units in the one before
};

view look(const sliding_window::params& p, const sliding_window::state& s, nanos now) {
  const auto w_ns = p.window.count();
  auto w = clamp64(floor_div(now.count(), w_ns));
  std::int64_t elapsed = clamp64(wide(now.count()) - wide(w) * w_ns);
  if (w < s.window_index) { // the clock went back: stay at the start of the newest window seen
    w = s.window_index;
    elapsed = 0;
  }
  if (w == s.window_index) return {w, elapsed, s.current, s.previous};
  if (s.window_index != INT64_MIN && w == s.window_index + 1) return {w, elapsed, 0, s.current};
  return {w, elapsed, 0, 0};
}

} // namespace

decision sliding_window::check(const params& p, const state& s, nanos now, std::int64_t cost) {
  const auto v = look(p, s, now);
  const wide w_ns = p.window.count();
  // previous·(W − elapsed)/W + current + cost ≤ limit, multiplied out by W to stay exact.
  const wide weighted = wide(v.previous) * (w_ns - v.elapsed) + wide(v.current) * w_ns;
  const wide capacity = wide(p.limit) * w_ns;
  decision d;
  d.limit = p.limit;
  d.allowed = weighted + wide(cost) * w_ns <= capacity;
  d.remaining = std::max<std::int64_t>(0, clamp64(floor_div(capacity - weighted, w_ns)) - (d.allowed ? cost : 0));
  const std::int64_t to_next = p.window.count() - v.elapsed;
  const std::int64_t current_after = v.current + (d.allowed ? cost : 0);
  d.reset = nanos{current_after > 0 ? to_next + p.window.count() : v.previous > 0 ? to_next : 0};
  if (d.allowed) return d;
  if (cost > p.limit) {
    d.retry_after = k_never;
  } else if (v.current + cost <= p.limit) {
    // This window: wait until the previous window's weight has shrunk enough.
    const wide room = wide(p.limit - v.current - cost) * w_ns; // previous·(W − e') ≤ room
    const wide e_min = w_ns - floor_div(room, v.previous);
    d.retry_after = nanos{clamp64(std::max<wide>(1, e_min - v.elapsed))};
  } else {
    // Next window: the current count becomes the weighted one.
    const wide room = wide(p.limit - cost) * w_ns;
    const wide e_min = std::max<wide>(0, w_ns - floor_div(room, v.current));
    d.retry_after = nanos{clamp64(wide(to_next) + e_min)};
  }
  return d;
}

void sliding_window::commit(const params& p, state& s, nanos now, std::int64_t cost) {
  const auto v = look(p, s, now);
  s = {v.window, v.current + cost, v.previous};
}

void sliding_window::adjust(const params& p, state& s, nanos now, std::int64_t delta) {
  const auto v = look(p, s, now);
  s = {v.window, std::max<std::int64_t>(0, v.current + delta), v.previous};
}

bool sliding_window::idle(const params& p, const state& s, nanos now) {
  const auto v = look(p, s, now);
  return v.current == 0 && v.previous == 0;
}

} // namespace llmgate::limit
