#include "limit/rate_parse.hpp"

#include "control/duration.hpp"

#include <charconv>
#include <fmt/format.h>

namespace llmgate::limit {

std::optional<rate> parse_rate(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto count_text = text.substr(0, slash);
  auto unit = text.substr(slash + 1);
  while (!count_text.empty() && count_text.back() == ' ') count_text.remove_suffix(1);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  std::int64_t count = 0;
  const auto [ptr, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
  if (ec != std::errc{} || ptr != count_text.data() + count_text.size() || count < 1) return std::nullopt;
  nanos period{0};
  using namespace std::chrono;
  if (unit == "second" || unit == "s" || unit == "sec")
    period = seconds(1);
  else if (unit == "minute" || unit == "m" || unit == "min")
    period = minutes(1);
  else if (unit == "hour" || unit == "h")
    period = hours(1);
  else if (unit == "day" || unit == "d")
    period = hours(24);
  else if (auto d = control::parse_duration(unit); d && d->count() > 0)
    period = *d;
  else
    return std::nullopt;
  return rate{count, period};
}

std::string format_rate(const rate& r) {
  using namespace std::chrono;
  // Every 429 names its rule's rate: the common periods without fmt.
  if (r.period == seconds(1)) return std::to_string(r.count) + "/second";
  if (r.period == minutes(1)) return std::to_string(r.count) + "/minute";
  if (r.period == hours(1)) return std::to_string(r.count) + "/hour";
  if (r.period == hours(24)) return std::to_string(r.count) + "/day";
  return fmt::format("{}/{}", r.count, control::format_duration(duration_cast<control::duration>(r.period)));
}

} // namespace llmgate::limit
