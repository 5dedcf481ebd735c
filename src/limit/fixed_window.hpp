#pragma once
// Fixed window: at most `limit` units in each window [k·W, (k+1)·W). Cheap
// and exact, but lets 2·limit through around a window edge. State per key:
// 16 bytes. Pure; not thread-safe (the key store serialises access).
#include "limit/decision.hpp"

namespace llmgate::limit {

struct fixed_window {
  struct params {
    std::int64_t limit = 1;
    nanos window{1'000'000'000};
  };
  struct state {
    std::int64_t window_index = INT64_MIN; // no request yet
    std::int64_t count = 0;
  };
  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost);
  // After the answer: charge (delta > 0) or refund (delta < 0) the current window.
  static void adjust(const params& p, state& s, nanos now, std::int64_t delta);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
};

} // namespace llmgate::limit
