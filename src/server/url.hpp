#pragma once
// Request targets: "/path?query" split, query parameters percent-decoded.
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::server {

struct target_parts {
  std::string_view path;
  std::string_view query;
};

[[nodiscard]] target_parts parse_target(std::string_view target);

// The decoded value of the first `name=` parameter; nullopt when absent or
// badly encoded. '+' is a space, as in HTML forms.
[[nodiscard]] std::optional<std::string> query_param(std::string_view query, std::string_view name);

[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text);

} // namespace llmgate::server
