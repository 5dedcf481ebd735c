#pragma once
// The gateway's configuration as plain structs with their defaults, and the
// one loader that reads it from YAML. The loader substitutes ${ENV} and
// ${ENV:-default}, rejects unknown keys and collects every problem with its
// line before failing. A loaded config is immutable and shared by all workers.
#include "control/duration.hpp"
#include "openai/dialect.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::control {

using namespace std::chrono_literals;

// TLS on a connection the gateway opens (to a backend, to Redis).
struct tls_client_config {
  bool enabled = false;    // an https:// or rediss:// URL, or a tls: block
  std::string ca;          // PEM file of the authorities to trust; empty: the system's
  bool verify = true;      // check the server's certificate and that it names the host
  std::string server_name; // sent as SNI and checked; empty: the URL's host
  std::string cert, key;   // PEM files of a client certificate, for servers that ask for one
  bool operator==(const tls_client_config&) const = default;
};

// TLS on the listener: PEM files of the certificate (with its chain) and key.
struct tls_server_config {
  std::string cert, key;
  [[nodiscard]] bool enabled() const noexcept { return !cert.empty(); }
  bool operator==(const tls_server_config&) const = default;
};

struct endpoint_address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  bool operator==(const endpoint_address&) const = default;
};

// How a model's pool picks a backend (models[].balance).
enum class balance_strategy { round_robin, weighted, least_outstanding, least_busy, prefix_affinity };
[[nodiscard]] std::string_view to_string(balance_strategy s);
[[nodiscard]] std::optional<balance_strategy> parse_balance_strategy(std::string_view s);

// Ways an exchange with a backend can fail, as a bit set: what the breaker
// counts (breaker.failure_on) and what is retried (retry.on). A 4xx other
// than 429 is the client's fault and is never either.
enum failure_kind : unsigned {
  failure_connect = 1,     // connect_error: refused, reset, or no valid response head
  failure_timeout = 2,     // timeout: connect, first token, idle gap or total
  failure_5xx = 4,         // status_5xx: the backend answered 5xx
  failure_429 = 8,         // status_429: the backend's own rate limit
  failure_interrupted = 16 // interrupted: the answer broke off after it began
};
using failure_set = unsigned;
[[nodiscard]] std::optional<failure_kind> parse_failure_kind(std::string_view s);
[[nodiscard]] std::string_view to_string(failure_kind k);

// A circuit breaker per backend (the top-level `breaker`, overridden per backend).
struct breaker_config {
  bool enabled = true;
  int failure_threshold = 5;             // consecutive failures (the seed's default)
  duration recovery_timeout = 30s;       // open this long (the seed's default)
  int half_open_probes = 1;              // calls let through when half-open
  int window = 20;                       // calls the rates are taken over
  int minimum_calls = 10;                // before the rates may open the breaker
  double failure_rate_threshold = 0.5;   // 1.0 or more: off
  duration slow_call_duration = 60s;     // to the response head / first token
  double slow_call_rate_threshold = 1.0; // 1.0 or more: off
  failure_set failure_on = failure_connect | failure_timeout | failure_5xx | failure_interrupted;
  bool operator==(const breaker_config&) const = default;
};

// Active health checks (the top-level `health`, overridden per backend).
struct health_config {
  bool enabled = true;
  std::string path; // empty: by kind (/health; ollama /api/version; openai /v1/models)
  duration interval = 5s;
  duration timeout = 2s;
  int healthy_threshold = 2;   // consecutive passes before an unhealthy backend takes traffic again
  int unhealthy_threshold = 3; // consecutive failures before a healthy one is taken out
  bool operator==(const health_config&) const = default;
};

// Retries on another backend before anything reached the client.
struct retry_config {
  int max_attempts = 3;    // tries in all, the first included
  duration backoff = 25ms; // base of the full-jitter backoff
  duration max_backoff = 1s;
  double budget_ratio = 0.2;        // retries at most this share of requests ...
  double budget_min_per_second = 3; // ... plus this many per second, over budget_window
  duration budget_window = 10s;
  failure_set on = failure_connect | failure_timeout | failure_5xx | failure_429 | failure_interrupted;
  bool operator==(const retry_config&) const = default;
};

