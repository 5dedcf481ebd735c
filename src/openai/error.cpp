#include "openai/error.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <utf8proc.h>

namespace llmgate::openai {

std::string error_body(std::string_view message, std::string_view type, std::string_view param, std::string_view code) {
  boost::json::object err;
  err["message"] = message;
  err["type"] = type;
  err["param"] = param.empty() ? boost::json::value(nullptr) : boost::json::value(param);
  err["code"] = code.empty() ? boost::json::value(nullptr) : boost::json::value(code);
  boost::json::object root;
  root["error"] = std::move(err);
  return boost::json::serialize(root);
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
