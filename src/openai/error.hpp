#pragma once
// OpenAI-shaped errors and the "answer locally" result every request step may return.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmgate::openai {

// A header the gateway adds to a response: the name a string literal (only
// its view is kept: a name string per header was an allocation for most of
// them, "x-ratelimit-remaining-requests" is past the short-string size),
// the value owned.
struct header {
  header() = default;
  // For emplace_back(name, value): clang 14 (make tsan) has no C++20
  // parenthesised initialisation of aggregates.
  header(std::string_view n, std::string v) : name(n), value(std::move(v)) {}
  std::string_view name;
  std::string value;
};
using header_list = std::vector<header>;

// A response the gateway writes itself instead of proxying: status, extra
// headers and a JSON body. Content-Type is application/json.
struct local_reply {
  int status = 200;
  std::string body;
  header_list headers;
};

// What a client sent, made fit to quote in an error message: at most
// max_bytes (cut at a character boundary, "…" appended when cut), invalid
// UTF-8 replaced by U+FFFD, so a 10 KiB model name or a path of raw bytes
// gives a short, valid message.
[[nodiscard]] std::string quote_input(std::string_view s, std::size_t max_bytes = 128);

// `text` as a JSON string, appended: quotes, backslashes and control
// characters escaped, the rest (UTF-8 included) as it is, as Boost.JSON's
// serializer writes it. By hand: the serializer builds a string of its own
// for each call (twice per spliced stream chunk, four times per error).
void append_json_string(std::string& out, std::string_view text);

// {"error":{"message":..,"type":..,"param":..,"code":..}}; empty param/code become null.
[[nodiscard]] std::string error_body(std::string_view message, std::string_view type, std::string_view param = {},
                                     std::string_view code = {});

// The error types OpenAI uses, with the status they go with.
[[nodiscard]] local_reply invalid_request(std::string_view message, std::string_view param = {},
                                          std::string_view code = {}); // 400
[[nodiscard]] local_reply invalid_api_key();                           // 401
[[nodiscard]] local_reply model_not_found(std::string_view model);     // 404
[[nodiscard]] local_reply not_found(std::string_view path);            // 404
[[nodiscard]] local_reply method_not_allowed(std::string_view method); // 405
[[nodiscard]] local_reply payload_too_large(std::size_t limit);        // 413
[[nodiscard]] local_reply bad_gateway(std::string_view message);       // 502
[[nodiscard]] local_reply service_unavailable(std::string_view message, int retry_after_s = 1,
                                              std::string_view code = "service_busy"); // 503
[[nodiscard]] local_reply gateway_timeout(std::string_view message);                   // 504

} // namespace llmgate::openai
