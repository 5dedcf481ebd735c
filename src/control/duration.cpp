#include "control/duration.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

namespace llmgate::control {

namespace {

// Splits "12.5ms" into 12.5 and "ms".
std::optional<std::pair<double, std::string_view>> number_and_unit(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc{} || ptr != text.data() + i || !std::isfinite(value)) return std::nullopt;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return std::pair{value, unit};
}

} // namespace

std::optional<duration> parse_duration(std::string_view text) {
  const auto parsed = number_and_unit(text);
  if (!parsed) return std::nullopt;
  const auto [value, unit] = *parsed;
  double ms = 0;
  if (unit == "ms")
    ms = value;
  else if (unit == "s")
    ms = value * 1000;
  else if (unit == "m")
    ms = value * 60'000;
  else if (unit == "h")
    ms = value * 3'600'000;
  else if (unit == "d")
    ms = value * 86'400'000;
  else
    return std::nullopt; // a bare number has no unit: refuse rather than guess seconds or milliseconds
  if (ms > 1e12) return std::nullopt;
  return duration(static_cast<std::int64_t>(std::llround(ms)));
}

std::optional<duration> parse_timeout_seconds(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  // Plain decimals only ("30", "2.5"): no sign, exponent or hex, which strtod would take.
  if (text.empty() || text.size() > 32 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; }))
    return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  const double seconds = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !(seconds > 0) || seconds > 86'400) return std::nullopt;
  // Whole milliseconds, rounded up (2.0071 s → 2008 ms) but not by binary noise (2.007 s → 2007 ms).
  return duration(std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(seconds * 1000 - 1e-6))));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  const auto parsed = number_and_unit(text);
  if (!parsed) return std::nullopt;
  const auto [value, unit] = *parsed;
  double mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB")
    mult = 1024;
  else if (unit == "MiB")
    mult = 1024.0 * 1024;
  else if (unit == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "KB" || unit == "kB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else
    return std::nullopt;
  const double bytes = value * mult;
  if (bytes > 1e15) return std::nullopt;
  return static_cast<std::uint64_t>(bytes);
}

std::string format_duration(duration d) {
  const auto ms = d.count();
  if (ms % 1000 != 0) return fmt::format("{}ms", ms);
  if (ms % 60'000 != 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}m", ms / 60'000);
}

} // namespace llmgate::control