// Scrapes of the backends' metrics_url and gpu_metrics_url (least_busy, dashboards).
struct scrape_config {
  bool enabled = true;
  duration interval = 2s;
  duration timeout = 1s;
  bool operator==(const scrape_config&) const = default;
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
  std::string metrics_url;         // vLLM /metrics; default: <url>/metrics (vllm, sglang, llamacpp)
  std::string gpu_metrics_url;     // DCGM exporter, optional
  std::uint32_t max_in_flight = 0; // requests the GPU holds at once; 0: no cap
  std::uint32_t queue_max = 0;     // waiting for a slot at most; default: max_in_flight
  duration queue_timeout = 5s;
  breaker_config breaker;
  health_config health;
  tls_client_config tls; // on for https:// (and for https metrics URLs)
  bool operator==(const backend_config&) const = default;
};

// What the degradation ladder and load-driven limits watch, per model pool.
enum class signal {
  breakers_open,  // share (0..1) of the pool's backends that take no traffic (breaker open, or unhealthy)
  queue_depth,    // requests waiting in the pool's backend lines
  queue_wait_p95, // seconds, over degrade.window
  ttft_p95,       // seconds to the first token (or the whole answer's head), over degrade.window
  error_rate,     // share (0..1) of the pool's answers that failed (5xx, timeouts, unreachable), over degrade.window
  gpu_temp,       // °C, the hottest GPU of the pool (DCGM)
  gpu_util,       // %, the busiest GPU of the pool (DCGM)
  gpu_mem,        // share (0..1) of framebuffer memory used, the fullest GPU of the pool (DCGM)
  waiting,        // requests waiting inside the pool's engines (vLLM num_requests_waiting and the like)
};
[[nodiscard]] std::string_view to_string(signal s);
[[nodiscard]] std::optional<signal> parse_signal(std::string_view s);

// Past `above`, a model's pool asks for at least `level`.
struct trigger_config {
  signal what = signal::breakers_open;
  double above = 0;
  int level = 1;
  bool operator==(const trigger_config&) const = default;
};

// The degradation ladder: L1 no streaming, L2 no thinking, L3 the fallback model, L4 the static reply.
struct degrade_config {
  std::string static_reply;             // L4's answer; empty: 503 service_busy
  duration interval = 1s;               // how often the triggers are evaluated
  duration window = 30s;                // the p95s and the error rate are over this window
  duration dwell = 30s;                 // a level falls one step once its target has stayed lower this long
  std::vector<trigger_config> triggers; // for every model with level auto that has none of its own
};

struct model_config {
  std::string name;
  std::vector<std::string> aliases;
  std::string fallback; // the ladder's L3: the model that serves it
  int level = -1;       // degrade.level: 0..4 set by config; -1 auto (the triggers decide)
  std::optional<std::vector<trigger_config>> triggers; // its own triggers instead of degrade.triggers
  std::int64_t context_length = 0;                     // 0: unknown
  std::int64_t default_max_tokens = 1024;
  std::string tokenizer; // tokenizer.json of the model: exact token counts; empty: an estimate (bytes / 4)
  balance_strategy balance = balance_strategy::round_robin;
  bool operator==(const model_config&) const = default;
};

struct server_config {
  duration header_timeout = 10s; // whole request head, from its first byte
  duration body_timeout = 30s;   // whole request body
  duration idle_timeout = 60s;   // keep-alive connection waiting for its next request
  duration drain_timeout = 30s;  // SIGTERM: in-flight requests get this long to finish
  std::uint64_t max_body_bytes = 8 << 20;
  std::uint32_t max_header_bytes = 16 << 10;
  std::uint32_t max_headers = 100;       // header fields in one request head
  std::uint32_t max_connections = 10000; // per process; more are accepted and closed at once
  // Per client address (0: no cap); addresses in trusted_proxies are exempt,
  // since a proxy carries many clients.
  std::uint32_t max_connections_per_client = 1000;
  tls_server_config tls; // off unless a certificate is given
  bool operator==(const server_config&) const = default;
};

