#include "bench/workload.hpp"

#include <array>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cmath>
#include <fmt/format.h>

namespace llmgate::bench {

namespace {

std::optional<double> number(std::string_view s) {
  double v = 0;
  const auto* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || p != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

// Three-letter words: " the" is one Qwen3 token and four bytes.
constexpr std::array<std::string_view, 32> k_words = {
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "was", "one", "our", "out", "day",
    "get", "has", "him", "his", "how", "man", "new", "now", "old", "see", "two", "way", "who", "boy", "did", "its"};

} // namespace

std::optional<length_dist> parse_length(std::string_view spec, std::string& error) {
  length_dist d;
  auto fail = [&](std::string_view why) -> std::optional<length_dist> {
    error = fmt::format("length '{}': {} (forms: 256, 128..512, normal:256,64, exp:256)", spec, why);
    return std::nullopt;
  };
  if (spec.starts_with("normal:")) {
    const auto rest = spec.substr(7);
    const auto comma = rest.find(',');
    if (comma == std::string_view::npos) return fail("normal needs a mean and a deviation");
    const auto mean = number(rest.substr(0, comma));
    const auto sd = number(rest.substr(comma + 1));
    if (!mean || !sd || *mean < 1 || *sd < 0) return fail("mean must be at least 1, deviation at least 0");
    d = {length_dist::shape::normal, *mean, *sd};
  } else if (spec.starts_with("exp:")) {
    const auto mean = number(spec.substr(4));
    if (!mean || *mean < 1) return fail("mean must be at least 1");
    d = {length_dist::shape::exponential, *mean, 0};
  } else if (const auto dots = spec.find(".."); dots != std::string_view::npos) {
    const auto lo = number(spec.substr(0, dots));
    const auto hi = number(spec.substr(dots + 2));
    if (!lo || !hi || *lo < 1 || *hi < *lo) return fail("need 1 <= low <= high");
    d = {length_dist::shape::uniform, std::floor(*lo), std::floor(*hi)};
  } else {
    const auto v = number(spec);
    if (!v || *v < 1) return fail("must be a number of tokens, at least 1");
    d = {length_dist::shape::fixed, std::floor(*v), 0};
  }
  if (d.a > 1e7 || d.b > 1e7) return fail("too large");
  return d;
}

std::int64_t draw(const length_dist& d, std::mt19937_64& rng) {
  double v = d.a;
  switch (d.kind) {
  case length_dist::shape::fixed: break;
  case length_dist::shape::uniform:
    v = static_cast<double>(std::uniform_int_distribution<std::int64_t>(static_cast<std::int64_t>(d.a),
                                                                        static_cast<std::int64_t>(d.b))(rng));
    break;
  case length_dist::shape::normal: v = std::round(std::normal_distribution<double>(d.a, d.b)(rng)); break;
  case length_dist::shape::exponential: v = std::round(std::exponential_distribution<double>(1.0 / d.a)(rng)); break;
  }
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(v));
}

std::string describe(const length_dist& d) {
  switch (d.kind) {
  case length_dist::shape::fixed: return fmt::format("{}", d.a);
  case length_dist::shape::uniform: return fmt::format("{}..{}", d.a, d.b);
  case length_dist::shape::normal: return fmt::format("normal:{},{}", d.a, d.b);
  case length_dist::shape::exponential: return fmt::format("exp:{}", d.a);
  }
  return {};
}

std::string prompt_text(std::int64_t tokens, std::uint64_t salt) {
  std::string out;
  out.reserve(static_cast<std::size_t>(tokens) * 4 + 24);
  // The salt first: prompts differ from their first bytes (prefix caches, response caches).
  out += fmt::format("{:016x}", salt); // about 4 tokens of hex
  std::uint64_t x = salt * 0x9e3779b97f4a7c15ull + 1;
  for (std::int64_t i = 4; i < tokens; ++i) {
    x ^= x << 13; // xorshift64: cheap, and the same prompt for the same salt
    x ^= x >> 7;
    x ^= x << 17;
    out += ' ';
    out += k_words[x % k_words.size()];
  }
  return out;
}

std::string chat_body(const request_shape& shape, std::string_view prompt, std::int64_t max_tokens) {
  boost::json::object body;
  body["model"] = shape.model;
  boost::json::object message{{"role", "user"}, {"content", prompt}};
  body["messages"] = boost::json::array{std::move(message)};
  body["max_tokens"] = max_tokens;
  if (shape.ignore_eos) body["ignore_eos"] = true;
  if (shape.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  if (!shape.thinking) body["chat_template_kwargs"] = {{"enable_thinking", false}};
  return boost::json::serialize(body);
}

} // namespace llmgate::bench
