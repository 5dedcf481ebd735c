#include "openai/error.hpp"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdint>
#include <cstring>
#include <fmt/format.h>
#include <utf8proc.h>

namespace llmgate::openai {

namespace {

// The bytes a JSON string must escape: control characters, '"' and '\\'.
constexpr auto k_escaped = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = true;
  t['"'] = t['\\'] = true;
  return t;
}();

// Whether any of the 8 bytes of w is one to escape, with the usual word-at-a-
// time tests ("some byte below n", "some byte zero" after an xor): exact for
// whether any byte is, not for which.
constexpr bool escapes_in(std::uint64_t w) {
  constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
  const std::uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
  const std::uint64_t below_space = (w - ones * 0x20) & ~w;
  return ((below_space | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash)) & highs) != 0;
}

} // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char k_hex[] = "0123456789abcdef";
  out += '"';
  std::size_t plain = 0; // start of the run not yet copied
  for (std::size_t i = 0; i < text.size();) {
    // Eight bytes at a time while none needs escaping (most text).
    if (text.size() - i >= 8) {
      std::uint64_t w;
      std::memcpy(&w, text.data() + i, 8);
      if (!escapes_in(w)) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(text[i++]);
    if (!k_escaped[c]) continue;
    out.append(text.data() + plain, i - 1 - plain);
    plain = i;
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      out += "\\u00";
      out += k_hex[c >> 4];
      out += k_hex[c & 15];
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}

std::string error_body(std::string_view message, std::string_view type, std::string_view param, std::string_view code) {
  // By hand: a JSON object built and serialized was ~5k instructions, more
  // than the rest of a refused request's answer.
  std::string out;
  out.reserve(64 + message.size() + type.size() + param.size() + code.size());
  out += R"({"error":{"message":)";
  append_json_string(out, message);
  out += R"(,"type":)";
  append_json_string(out, type);
  out += R"(,"param":)";
  if (param.empty())
    out += "null";
  else
    append_json_string(out, param);
  out += R"(,"code":)";
  if (code.empty())
    out += "null";
  else
    append_json_string(out, code);
  out += "}}";
  return out;
}

std::string quote_input(std::string_view s, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes) + 3);
  while (!s.empty()) {
    // utf8proc rejects overlong forms, surrogates and code points past U+10FFFF.
    utf8proc_int32_t cp = 0;
    const auto got = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                      static_cast<utf8proc_ssize_t>(s.size()), &cp);
    const auto n = got > 0 ? static_cast<std::size_t>(got) : 0;
    const std::string_view piece = n ? s.substr(0, n) : std::string_view("\xEF\xBF\xBD");
    if (out.size() + piece.size() > max_bytes) {
      out += "\xE2\x80\xA6"; // …
      break;
    }
    out += piece;
    s.remove_prefix(n ? n : 1);
  }
  return out;
}

local_reply invalid_request(std::string_view message, std::string_view param, std::string_view code) {
  return {400, error_body(message, "invalid_request_error", param, code), {}};
}

local_reply invalid_api_key() {
  return {401,
          error_body("Incorrect API key provided. This gateway requires a configured key (Authorization: Bearer ...).",
                     "invalid_request_error", {}, "invalid_api_key"),
          {{"WWW-Authenticate", "Bearer"}}};
}

local_reply model_not_found(std::string_view model) {
  return {404,
          error_body(fmt::format("The model `{}` does not exist or you do not have access to it.", quote_input(model)),
                     "invalid_request_error", "model", "model_not_found"),
          {}};
}

local_reply not_found(std::string_view path) {
  return {
      404,
      error_body(fmt::format("Unknown request URL: {}", quote_input(path)), "invalid_request_error", {}, "unknown_url"),
      {}};
}

local_reply method_not_allowed(std::string_view method) {
  return {405,
          error_body(fmt::format("Method {} is not allowed on this URL.", quote_input(method, 32)),
                     "invalid_request_error", {}, "method_not_allowed"),
          {}};
}

local_reply payload_too_large(std::size_t limit) {
  return {413,
          error_body(fmt::format("Request body is larger than the limit of {} bytes.", limit), "invalid_request_error",
                     {}, "request_too_large"),
          {}};
}

local_reply bad_gateway(std::string_view message) {
  return {502, error_body(message, "upstream_error", {}, "bad_gateway"), {}};
}

local_reply service_unavailable(std::string_view message, int retry_after_s, std::string_view code) {
  return {503, error_body(message, "service_unavailable", {}, code), {{"Retry-After", std::to_string(retry_after_s)}}};
}

local_reply gateway_timeout(std::string_view message) {
  return {504, error_body(message, "timeout_error", {}, "upstream_timeout"), {}};
}

} // namespace llmgate::openai