struct upstream_config {
  duration connect_timeout = 5s;
  duration first_token_timeout = 60s;      // request sent → response head (non-stream: → whole answer head)
  duration idle_timeout = 60s;             // gap between two pieces of a streamed answer
  duration total_timeout = 10min;          // whole exchange
  std::uint32_t max_idle_per_backend = 64; // pooled keep-alive connections per backend and worker
  std::uint64_t max_response_bytes = 64 << 20;
  bool operator==(const upstream_config&) const = default;
};

struct cors_config {
  std::vector<std::string> allow_origins; // "*" allows any
  duration max_age = 10min;
};

// A caller's API key: its name (logs and metrics never see the key) and tier.
struct key_config {
  std::string key;
  std::string name;
  std::string tier; // empty: default_tier
};

struct tier_config {
  std::string name;
  int degrade_from = 1; // the ladder level from which this tier is degraded
};

// An address range allowed to set X-Forwarded-For: 16 bytes (IPv4 mapped into IPv6) and a prefix length.
struct cidr {
  std::array<unsigned char, 16> address{};
  int prefix = 128;
  [[nodiscard]] bool contains(const std::array<unsigned char, 16>& a) const;
};
[[nodiscard]] std::optional<cidr> parse_cidr(std::string_view text);
// An address as 16 bytes (IPv4 mapped into IPv6), or nullopt when it is not one.
[[nodiscard]] std::optional<std::array<unsigned char, 16>> parse_address(std::string_view text);

enum class limit_algorithm { fixed_window, sliding_window, sliding_log, token_bucket, leaky_bucket, gcra, concurrency };
[[nodiscard]] std::string_view to_string(limit_algorithm a);

// A time-of-day override of a rule's limit: from `start` to `end` (minutes
// after local midnight; end < start wraps past midnight) the limit is count
// per the rule's period, with its own burst.
struct schedule_entry {
  int start_minute = 0;
  int end_minute = 0;
  std::int64_t count = 0;
  std::int64_t burst = 0;
  [[nodiscard]] bool covers(int minute_of_day) const {
    return start_minute <= end_minute ? minute_of_day >= start_minute && minute_of_day < end_minute
                                      : minute_of_day >= start_minute || minute_of_day < end_minute;
  }
};

// One limit rule (the `limits.rules` list).
// A load-driven limit: while `what` (of `model`'s pool, or the highest over
// every pool) is above `above`, the rule's limit is multiplied by `factor`.
struct scale_config {
  signal what = signal::gpu_temp;
  double above = 0;
  double factor = 0.5;
  std::string model; // empty: every pool
};

struct rule_config {
  std::string name;
  std::vector<std::string> key{
      "client_ip"}; // client_ip, api_key, model, route, global, header:NAME; several: composite
  limit_algorithm algorithm = limit_algorithm::sliding_window;
  std::int64_t count = 0;                    // the limit's count (for concurrency: requests in flight)
  std::chrono::nanoseconds period{0};        // the limit's period (none for concurrency)
  std::int64_t burst = 0;                    // token_bucket, gcra, leaky_bucket; default: count
  bool cost_tokens = false;                  // cost: tokens (else requests)
  std::vector<std::string> tiers;            // empty: every caller
  bool shadow = false;                       // mode: shadow counts and logs but lets through
  bool queue = false;                        // on_limit: queue — wait (FIFO per key) up to max_wait instead of a 429
  bool shape = false;                        // leaky_bucket: delay requests to the rate instead of refusing
  std::int64_t delay = 0;                    // shaper: excess forwarded without waiting (nginx's delay=)
  duration max_wait{std::chrono::hours(24)}; // shaper: longest hold
  std::vector<schedule_entry> schedule;      // first entry covering the local time wins; none: the limit above
  std::string timezone = "UTC";              // for schedule (IANA name, e.g. Asia/Shanghai)
  std::vector<scale_config> scale;           // load-driven: the limit times a factor while a signal is high
};

// Most entries a sliding_log may keep per key (its memory grows with the limit).
inline constexpr std::int64_t k_max_sliding_log_limit = 10000;

