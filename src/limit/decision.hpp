#pragma once
// What a limit algorithm says about one request: admit or not, and the
// numbers the rate-limit headers and the 429 message are made of. Times are
// nanoseconds on the caller's clock (the algorithms never read a clock).
#include <chrono>
#include <cstdint>
#include <limits>

namespace llmgate::limit {

using nanos = std::chrono::nanoseconds;

// A limit written as "30/minute": count units per period.
struct rate {
  std::int64_t count = 0;
  nanos period{0};
};

inline constexpr nanos k_never = nanos::max();

struct decision {
  bool allowed = false;
  // Refused: how long until the same cost could pass; k_never when it never
  // can (a cost larger than the burst or the limit).
  nanos retry_after{0};
  std::int64_t limit = 0;     // the count the headers report
  std::int64_t remaining = 0; // units left after this request (allowed) or now (refused)
  nanos reset{0};             // until the limit is whole again (window end, bucket full)
  nanos delay{0};             // a shaper's answer: hold the request this long, then forward it
};

// Units of a cost of `cost` that fit in `capacity`; helper for messages.
[[nodiscard]] inline bool never_fits(std::int64_t cost, std::int64_t capacity) { return cost > capacity; }

} // namespace llmgate::limit
