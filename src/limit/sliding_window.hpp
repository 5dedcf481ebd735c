#pragma once
// Sliding window, as Cloudflare and HAProxy count: the current window's count
// plus the previous window's, weighted by how much of it still overlaps the
// last W. Smooths fixed windows' edge bursts at 24 bytes per key. Pure; not
// thread-safe.
#include "limit/decision.hpp"

namespace llmgate::limit {

struct sliding_window {
  struct params {
    std::int64_t limit = 1;
    nanos window{1'000'000'000};
  };
  struct state {
    std::int64_t window_index = INT64_MIN;
    std::int64_t current = 0;
    std::int64_t previous = 0;
  };
  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost);
  static void adjust(const params& p, state& s, nanos now, std::int64_t delta);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
};

} // namespace llmgate::limit
