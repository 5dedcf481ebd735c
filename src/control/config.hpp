#pragma once
// The gateway's configuration as plain structs with their defaults, and the
// one loader that reads it from YAML. The loader substitutes ${ENV} and
// ${ENV:-default}, rejects unknown keys and collects every problem with its
// line before failing. A loaded config is immutable and shared by all workers.
#include "control/duration.hpp"
#include "openai/dialect.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace llmgate::control {

using namespace std::chrono_literals;

struct endpoint_address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

struct backend_config {
  std::string name;
  std::string url;          // as written
  endpoint_address address; // host and port of url
  std::string base_path;    // path prefix of url without trailing '/', e.g. "" or "/proxy"
  openai::backend_kind kind = openai::backend_kind::vllm;
  std::string api_key; // sent upstream instead of the client's key; empty: no Authorization
  std::vector<std::string> models;
  int weight = 1;
  std::string metrics_url;     // vLLM /metrics; default: <url>/metrics
  std::string gpu_metrics_url; // DCGM exporter, optional
};

struct model_config {
  std::string name;
  std::vector<std::string> aliases;
  std::string fallback;            // the ladder's L3 (used by the degradation issue)
  std::int64_t context_length = 0; // 0: unknown
  std::int64_t default_max_tokens = 1024;
};

struct server_config {
  duration header_timeout = 10s; // whole request head, from its first byte
  duration body_timeout = 30s;   // whole request body
  duration idle_timeout = 60s;   // keep-alive connection waiting for its next request
  duration drain_timeout = 30s;  // SIGTERM: in-flight requests get this long to finish
  std::uint64_t max_body_bytes = 8 << 20;
  std::uint32_t max_header_bytes = 16 << 10;
  std::uint32_t max_connections = 10000; // per process; more are accepted and closed at once
};

struct upstream_config {
  duration connect_timeout = 5s;
  duration first_token_timeout = 60s;      // request sent → response head (non-stream: → whole answer head)
  duration idle_timeout = 60s;             // gap between two pieces of a streamed answer
  duration total_timeout = 10min;          // whole exchange
  std::uint32_t max_idle_per_backend = 64; // pooled keep-alive connections per backend and worker
  std::uint64_t max_response_bytes = 64 << 20;
};

struct cors_config {
  std::vector<std::string> allow_origins; // "*" allows any
  duration max_age = 10min;
};

struct config {
  endpoint_address listen;
  unsigned workers = 0; // 0: one per core
  openai::reasoning_field reasoning_field = openai::reasoning_field::reasoning_content;
  std::string log_level = "info";
  cors_config cors;
  server_config server;
  upstream_config upstream;
  std::vector<backend_config> backends;
  std::vector<model_config> models;

  // Derived at load time: every name and alias → index into models.
  std::map<std::string, std::size_t, std::less<>> model_index;

  [[nodiscard]] const model_config* find_model(std::string_view name_or_alias) const;
};

struct config_problem {
  int line = 0; // 1-based; 0 when not tied to a line
  int column = 0;
  std::string key;
  std::string message;
};

class config_error final : public std::runtime_error {
public:
  explicit config_error(std::vector<config_problem> problems);
  [[nodiscard]] const std::vector<config_problem>& problems() const noexcept { return problems_; }

private:
  std::vector<config_problem> problems_;
};

// Environment lookup, injectable for tests; returns nullptr when unset.
using env_lookup = const char* (*)(const char*);

// Throws config_error listing every problem found.
[[nodiscard]] std::shared_ptr<const config> load_config(const std::string& yaml_text, const std::string& source,
                                                        env_lookup env = nullptr);
[[nodiscard]] std::shared_ptr<const config> load_config_file(const std::string& path, env_lookup env = nullptr);

// "host:port" or "[v6]:port".
[[nodiscard]] std::optional<endpoint_address> parse_host_port(std::string_view text);

} // namespace llmgate::control
