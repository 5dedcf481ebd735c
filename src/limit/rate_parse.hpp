#pragma once
// "30/minute", "5/second", "100000/hour", "1000/day", "10/30s": a count and a
// period. Plain numbers (for concurrency) have no period.
#include "limit/decision.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace llmgate::limit {

[[nodiscard]] std::optional<rate> parse_rate(std::string_view text);
[[nodiscard]] std::string format_rate(const rate& r);

} // namespace llmgate::limit
