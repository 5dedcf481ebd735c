#pragma once
// Concurrency: at most `limit` requests in flight per key. A slot is taken at
// admission and given back when the request ends, however it ends
// (completion, error, timeout, client gone). 8 bytes per key. Pure; not
// thread-safe.
#include "limit/decision.hpp"

namespace llmgate::limit {

struct concurrency {
  struct params {
    std::int64_t limit = 1;
  };
  struct state {
    std::int64_t in_flight = 0;
  };
  // How long a refused caller is told to wait: nothing predicts when a slot frees up.
  static constexpr nanos k_retry_hint{1'000'000'000};

  [[nodiscard]] static decision check(const params& p, const state& s, nanos now, std::int64_t cost = 1);
  static void commit(const params& p, state& s, nanos now, std::int64_t cost = 1);
  static void release(const params& p, state& s, std::int64_t cost = 1);
  [[nodiscard]] static bool idle(const params& p, const state& s, nanos now);
};

} // namespace llmgate::limit
