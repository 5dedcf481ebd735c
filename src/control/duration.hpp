#pragma once
// Durations and sizes as written in the config: "250ms", "5s", "10m", "1h";
// "64KiB", "8MiB", "1GB" or a plain byte count.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::control {

using duration = std::chrono::milliseconds;

[[nodiscard]] std::optional<duration> parse_duration(std::string_view text);
[[nodiscard]] std::optional<std::uint64_t> parse_size(std::string_view text);
[[nodiscard]] std::string format_duration(duration d);
// A client's deadline in seconds, as x-request-timeout ("2.5") and the
// OpenAI SDKs' x-stainless-timeout ("600") carry it; nullopt unless a
// positive finite number of at most a day. Under a millisecond rounds up to one.
[[nodiscard]] std::optional<duration> parse_timeout_seconds(std::string_view text);

} // namespace llmgate::control
