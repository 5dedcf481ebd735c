#pragma once
// The Redis protocol without I/O: commands encoded and replies decoded by
// hiredis (its reader and formatter), wrapped in plain C++ values so the
// client above and the tests can feed it bytes. Not thread-safe (one per
// connection).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::redis {

struct reply {
  enum class kind { string, status, error, integer, nil, array } type = kind::nil;
  std::string text; // string, status, error
  std::int64_t integer = 0;
  std::vector<reply> elements; // array

  [[nodiscard]] bool is_error() const noexcept { return type == kind::error; }
  [[nodiscard]] bool is_nil() const noexcept { return type == kind::nil; }
};

// One command in RESP (a multi-bulk of the arguments), appended to `out`.
void append_command(std::string& out, std::span<const std::string_view> args);
[[nodiscard]] std::string command(std::initializer_list<std::string_view> args);

// Replies from a byte stream, whole ones only.
class decoder final {
public:
  decoder();
  ~decoder();
  decoder(const decoder&) = delete;
  decoder& operator=(const decoder&) = delete;

  // Bytes as they arrive. False when the stream is not valid RESP (the connection must be dropped).
  bool feed(std::string_view bytes);
  // The next complete reply, if one arrived. Throws std::runtime_error on a protocol error.
  [[nodiscard]] std::optional<reply> next();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace llmgate::redis
