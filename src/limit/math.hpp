#pragma once
// Exact arithmetic for the algorithms: counts × nanoseconds overflow 64 bits
// (a day is 8.6e13 ns), so products are taken in 128 bits.
#include <cstdint>

namespace llmgate::limit {

using wide = __int128;

[[nodiscard]] constexpr wide ceil_div(wide a, wide b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
[[nodiscard]] constexpr wide floor_div(wide a, wide b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
[[nodiscard]] constexpr std::int64_t clamp64(wide v) {
  return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : static_cast<std::int64_t>(v);
}

} // namespace llmgate::limit
