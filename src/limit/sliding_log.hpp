#pragma once
// Sliding log: the exact count of units admitted in the last W, from a log of
// admissions. Exact at any instant, but keeps an entry per admitted request
// (16 bytes each), so the config caps its limit and refuses it for token
// costs. Pure; not thread-safe.
#include "limit/decision.hpp"

#include <deque>
#include <utility>

namespace llmgate::limit {

struct sliding_log {
  struct params {
    std::int64_t limit = 1;
    nanos window{1'000'000'000};
  };
  struct state {
    std::deque<std::pair<nanos, std::int64_t>> entries; // (time, cost), oldest first
    std::int64_t total = 0;                             // sum of the costs in entries
  };
  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost);
  static void adjust(const params& p, state& s, nanos now, std::int64_t delta);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
  // Drops entries older than the window (commit and adjust do it too).
  static void prune(const params& p, state& s, nanos now);
};

} // namespace llmgate::limit
