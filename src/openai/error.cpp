#include "openai/error.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

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
          error_body(fmt::format("The model `{}` does not exist or you do not have access to it.", model),
                     "invalid_request_error", "model", "model_not_found"),
          {}};
}

local_reply not_found(std::string_view path) {
  return {
      404, error_body(fmt::format("Unknown request URL: {}", path), "invalid_request_error", {}, "unknown_url"), {}};
}

local_reply method_not_allowed(std::string_view method) {
  return {405,
          error_body(fmt::format("Method {} is not allowed on this URL.", method), "invalid_request_error", {},
                     "method_not_allowed"),
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
