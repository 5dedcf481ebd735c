#pragma once
// The access log: one JSON line per request — when, who (address and key
// name, never the key), what was asked and who answered, how it ended and
// why, the ladder level, times and tokens — written through spdlog (its own
// logger, raw lines) to stdout, stderr or a file. Formatting is pure.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace llmgate::observe {

struct access_record {
  std::int64_t unix_ms = 0; // when the request was read
  std::string_view request_id, client, key, method, path;
  std::string_view model, served_model, backend; // asked, answered (L3: the fallback), who answered
  int status = 0;
  std::string_view outcome; // ok, rate_limited, degraded, cached, failed, cancelled, rejected
  std::string_view rule;    // the rule that refused it
  int level = 0;            // the ladder level applied
  bool cache_hit = false;
  std::optional<double> ttft_ms; // to the first streamed event
  double duration_ms = 0;
  std::int64_t prompt_tokens = -1, completion_tokens = -1; // -1: not known
};

// The record as one line of JSON (no newline).
[[nodiscard]] std::string format_access(const access_record& r);

class access_log {
public:
  // target: "stdout", "stderr", "off", or a file path (appended to).
  explicit access_log(const std::string& target);
  ~access_log();
  [[nodiscard]] bool enabled() const noexcept { return logger_ != nullptr; }
  void write(const access_record& r); // thread-safe

private:
  std::shared_ptr<spdlog::logger> logger_;
};

} // namespace llmgate::observe