struct limits_config {
  bool redis_store = false;                   // store: redis — every rule decided in Redis, for the whole fleet
  std::uint64_t max_tracked_keys = 1'000'000; // per rule; past it the idlest keys are evicted
  std::vector<rule_config> rules;
};

// What limits do while Redis cannot answer within its timeout.
enum class redis_failure_policy { local, allow, deny };

// The shared store of limits.store: redis.
struct redis_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string username; // ACL user (redis://user:password@host)
  std::string password;
  int database = 0;
  duration timeout = 5ms; // budget of one decision; past it the failure policy decides
  duration connect_timeout = 1s;
  redis_failure_policy on_failure = redis_failure_policy::local;
  int replicas = 1; // fleet size assumed by on_failure: local before any heartbeat was seen
  std::string key_prefix = "llmgate:";
  duration lease = 30s;                    // a concurrency lease; renewed while its request runs
  duration heartbeat = 1s;                 // how often a replica announces itself (the fleet size for the fallback)
  std::vector<endpoint_address> sentinels; // Redis Sentinel: find (and follow) the master through these
  std::string master_name = "mymaster";    // the master's name in the sentinels
  std::vector<endpoint_address> cluster;   // Redis Cluster: seed nodes (the masters are learnt from them)
  tls_client_config tls;                   // rediss:// or a tls: block (every connection: master, sentinels, nodes)
  bool operator==(const redis_config&) const = default;
};

// The admin API: its own listener, behind a bearer token (empty: closed).
struct admin_config {
  std::optional<endpoint_address> listen;
  std::string token;
  bool operator==(const admin_config&) const = default;
};

// The response cache.
enum class cache_mode { off, when_down, always };
struct cache_config {
  cache_mode mode = cache_mode::when_down;
  std::size_t max_entries = 10000;
  std::uint64_t max_bytes = 64 << 20;
  duration ttl = 10min;
  bool per_key = false; // scope: key (each caller its own entries) instead of global
  bool operator==(const cache_config&) const = default;
};

struct config {
  endpoint_address listen;
  unsigned workers = 0; // 0: one per core
  openai::reasoning_field reasoning_field = openai::reasoning_field::reasoning_content;
  std::string log_level = "info";
  std::string access_log = "stdout"; // one JSON line per API request: stdout, stderr, off, or a file path
  bool internals_on_admin = false;   // metrics_listener: admin — /metrics and /dashboard only on the admin listener
  cors_config cors;
  server_config server;
  upstream_config upstream;
  breaker_config breaker; // defaults for every backend's breaker
  health_config health;   // defaults for every backend's health checks
  retry_config retry;
  scrape_config scrape;
  std::vector<backend_config> backends;
  std::vector<model_config> models;
  bool auth_required = false; // auth.mode: required (unknown keys get 401) | optional
  std::vector<cidr> trusted_proxies;
  std::vector<tier_config> tiers; // none declared: one tier, "default", degraded from L1
  std::string default_tier = "default";
  std::vector<key_config> keys;
  limits_config limits;
  redis_config redis;
  degrade_config degrade;
  admin_config admin;
  cache_config cache;

  // Derived at load time: every name and alias → index into models.
  std::map<std::string, std::size_t, std::less<>> model_index;

  [[nodiscard]] const model_config* find_model(std::string_view name_or_alias) const;
};

// The parts of a config that cannot change while the gateway runs (its
// listeners, backends, models, pools, timeouts, Redis) and that differ
// between `running` and `next`: a reload that changes any of them is refused
// (restart to apply). Everything else — limits, keys, tiers, auth, trusted
// proxies, the ladder and the models' levels and triggers, CORS, the log
// level — is taken on at once.
[[nodiscard]] std::vector<std::string> restart_needed(const config& running, const config& next);

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

// http[s]://host[:port][/path]: where to connect, whether over TLS, and the
// request target ("/" when none).
struct http_url {
  std::string host;
  std::uint16_t port = 80;
  std::string target = "/";
  bool tls = false; // https: port 443 unless given
};
// nullopt for anything but an http:// or https:// URL with a host.
[[nodiscard]] std::optional<http_url> parse_http_url(std::string_view url);

} // namespace llmgate::control
