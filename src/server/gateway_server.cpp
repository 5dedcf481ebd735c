#include "server/gateway_server.hpp"
#include "io/answer_parser.hpp"
#include "io/io.hpp"

#include "control/admin.hpp"
#include "control/caller.hpp"
#include "degrade/ladder.hpp"
#include "degrade/response_cache.hpp"
#include "degrade/synth.hpp"
#include "degrade/window_stats.hpp"
#include "limit/rate_parse.hpp"
#include "limit/redis_limiter.hpp"
#include "limit/rule_set.hpp"
#include "observe/access_log.hpp"
#include "openai/body_rewrite.hpp"
#include "openai/request_view.hpp"
#include "openai/response_rewrite.hpp"
#include "openai/sse.hpp"
#include "server/client_quota.hpp"
#include "server/http_session.hpp"
#include "server/url.hpp"
#include "tls/tls.hpp"
#include "tokenize/chat_template.hpp"
#include "tokenize/prompt_tokens.hpp"
#include "upstream/monitor.hpp"
#include "upstream/retry_budget.hpp"
#include "upstream/router.hpp"
#include "upstream/upstream_pool.hpp"
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fmt/compile.h>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <spdlog/spdlog.h>
#include <thread>
#include <unordered_map>
#include <variant>

namespace llmgate::observe {
extern const std::string_view k_dashboard_html; // generated from src/observe/dashboard.html
}

namespace llmgate::server {

namespace json = boost::json;
using clock = std::chrono::steady_clock;

namespace {

using io::k_tuple;
using namespace std::string_view_literals;
constexpr std::size_t k_max_cached_stream = 1 << 20;    // a longer stream is relayed but not cached
constexpr std::size_t k_kept_stream_scratch = 64 << 10; // a worker's stream scratch beyond this is given back

double seconds_since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

// The fields of a request's head the pipeline reads, found in one pass over
// it rather than by six lookups by name, each a scan of every field.
struct request_fields {
  std::string_view request_id, origin, authorization, request_timeout, stainless_timeout;
  // Every X-Forwarded-For field in order, joined: a proxy that adds its own
  // line must not let a client-sent first line speak for the client.
  std::string forwarded_for;

  request_fields() = default;
  explicit request_fields(const request& req) {
    // A field sent twice: the first counts, as with a lookup by name.
    const auto first = [](std::string_view& slot, std::string_view value) {
      if (!slot.data()) slot = value;
    };
    for (const auto f : req.fields()) {
      const auto value = f.value;
      switch (f.name) {
      case http::field::authorization: first(authorization, value); break;
      case http::field::origin: first(origin, value); break;
      case http::field::unknown: {
        const auto name = f.name_string;
        if (name.size() == 12 && beast::iequals(name, "x-request-id")) {
          first(request_id, value);
        } else if (name.size() == 17 && beast::iequals(name, "x-request-timeout")) {
          first(request_timeout, value);
        } else if (name.size() == 19 && beast::iequals(name, "x-stainless-timeout")) {
          first(stainless_timeout, value);
        } else if (name.size() == 15 && beast::iequals(name, "x-forwarded-for")) {
          if (!forwarded_for.empty()) forwarded_for += ", "sv;
          forwarded_for += value;
        }
        break;
      }
      default: break;
      }
    }
  }
};

limit::nanos steady_nanos(clock::time_point t) {
  return std::chrono::duration_cast<limit::nanos>(t.time_since_epoch());
}
limit::nanos steady_now() { return steady_nanos(clock::now()); }

openai::local_reply context_too_long(const control::model_config& m, std::int64_t prompt,
                                     std::optional<std::int64_t> max_tokens) {
  return openai::invalid_request(
      fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the "
                  "messages, {} in the completion). Please reduce the length of the messages or completion.",
                  m.context_length, prompt + max_tokens.value_or(0), prompt, max_tokens.value_or(0)),
      "messages", "context_length_exceeded");
}

// 15 hex digits (60 random bits): short enough for std::string's inline
// room, so neither the id nor its copy in the response headers allocates.
std::string new_request_id() {
  // splitmix64 over a per-thread seed: ids need to differ, not to be
  // unguessable, and std::mt19937_64 cost ~150 instructions more a request.
  thread_local std::uint64_t state = (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  std::uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return std::string(hex64(z ^ (z >> 31)).view().substr(1));
}

// The metrics every request updates; looked up once.
struct gateway_metrics {
  explicit gateway_metrics(observe::registry& r)
      : requests(r.counter("llmgate_requests_total",
                           "Requests answered, by model, HTTP status and outcome (ok, rate_limited, degraded, cached, "
                           "failed, cancelled, rejected).",
                           {"model", "status", "outcome"})),
        duration(r.histogram("llmgate_request_duration_seconds", "Time from request read to response end.", {"model"},
                             observe::latency_buckets())),
        tpot(r.histogram("llmgate_time_per_output_token_seconds",
                         "A streamed answer's time per output token after the first (to its end).", {"model"},
                         {0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0})),
        prompt_lengths(r.histogram("llmgate_request_prompt_tokens",
                                   "Prompt tokens per request, as backends report them.", {"model"},
                                   observe::token_buckets())),
        completion_lengths(r.histogram("llmgate_request_completion_tokens",
                                       "Completion tokens per request, as backends report them.", {"model"},
                                       observe::token_buckets())),
        ttft(r.histogram("llmgate_time_to_first_token_seconds",
                         "Time from request read to the first streamed event sent to the client.", {"model"},
                         observe::latency_buckets())),
        in_flight(r.gauge("llmgate_requests_in_flight", "Completion requests being served.").with({})),
        upstream(r.counter("llmgate_upstream_requests_total",
                           "Exchanges with backends, by backend and result (ok, connect_error, timeout, "
                           "status_5xx, status_429, interrupted, client_gone, client_deadline).",
                           {"backend", "result"})),
        upstream_connects(r.counter("llmgate_upstream_connections_opened_total",
                                    "New connections to backends (the rest reuse keep-alive ones).", {"backend"})),
        disconnects(r.counter("llmgate_client_disconnects_total",
                              "Clients that went away before their answer ended; their upstream request was "
                              "cancelled.")
                        .with({})),
        connections_open(r.gauge("llmgate_connections_open", "Client connections open.").with({})),
        connections(r.counter("llmgate_connections_total", "Client connections accepted.").with({})),
        connections_refused_family(r.counter("llmgate_connections_refused_total",
                                             "Client connections closed at once: server.max_connections (limit "
                                             "total) or server.max_connections_per_client (per_client) reached.",
                                             {"limit"})),
        connections_refused(connections_refused_family.with({"total"})),
        tls_handshakes(r.counter("llmgate_tls_handshakes_total",
                                 "TLS handshakes on the listeners (server.tls): ok, or failed (a bad or "
                                 "plain-HTTP client, or one that took longer than server.header_timeout).",
                                 {"result"})),
        connections_refused_per_client(connections_refused_family.with({"per_client"})),
        prompt_tokens(r.counter("llmgate_prompt_tokens_total", "Prompt tokens reported by backends.", {"model"})),
        completion_tokens(
            r.counter("llmgate_completion_tokens_total", "Completion tokens reported by backends.", {"model"})),
        refusals(r.counter("llmgate_ratelimit_refusals_total", "Requests refused by a limit rule (429).", {"rule"})),
        shadow_refusals(r.counter("llmgate_ratelimit_shadow_refusals_total",
                                  "Requests a shadow-mode rule would have refused (let through).", {"rule"})),
        tracked_keys(r.gauge("llmgate_ratelimit_tracked_keys", "Keys a limit rule holds state for.", {"rule"})),
        overflowed(r.gauge("llmgate_ratelimit_overflowed_requests",
                           "Requests counted in a rule's shared overflow bucket because max_tracked_keys was "
                           "reached with no idle key.",
                           {"rule"})),
        retries(
            r.counter("llmgate_retries_total", "Attempts repeated on another backend, by what failed.", {"reason"})),
        retries_refused(
            r.counter("llmgate_retries_refused_total", "Retries not sent because the retry budget was spent.")
                .with({})),
        busy(r.counter("llmgate_busy_rejections_total",
                       "Requests answered 503: every backend of the model full (slots and queues), queue timeout, "
                       "or none available.",
                       {"model"})),
        breaker_transitions(r.counter("llmgate_breaker_transitions_total",
                                      "Circuit breaker state changes, by backend and new state.",
                                      {"backend", "state"})),
        queue_wait(r.histogram("llmgate_backend_queue_wait_seconds",
                               "Time requests waited in a backend's line for a slot (max_in_flight).", {"backend"},
                               observe::latency_buckets())),
        queued(r.counter("llmgate_backend_queued_total", "Requests that waited in a backend's line.", {"backend"})),
        backend_healthy(
            r.gauge("llmgate_backend_healthy", "1 when the backend's active health checks pass.", {"backend"})),
        backend_breaker(r.gauge("llmgate_backend_breaker_state",
                                "The backend's circuit breaker: 0 closed, 1 half-open, 2 open.", {"backend"})),
        backend_in_flight(
            r.gauge("llmgate_backend_in_flight", "Requests this gateway has at the backend now.", {"backend"})),
        backend_in_flight_peak(r.gauge("llmgate_backend_in_flight_peak",
                                       "The most requests this gateway had at the backend at once since start.",
                                       {"backend"})),
        backend_queue(
            r.gauge("llmgate_backend_queue_length", "Requests waiting in the backend's line now.", {"backend"})),
        backend_queue_peak(r.gauge("llmgate_backend_queue_peak",
                                   "The most requests waiting in the backend's line at once since start.",
                                   {"backend"})),
        health_checks(r.counter("llmgate_health_checks_total", "Active health checks, by backend and result.",
                                {"backend", "result"})),
        scrapes(r.counter("llmgate_backend_scrapes_total",
                          "Scrapes of backends' metrics_url and gpu_metrics_url, by backend, target and result.",
                          {"backend", "target", "result"})),
        engine_waiting(r.gauge("llmgate_backend_engine_waiting_requests",
                               "Requests waiting in the backend's engine (scraped: vllm:num_requests_waiting).",
                               {"backend"})),
        engine_running(r.gauge("llmgate_backend_engine_running_requests",
                               "Requests running in the backend's engine (scraped: vllm:num_requests_running).",
                               {"backend"})),
        engine_kv(r.gauge("llmgate_backend_kv_cache_usage_ratio",
                          "The backend's KV cache in use, 0..1 (scraped: vllm:kv_cache_usage_perc).", {"backend"})),
        gpu_util(r.gauge("llmgate_backend_gpu_utilization_percent",
                         "GPU utilisation, mean over the backend's GPUs (scraped: DCGM_FI_DEV_GPU_UTIL).",
                         {"backend"})),
        gpu_memory(r.gauge("llmgate_backend_gpu_memory_used_bytes",
                           "GPU memory in use on the backend's GPUs (scraped: DCGM_FI_DEV_FB_USED).", {"backend"})),
        gpu_temp(r.gauge("llmgate_backend_gpu_temperature_celsius",
                         "The hottest of the backend's GPUs (scraped: DCGM_FI_DEV_GPU_TEMP).", {"backend"})),
        degrade_level(r.gauge("llmgate_degrade_level",
                              "The degradation ladder's level of each model (0 normal, 1 no streaming, 2 no thinking, "
                              "3 fallback model, 4 static reply).",
                              {"model"})),
        degraded(r.counter("llmgate_degraded_requests_total",
                           "Requests served at a degraded level (L1..L4), by requested model and level.",
                           {"model", "level"})),
        level_changes(r.counter("llmgate_degrade_level_changes_total",
                                "Changes of a model's ladder level, by model and cause (triggers, admin, config).",
                                {"model", "cause"})),
        reloads(r.counter("llmgate_config_reloads_total",
                          "Config reloads and admin changes, by result (ok; refused: invalid, or a part that needs a "
                          "restart changed — the running config stays).",
                          {"result"})),
        reload_ok(r.gauge("llmgate_config_last_reload_ok", "0 while the last reload was refused, else 1.").with({})),
        admin_requests(r.counter("llmgate_admin_requests_total", "Admin API requests, by HTTP status.", {"status"})),
        rule_scale(r.gauge("llmgate_ratelimit_scale",
                           "The factor a load-driven rule's limit is multiplied by now (1: as configured).", {"rule"})),
        cache_lookups(r.counter("llmgate_cache_lookups_total",
                                "Response cache lookups (when a pool cannot answer, or temperature-0 repeats with "
                                "cache.mode: always), by result (hit, miss).",
                                {"result"})),
        cache_stores(r.counter("llmgate_cache_stores_total", "Answers stored in the response cache.").with({})),
        cache_declined(r.counter("llmgate_cache_declined_total",
                                 "Answers the response cache did not store: a request new to a full cache (stored "
                                 "if it comes again), or a degraded answer where a better one is fresh.")
                           .with({})),
        cache_entries(r.gauge("llmgate_cache_entries", "Answers held by the response cache.").with({})),
        cache_bytes(r.gauge("llmgate_cache_bytes", "Bytes held by the response cache (keys and answers).").with({})) {}

  observe::counter_family& requests;
  observe::histogram_family& duration;
  observe::histogram_family& tpot;
  observe::histogram_family& prompt_lengths;
  observe::histogram_family& completion_lengths;
  observe::histogram_family& ttft;
  observe::gauge& in_flight;
  observe::counter_family& upstream;
  observe::counter_family& upstream_connects;
  observe::counter& disconnects;
  observe::gauge& connections_open;
  observe::counter& connections;
  observe::counter_family& connections_refused_family;
  observe::counter& connections_refused;
  observe::counter_family& tls_handshakes;
  observe::counter& connections_refused_per_client;
  observe::counter_family& prompt_tokens;
  observe::counter_family& completion_tokens;
  observe::counter_family& refusals;
  observe::counter_family& shadow_refusals;
  observe::gauge_family& tracked_keys;
  observe::gauge_family& overflowed;
  observe::counter_family& retries;
  observe::counter& retries_refused;
  observe::counter_family& busy;
  observe::counter_family& breaker_transitions;
  observe::histogram_family& queue_wait;
  observe::counter_family& queued;
  observe::gauge_family& backend_healthy;
  observe::gauge_family& backend_breaker;
  observe::gauge_family& backend_in_flight;
  observe::gauge_family& backend_in_flight_peak;
  observe::gauge_family& backend_queue;
  observe::gauge_family& backend_queue_peak;
  observe::counter_family& health_checks;
  observe::counter_family& scrapes;
  observe::gauge_family& engine_waiting;
  observe::gauge_family& engine_running;
  observe::gauge_family& engine_kv;
  observe::gauge_family& gpu_util;
  observe::gauge_family& gpu_memory;
  observe::gauge_family& gpu_temp;
  observe::gauge_family& degrade_level;
  observe::counter_family& degraded;
  observe::counter_family& level_changes;
  observe::counter_family& reloads;
  observe::gauge& reload_ok;
  observe::counter_family& admin_requests;
  observe::gauge_family& rule_scale;
  observe::counter_family& cache_lookups;
  observe::counter& cache_stores;
  observe::counter& cache_declined;
  observe::gauge& cache_entries;
  observe::gauge& cache_bytes;
};

// What a reload or an admin change replaces; each request keeps the one it started with.
struct live_state {
  std::shared_ptr<const control::config> cfg; // in force: `base` with the load-driven factors applied
  std::shared_ptr<limit::rule_set> rules;
  std::shared_ptr<const control::config> base; // as loaded (or as the admin API changed it)
};

// The model label of a request answered before its model was known.
constexpr std::string_view k_no_model = "-";

// What one request carries through the pipeline.
struct request_state {
  std::shared_ptr<const live_state> live; // the config and limit rules this request runs on
  // For the access log and the metrics by outcome:
  std::int64_t unix_ms = 0;                              // when it was read
  std::string_view method, path;                         // into the request, which outlives this state
  std::string client, key_name;                          // the caller's address and key name (access log only)
  std::string_view served_model;                         // the model that answered (L3: the fallback)
  std::string_view refused_by;                           // the rule that refused it
  std::optional<double> ttft;                            // seconds to the first streamed event
  std::int64_t usage_prompt = -1, usage_completion = -1; // as the backend reported them
  bool cache_hit = false;
  bool stream_broken = false; // a stream that broke off after its head was sent (200 on the wire)
  std::string request_id;
  request_fields fields;       // of the request's head, into the request
  openai::header_list headers; // added to every response of this request
  std::string model{k_no_model};
  std::size_t model_index = SIZE_MAX; // into config::models, once resolved
  std::int64_t tokens_used = -1;      // prompt + completion tokens the backend reported; -1: unknown
  bool want_usage = false;            // a token rule admitted this request: ask the backend for usage
  std::int64_t prompt_tokens = -1;    // counted (or estimated) before admission
  std::string backend;
  int status = 0;
  clock::time_point start = clock::now();
  bool client_gone = false;
  upstream::connection* upstream = nullptr; // the exchange in progress, closed if the client leaves
  io::timer* waiting_on = nullptr;          // a wait in progress (line, backoff), cancelled if the client leaves
  clock::time_point deadline = clock::time_point::max(); // the client's own (x-request-timeout, x-stainless-timeout)
  std::function<void(clock::duration)> on_first_token;   // the attempt's breaker verdict, given early for streams
  int level = 0;                                         // the ladder's level applied to this request
  bool stream_off = false;                               // L1: asked upstream without streaming, the SSE made here
  bool capturing = false;                                // the relayed stream is kept for the response cache ...
  std::string captured;                                  // ... here,
  bool stream_complete = false;                          // and stored only if it ended with [DONE], unbroken
};

// What forwarding produced: already streamed to the client, a whole answer
// to write, or a local error reply.
struct forward_result {
  enum kind_t { streamed, answer, reply } kind = reply;
  unsigned failure = 0;           // a control::failure_kind when the backend failed
  clock::duration took{0};        // request sent → response head or first token
  std::size_t backend = SIZE_MAX; // who answered (config index)
  bool deadline = false;          // cut by the client's own deadline: no verdict on the backend, no retry
  bool keep_alive = true;
  int status = 0;
  io::media_type content_type;
  std::string body;
  openai::local_reply error;
};

} // namespace

struct gateway::impl final : control::admin_target {
  impl(std::shared_ptr<const control::config> c, observe::registry& r, std::string n)
      : cfg(std::move(c)), registry(r), metrics(r), note(std::move(n)) {
    limits.header_timeout = cfg->server.header_timeout;
    limits.body_timeout = cfg->server.body_timeout;
    limits.idle_timeout = cfg->server.idle_timeout;
    limits.write_timeout = cfg->server.idle_timeout;
    limits.max_body_bytes = cfg->server.max_body_bytes;
    limits.max_header_bytes = cfg->server.max_header_bytes;
    limits.max_headers = cfg->server.max_headers;
  }

  struct worker {
    worker(const control::config& cfg, const std::vector<std::unique_ptr<upstream::backend_state>>& backends,
           std::uint64_t seed)
        : router(cfg, backends, seed), rng(seed) {}
    // The end of a worker, in the one safe order: first the loop's shutdown
    // destroys every coroutine frame still parked in it (they refer to the
    // members below), then the members' own sockets and timers close while
    // the loop's services still exist, then the services go with the loop.
    // (Letting the members go after the loop freed its services was a
    // use-after-free at exit, caught by the ASan fault test after a Redis
    // restart.)
    ~worker() {
      ioc.shutdown();
      redis.reset();
    }
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // An io_context whose shutdown (protected in Asio) the worker can call before its members go.
    struct loop : net::io_context {
      using net::io_context::io_context;
      using net::io_context::shutdown;
    };
    // One thread runs this loop; only posts (drain) come from elsewhere, so the reactor needs no locks.
    std::unique_ptr<limit::redis_limiter::link> redis; // this worker's Redis connection (limits.store: redis)
    loop ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    std::optional<io::acceptor> acceptor;
    session_registry sessions;
    // Forwarded requests watch their client once they have lasted 20 ms
    // (watch_roster): the instant simulator's answers, a cache-fast backend's,
    // come sooner; a model's do not.
    watch_roster watches{ioc.get_executor(), std::chrono::milliseconds(20)};
    std::vector<std::unique_ptr<upstream::pool>> pools; // by backend index
    upstream::router router;
    std::mt19937_64 rng; // retry jitter
    std::thread thread;
    // Metric series looked up once per worker, so the request path does no
    // label lookups (by model index and backend index).
    struct model_series {
      observe::histogram* duration;
      observe::histogram* ttft;
      observe::counter* prompt_tokens;
      observe::counter* completion_tokens;
      observe::histogram* tpot;
      observe::histogram* prompt_lengths;
      observe::histogram* completion_lengths;
      std::unordered_map<int, observe::counter*> by_status; // by status × 8 + outcome
    };
    struct backend_series {
      observe::counter* connects;
      std::unordered_map<std::string_view, observe::counter*> by_result;
      observe::counter* ok = nullptr; // by_result's "ok", the one nearly every request counts: no lookup
    };
    std::vector<model_series> model_metrics;
    std::vector<backend_series> backend_metrics;
    // The same for requests answered before their model was known (a refusal
    // by the limits before the body is read, a bad body): found on first use.
    observe::histogram* no_model_duration = nullptr;
    std::unordered_map<int, observe::counter*> no_model_by_status;           // by status × 8 + outcome
    std::vector<std::pair<std::string, observe::counter*>> refusals_by_rule; // a handful: scanned
    // Relaying streams: a read's events and what goes to the client from
    // them. Filled and used up between two awaits of one stream (the loop
    // runs one coroutine at a time), so a held stream keeps neither.
    std::vector<openai::sse_event> stream_events;
    std::string stream_out;
    // The snapshot of the live state this worker's requests take (impl::snapshot(worker&)).
    std::shared_ptr<const live_state> live_held;
    std::uint64_t live_seen = ~std::uint64_t{0};
  };

  observe::counter& refusals_of(worker& w, std::string_view rule) {
    for (auto& [name, counter] : w.refusals_by_rule)
      if (name == rule) return *counter;
    return *w.refusals_by_rule.emplace_back(std::string(rule), &metrics.refusals.with({rule})).second;
  }

  void prepare_series(worker& w) {
    for (const auto& m : cfg->models)
      w.model_metrics.push_back({&metrics.duration.with({m.name}),
                                 &metrics.ttft.with({m.name}),
                                 &metrics.prompt_tokens.with({m.name}),
                                 &metrics.completion_tokens.with({m.name}),
                                 &metrics.tpot.with({m.name}),
                                 &metrics.prompt_lengths.with({m.name}),
                                 &metrics.completion_lengths.with({m.name}),
                                 {}});
    for (const auto& b : cfg->backends)
      w.backend_metrics.push_back({&metrics.upstream_connects.with({b.name}), {}, nullptr});
  }

  observe::counter& upstream_result(worker& w, std::size_t backend, std::string_view result) {
    auto& series = w.backend_metrics[backend];
    if (series.ok && result == "ok") return *series.ok;
    auto& slot = series.by_result[result];
    if (!slot) slot = &metrics.upstream.with({cfg->backends[backend].name, result});
    if (result == "ok") series.ok = slot;
    return *slot;
  }

  std::shared_ptr<const control::config> cfg;
  observe::registry& registry;
  gateway_metrics metrics;
  std::string note;
  session_limits limits;
  std::vector<std::unique_ptr<worker>> workers;
  std::atomic<std::shared_ptr<const live_state>> live{
      std::make_shared<const live_state>(live_state{cfg, std::make_shared<limit::rule_set>(*cfg), cfg})};
  // Load-driven limits (rules' scale): each scaled rule's step, with the
  // ladder's hysteresis, and the factor in force (guarded by reload_mutex).
  std::map<std::string, degrade::hysteresis, std::less<>> scale_steps;
  std::map<std::string, double, std::less<>> scale_factors;
  std::shared_ptr<const live_state> snapshot() const { return live.load(); }
  // Bumped after every store to `live`: a worker takes a new snapshot when it changed.
  std::atomic<std::uint64_t> live_version{0};
  void publish(std::shared_ptr<const live_state> next) {
    live.store(std::move(next));
    live_version.fetch_add(1, std::memory_order_release);
  }
  // The snapshot as a worker's request takes it. live.load() is a lock and a
  // reference count shared by every worker (four atomic writes to lines the
  // other workers write too, on every request); this is a read of
  // live_version, which changes only on a reload, and a count on the
  // worker's own holder of the snapshot (an aliasing shared_ptr).
  std::shared_ptr<const live_state> snapshot(worker& w) {
    if (const auto v = live_version.load(std::memory_order_acquire); v != w.live_seen) {
      auto holder = std::make_shared<std::shared_ptr<const live_state>>(live.load());
      w.live_held = std::shared_ptr<const live_state>(holder, holder->get());
      w.live_seen = v;
    }
    return w.live_held;
  }
  std::mutex reload_mutex;                                               // one reload or admin change at a time
  std::function<std::shared_ptr<const control::config>()> reload_source; // reads the config file again
  std::string watched_path;                                              // the config file, watched for changes
  std::optional<io::acceptor> admin_acceptor;                            // admin.listen, on worker 0
  std::uint16_t admin_port = 0;
  // Health, breaker, slots and scraped load of each backend, shared by the workers.
  // server.tls: the listeners' certificate (both listeners: the admin token must not travel in the clear).
  std::optional<tls::context> tls_server =
      cfg->server.tls.enabled() ? std::optional(tls::context::server(cfg->server.tls)) : std::nullopt;
  // Each backend's TLS client context (https:// url or metrics URLs), by backend index; unset: plain HTTP.
  std::vector<std::optional<tls::context>> backend_tls = [this] {
    std::vector<std::optional<tls::context>> out;
    for (const auto& b : cfg->backends) {
      const bool needed =
          b.tls.enabled || b.metrics_url.starts_with("https://") || b.gpu_metrics_url.starts_with("https://");
      try {
        out.push_back(needed ? std::optional(tls::context::client(b.tls)) : std::nullopt);
      } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("backend {}: {}", b.name, e.what()));
      }
    }
    return out;
  }();
  const tls::context* tls_of(std::size_t backend) const {
    return backend_tls[backend] ? &*backend_tls[backend] : nullptr;
  }
  std::vector<std::unique_ptr<upstream::backend_state>> backends = [this] {
    std::vector<std::unique_ptr<upstream::backend_state>> out;
    for (const auto& b : cfg->backends) out.push_back(std::make_unique<upstream::backend_state>(b));
    return out;
  }();
  // limits.store: redis — the fleet's limits, decided in Redis (null for local).
  std::unique_ptr<limit::redis_limiter> redis_limits =
      cfg->limits.redis_store ? std::make_unique<limit::redis_limiter>(*cfg, registry) : nullptr;
  upstream::retry_budget budget{cfg->retry.budget_ratio, cfg->retry.budget_min_per_second, cfg->retry.budget_window};
  std::vector<std::shared_ptr<const tokenize::qwen_tokenizer>> tokenizers = load_tokenizers(*cfg); // by model index
  // The degradation ladder of each model, and what its pool did lately (by model index).
  std::vector<std::unique_ptr<degrade::model_ladder>> ladders = [this] {
    std::vector<std::unique_ptr<degrade::model_ladder>> out;
    for (const auto& m : cfg->models) {
      out.push_back(std::make_unique<degrade::model_ladder>(m.level));
      metrics.degrade_level.with({m.name}).set(out.back()->level());
    }
    return out;
  }();
  std::unique_ptr<observe::access_log> access; // made in start() (a file that cannot be opened stops it there)
  std::unique_ptr<degrade::response_cache> cache =
      cfg->cache.mode == control::cache_mode::off
          ? nullptr
          : std::make_unique<degrade::response_cache>(cfg->cache.max_entries, cfg->cache.max_bytes, cfg->cache.ttl);
  std::vector<std::unique_ptr<degrade::window_stats>> pool_stats = [this] {
    std::vector<std::unique_ptr<degrade::window_stats>> out;
    for (std::size_t i = 0; i < cfg->models.size(); ++i)
      out.push_back(std::make_unique<degrade::window_stats>(cfg->degrade.window));
    return out;
  }();

  // Each model's tokenizer, each file loaded once (a second or so each).
  static std::vector<std::shared_ptr<const tokenize::qwen_tokenizer>> load_tokenizers(const control::config& c) {
    std::map<std::string, std::shared_ptr<const tokenize::qwen_tokenizer>> by_path;
    std::vector<std::shared_ptr<const tokenize::qwen_tokenizer>> out;
    for (const auto& m : c.models) {
      if (m.tokenizer.empty()) {
        out.emplace_back();
        continue;
      }
      auto& t = by_path[m.tokenizer];
      if (!t) t = tokenize::qwen_tokenizer::load(m.tokenizer);
      out.push_back(t);
    }
    return out;
  }
  std::atomic<int> open_connections{0};
  server::client_quota per_client{cfg->server.max_connections_per_client};
  std::atomic<bool> draining{false};
  std::atomic<bool> stopping{false}; // the loops are being torn down: no new work is spawned
  std::uint16_t port = 0;
  std::int64_t started_at =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();

  void bind(worker& w, std::uint16_t p) {
    const auto address = net::ip::make_address(cfg->listen.host);
    tcp::endpoint ep(address, p);
    w.acceptor.emplace(w.ioc);
    w.acceptor->open(ep.protocol());
    w.acceptor->set_option(io::acceptor::reuse_address(true));
    // Every worker listens on the same port; the kernel spreads connections over them.
    w.acceptor->set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    w.acceptor->bind(ep);
    w.acceptor->listen(net::socket_base::max_listen_connections);
  }

  io::task<void> accept_loop(worker& w) {
    for (;;) {
      auto [ec, socket] = co_await w.acceptor->async_accept(k_tuple);
      if (ec) {
        if (!w.acceptor->is_open() || ec == net::error::operation_aborted) co_return;
        spdlog::warn("accept failed: {}", ec.message()); // e.g. out of file descriptors: back off a little
        io::timer t(w.ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(k_tuple);
        continue;
      }
      // Take the slot first, then check: workers accept concurrently.
      if (open_connections.fetch_add(1) >= static_cast<int>(cfg->server.max_connections)) {
        --open_connections;
        metrics.connections_refused.inc();
        continue; // socket closes as it goes out of scope
      }
      // One client address may hold only so many (a proxy in trusted_proxies carries many clients).
      std::string address;
      if (cfg->server.max_connections_per_client > 0) {
        boost::system::error_code aec;
        if (const auto ep = socket.remote_endpoint(aec); !aec) address = ep.address().to_string();
        if (address.empty() || control::is_trusted_proxy(*snapshot()->cfg, address)) // trusted_proxies as reloaded
          address.clear();
        else if (!per_client.take(address)) {
          --open_connections;
          metrics.connections_refused_per_client.inc();
          continue;
        }
      }
      metrics.connections.inc();
      metrics.connections_open.add(1);
      net::co_spawn(
          w.ioc,
          [this, &w, s = std::move(socket), address = std::move(address)]() mutable -> io::task<void> {
            if (auto plain = co_await terminate_tls(std::move(s)))
              co_await run_session(
                  std::move(plain->first), limits, w.sessions,
                  [this, &w](session_context& ctx, request& req) { return handle(w, ctx, req); }, plain->second);
            if (!address.empty()) per_client.give_back(address);
            metrics.connections_open.add(-1);
            --open_connections;
          },
          net::detached);
    }
  }

  // A client's connection as the session reads it, with the client's
  // address: the socket itself, or with server.tls the plain end of its TLS
  // relay once the handshake passed (within header_timeout, so a client
  // dribbling its handshake cannot hold the connection). nullopt: the
  // handshake failed and the connection is closed.
  io::task<std::optional<std::pair<io::socket, std::string>>> terminate_tls(io::socket s) {
    boost::system::error_code ec;
    std::string peer;
    if (const auto ep = s.remote_endpoint(ec); !ec) peer = ep.address().to_string();
    if (!tls_server) co_return std::pair{std::move(s), std::move(peer)};
    auto plain = co_await tls::secure(std::move(s), *tls_server, {}, cfg->server.header_timeout);
    metrics.tls_handshakes.with({plain ? "ok" : "failed"}).inc();
    if (!plain) {
      spdlog::debug("TLS handshake with {} failed: {}", peer, plain.error().message());
      co_return std::nullopt;
    }
    co_return std::pair{std::move(*plain), std::move(peer)};
  }

  // ---- the pipeline ------------------------------------------------------

  // Request → route by path. The order inside proxy() is the request path of
  // docs/ARCHITECTURE.md: parse, route, forward (balance, rewrite, relay).
  io::task<bool> handle(worker& w, session_context& ctx, request& req) {
    request_state st;
    st.live = snapshot(w);
    st.unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    st.method = req.method_string();
    st.fields = request_fields(req);
    st.request_id = std::string(st.fields.request_id);
    // A client's id is kept when it is printable ASCII (it goes into logs and upstream headers).
    if (st.request_id.empty() || st.request_id.size() > 128 ||
        std::any_of(st.request_id.begin(), st.request_id.end(), [](char c) { return c < 0x21 || c > 0x7e; }))
      st.request_id = new_request_id();
    // Room for what a proxied answer usually gets (its id, the backend, three
    // rate-limit headers): the list grew one reallocation at a time.
    st.headers.reserve(8);
    st.headers.emplace_back("x-request-id", st.request_id);
    add_cors(st);

    const auto target = parse_target(req.target());
    st.path = target.path;
    // The completions go straight on; everything else is answered by
    // serve_other, whose frame (its many small answers' temporaries) is gone
    // before the next request: this frame stays small for every held stream.
    if (req.method() == http::verb::post &&
        (target.path == "/v1/chat/completions" || target.path == "/v1/completions")) {
      const auto kind =
          target.path == "/v1/chat/completions" ? openai::endpoint::chat_completions : openai::endpoint::completions;
      co_return co_await proxy(w, ctx, req, st, kind);
    }
    co_return co_await serve_other(w, ctx, req, st, target);
  }

  // Every path but a POST to the completions: the rest of handle's routing.
  io::task<bool> serve_other(worker& w, session_context& ctx, request& req, request_state& st, target_parts target) {
    const auto method = req.method();
    if (method == http::verb::options) co_return co_await preflight(ctx, req, st);

    if (target.path == "/tokenize") {
      if (method != http::verb::post)
        co_return co_await reply(ctx, req, st, openai::method_not_allowed(req.method_string()));
      co_return co_await tokenize_endpoint(w, ctx, req, st);
    }
    if (target.path == "/v1/chat/completions" || target.path == "/v1/completions") // not a POST (see handle)
      co_return co_await reply(ctx, req, st, openai::method_not_allowed(req.method_string()));
    if (method != http::verb::get && method != http::verb::head) {
      // Built before the co_await: g++ 12 destroys a conditional's temporary
      // twice when it is an argument inside co_await (a double free).
      const bool internals = target.path == "/metrics" || target.path == "/dashboard";
      const bool known = target.path == "/healthz" || target.path == "/readyz" || target.path == "/v1/models" ||
                         target.path == "/chat" || (internals && !cfg->internals_on_admin);
      const auto refusal = known ? openai::method_not_allowed(req.method_string()) : openai::not_found(target.path);
      co_return co_await reply(ctx, req, st, refusal);
    }
    if (target.path == "/healthz") co_return co_await text(ctx, req, st, http::status::ok, R"({"status":"ok"})");
    if (target.path == "/readyz") {
      if (draining.load())
        co_return co_await text(ctx, req, st, http::status::service_unavailable, R"({"status":"draining"})");
      co_return co_await text(ctx, req, st, http::status::ok, R"({"status":"ready"})");
    }
    if ((target.path == "/metrics" || target.path == "/dashboard") && !cfg->internals_on_admin)
      co_return co_await internals(ctx, req, st, target.path);
    if (target.path == "/v1/models") co_return co_await text(ctx, req, st, http::status::ok, models_json());
    if (target.path == "/chat") co_return co_await seed_chat(w, ctx, req, st, target);
    co_return co_await reply(ctx, req, st, openai::not_found(target.path));
  }

  // /metrics and /dashboard (on the public listener, or with metrics_listener: admin on the admin one).
  io::task<bool> internals(session_context& ctx, request& req, request_state& st, std::string_view path) {
    if (path == "/dashboard")
      co_return co_await text(ctx, req, st, http::status::ok, std::string(observe::k_dashboard_html),
                              "text/html; charset=utf-8");
    refresh_limit_gauges();
    refresh_backend_gauges();
    co_return co_await text(ctx, req, st, http::status::ok, registry.expose(), "text/plain; version=0.0.4");
  }

  std::string models_json() const {
    json::array data;
    for (const auto& m : cfg->models) {
      json::object o{{"id", m.name}, {"object", "model"}, {"created", started_at}, {"owned_by", "llmgate"}};
      if (m.context_length > 0) o["max_model_len"] = m.context_length;
      data.push_back(std::move(o));
    }
    return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
  }

  static bool origin_allowed(const control::config& c, std::string_view origin) {
    if (origin.empty()) return false;
    for (const auto& o : c.cors.allow_origins)
      if (o == "*" || o == origin) return true;
    return false;
  }

  void add_cors(request_state& st) const {
    const auto origin = st.fields.origin;
    if (!origin_allowed(*st.live->cfg, origin)) return;
    st.headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
    st.headers.emplace_back("Vary", "Origin");
    st.headers.emplace_back("Access-Control-Expose-Headers",
                            "x-request-id, x-llmgate-backend, x-llmgate-degraded, x-llmgate-cache, retry-after");
  }

  io::task<bool> preflight(session_context& ctx, request& req, request_state& st) {
    if (!origin_allowed(*st.live->cfg, st.fields.origin)) {
      const openai::local_reply forbidden{
          403, openai::error_body("Origin not allowed.", "invalid_request_error", {}, "cors_origin_not_allowed"), {}};
      co_return co_await reply(ctx, req, st, forbidden);
    }
    auto headers = st.headers;
    headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const auto asked = req[http::field::access_control_request_headers];
    headers.emplace_back("Access-Control-Allow-Headers",
                         asked.empty() ? std::string("authorization, content-type") : std::string(asked));
    headers.emplace_back(
        "Access-Control-Max-Age",
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(st.live->cfg->cors.max_age).count()));
    st.status = 204;
    co_return co_await write_answer(ctx, req, 204, {}, headers, {});
  }

  io::task<bool> text(session_context& ctx, request& req, request_state& st, http::status status, std::string body,
                      std::string_view content_type = "application/json") {
    st.status = static_cast<int>(status);
    co_return co_await write_answer(ctx, req, st.status, content_type, st.headers, body);
  }

  // A local reply as far as it goes without waiting (see start_answer): on
  // the request path (refusals, errors) reply()'s frame is saved this way.
  answer_write start_reply(session_context& ctx, request& req, request_state& st, const openai::local_reply& r) {
    st.status = r.status;
    return start_answer(ctx, req, r.status, "application/json", st.headers, r.body, &r.headers);
  }

  io::task<bool> reply(session_context& ctx, request& req, request_state& st, const openai::local_reply& r) {
    auto a = start_reply(ctx, req, st, r);
    if (a.done()) co_return a.keep;
    co_return co_await finish_answer(ctx, std::move(a));
  }

  // A completion request refused before forwarding: the reply, then its record.
  io::task<bool> refused(worker& w, session_context& ctx, request& req, request_state& st,
                         const openai::local_reply& r) {
    auto a = start_reply(ctx, req, st, r);
    bool keep = a.keep;
    if (!a.done()) keep = co_await finish_answer(ctx, std::move(a)); // not inside ?: (g++ 12's temporaries there)
    record(w, st);
    co_return keep;
  }

  // A shaper's delay, never past the client's deadline (then forwarding answers 504 at once).
  static io::task<void> hold(session_context& ctx, const request_state& st, limit::nanos delay) {
    io::timer t(ctx.stream.get_executor(), std::min<clock::time_point>(clock::now() + delay, st.deadline));
    co_await t.async_wait(k_tuple);
  }

  // Keys tracked and overflows per rule, read when scraped (not on the request path).
  void refresh_limit_gauges() {
    if (cache) {
      metrics.cache_entries.set(static_cast<double>(cache->size()));
      metrics.cache_bytes.set(static_cast<double>(cache->bytes()));
    }
    const auto lv = snapshot();
    const auto& rules = *lv->rules;
    for (std::size_t i = 0; i < rules.size(); ++i) {
      metrics.tracked_keys.with({rules.rule(i).name}).set(static_cast<double>(rules.tracked_keys(i)));
      metrics.overflowed.with({rules.rule(i).name}).set(static_cast<double>(rules.overflowed(i)));
    }
  }

  // Each backend's health, breaker, slots and scraped load, read when scraped.
  void refresh_backend_gauges() {
    const auto now = steady_now();
    for (const auto& s : backends) {
      const std::string& name = s->config().name;
      metrics.backend_healthy.with({name}).set(s->healthy() ? 1 : 0);
      const auto b = s->breaker(now);
      metrics.backend_breaker.with({name}).set(b == upstream::backend_state::breaker_state::closed      ? 0
                                               : b == upstream::backend_state::breaker_state::half_open ? 1
                                                                                                        : 2);
      const auto f = s->slots.read();
      metrics.backend_in_flight.with({name}).set(f.in_flight);
      metrics.backend_in_flight_peak.with({name}).set(f.peak_in_flight);
      metrics.backend_queue.with({name}).set(f.queued);
      metrics.backend_queue_peak.with({name}).set(f.peak_queued);
      const auto e = s->engine();
      if (e.waiting) metrics.engine_waiting.with({name}).set(*e.waiting);
      if (e.running) metrics.engine_running.with({name}).set(*e.running);
      if (e.kv_usage) metrics.engine_kv.with({name}).set(*e.kv_usage);
      const auto g = s->gpu();
      if (g.util_percent) metrics.gpu_util.with({name}).set(*g.util_percent);
      if (g.memory_used_mib) metrics.gpu_memory.with({name}).set(*g.memory_used_mib * 1024 * 1024);
      if (g.temperature_c) metrics.gpu_temp.with({name}).set(*g.temperature_c);
    }
  }

  // Health checks and metric scrapes of every backend, on worker 0's loop.
  void start_monitors(worker& w) {
    for (std::size_t i = 0; i < backends.size(); ++i) {
      auto& s = backends[i];
      const std::string name = s->config().name;
      upstream::monitor_hooks hooks{[this, name](std::string_view result) {
                                      metrics.health_checks.with({name, result}).inc();
                                    },
                                    [this, name](std::string_view target, std::string_view result) {
                                      metrics.scrapes.with({name, target, result}).inc();
                                    }};
      if (s->config().health.enabled)
        net::co_spawn(w.ioc, upstream::check_health(*s, draining, hooks, tls_of(i)), net::detached);
      if (cfg->scrape.enabled)
        net::co_spawn(w.ioc, upstream::scrape_metrics(*s, cfg->scrape, draining, hooks, tls_of(i)), net::detached);
    }
  }

  // Every 10 s, idle limit keys are dropped so memory follows the traffic (worker 0 runs it).
  io::task<void> sweep_loop(worker& w) {
    io::timer timer(w.ioc);
    while (!draining.load()) {
      timer.expires_after(std::chrono::seconds(10));
      if (auto [ec] = co_await timer.async_wait(k_tuple); ec) co_return;
      if (const auto dropped = snapshot()->rules->sweep(steady_now()); dropped > 0)
        spdlog::debug("limits: dropped {} idle key(s)", dropped);
    }
  }

  // Every degrade.interval the triggers of each model are read against its
  // pool's signals, and the ladder moves (worker 0 runs it).
  io::task<void> degrade_loop(worker& w) {
    io::timer timer(w.ioc);
    while (!draining.load()) {
      timer.expires_after(snapshot()->cfg->degrade.interval);
      if (auto [ec] = co_await timer.async_wait(k_tuple); ec) co_return;
      const auto now = steady_now();
      const auto lv = snapshot(); // triggers and dwell as last reloaded
      const auto& c = *lv->cfg;
      std::vector<degrade::signal_values> by_model;
      for (std::size_t i = 0; i < c.models.size(); ++i) by_model.push_back(signals(w, i, now));
      update_scales(by_model, now);
      for (std::size_t i = 0; i < c.models.size(); ++i) {
        const auto& m = c.models[i];
        const auto target = degrade::target_level(m.triggers ? *m.triggers : c.degrade.triggers, by_model[i]);
        if (auto changed = ladders[i]->on_target(target, now, c.degrade.dwell)) level_changed(i, *changed, "triggers");
      }
    }
  }

  // What a model's pool looks like now (by control::signal).
  degrade::signal_values signals(worker& w, std::size_t model, std::chrono::nanoseconds now) const {
    using control::signal;
    auto v = degrade::unknown_signals();
    const auto& pool = w.router.pool(model);
    if (pool.empty()) return v;
    double down = 0, queued = 0;
    std::optional<double> waiting, temp, util, mem;
    auto most = [](std::optional<double>& acc, std::optional<double> x) {
      if (x) acc = std::max(acc.value_or(*x), *x);
    };
    for (const auto b : pool) {
      const auto& s = *backends[b];
      if (!s.healthy() || s.breaker(now) != upstream::backend_state::breaker_state::closed) ++down;
      queued += s.slots.read().queued;
      if (const auto e = s.engine(); e.waiting) waiting = waiting.value_or(0) + *e.waiting;
      const auto g = s.gpu();
      most(temp, g.temperature_c);
      most(util, g.util_percent);
      if (g.memory_used_mib && g.memory_free_mib && *g.memory_used_mib + *g.memory_free_mib > 0)
        most(mem, *g.memory_used_mib / (*g.memory_used_mib + *g.memory_free_mib));
    }
    degrade::at(v, signal::breakers_open) = down / static_cast<double>(pool.size());
    degrade::at(v, signal::queue_depth) = queued;
    const auto window = pool_stats[model]->read(now);
    degrade::at(v, signal::ttft_p95) = window.ttft_p95;
    degrade::at(v, signal::queue_wait_p95) = window.queue_wait_p95;
    degrade::at(v, signal::error_rate) = window.error_rate;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    degrade::at(v, signal::waiting) = waiting.value_or(nan);
    degrade::at(v, signal::gpu_temp) = temp.value_or(nan);
    degrade::at(v, signal::gpu_util) = util.value_or(nan);
    degrade::at(v, signal::gpu_mem) = mem.value_or(nan);
    return v;
  }

  void level_changed(std::size_t model, int level, std::string_view cause) {
    const auto& name = cfg->models[model].name;
    metrics.degrade_level.with({name}).set(level);
    metrics.level_changes.with({name, cause}).inc();
    spdlog::warn("model {}: degradation level L{} ({})", name, level, cause);
  }

  // ---- limits that change while it runs: reload and the admin API ---------

  // Takes `next` on (validated already): refused when a part that needs a
  // restart changed. Rules keep their state where name, key and algorithm
  // did not change; requests in flight finish on the config they started with.
  std::optional<control::admin_failure> apply_config(std::shared_ptr<const control::config> next,
                                                     const std::string& who, std::string_view what) {
    std::lock_guard lock(reload_mutex);
    return apply_locked(std::move(next), who, what);
  }

  std::optional<control::admin_failure> apply_locked(std::shared_ptr<const control::config> next,
                                                     const std::string& who, std::string_view what) {
    const auto cur = snapshot();
    if (const auto parts = restart_needed(*cur->base, *next); !parts.empty()) {
      std::string list;
      for (const auto& p : parts) list += (list.empty() ? "" : ", ") + p;
      metrics.reloads.with({"refused"}).inc();
      metrics.reload_ok.set(0);
      spdlog::error("{} by {} refused: {} changed, which needs a restart; the running config stays", what, who, list);
      return control::admin_failure{409, fmt::format("Refused: {} changed, which needs a restart.", list)};
    }
    install(next);
    // A level written in the config applies when the config's level changed (an admin's stays otherwise).
    for (std::size_t i = 0; i < next->models.size(); ++i) {
      const int was = cur->cfg->models[i].level, now = next->models[i].level;
      if (was == now) continue;
      const auto changed = now >= 0 ? ladders[i]->set_manual(now) : ladders[i]->release();
      if (changed) level_changed(i, *changed, "config");
    }
    spdlog::set_level(spdlog::level::from_str(next->log_level));
    metrics.reloads.with({"ok"}).inc();
    metrics.reload_ok.set(1);
    spdlog::info("{} by {}: {} rule(s), {} key(s), {} tier(s) in force", what, who, next->limits.rules.size(),
                 next->keys.size(), next->tiers.size());
    return std::nullopt;
  }

  // `base` with the load-driven factors applied, in force from now (under reload_mutex).
  void install(std::shared_ptr<const control::config> base) {
    const auto cur = snapshot();
    auto in_force = base;
    bool scaled = false;
    // Factors of rules that no longer scale (a reload removed their scale) are forgotten.
    std::erase_if(scale_factors, [&](const auto& kv) {
      return std::none_of(base->limits.rules.begin(), base->limits.rules.end(),
                          [&](const control::rule_config& r) { return r.name == kv.first && !r.scale.empty(); });
    });
    std::erase_if(scale_steps, [&](const auto& kv) { return !scale_factors.contains(kv.first); });
    for (const auto& r : base->limits.rules)
      if (const auto f = scale_factors.find(r.name); f != scale_factors.end() && f->second != 1.0) scaled = true;
    if (scaled) {
      auto copy = std::make_shared<control::config>(*base);
      for (auto& r : copy->limits.rules) {
        const auto f = scale_factors.find(r.name);
        if (f == scale_factors.end() || f->second == 1.0) continue;
        auto times = [&](std::int64_t v) {
          return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(static_cast<double>(v) * f->second)));
        };
        r.count = times(r.count);
        if (r.burst > 0) r.burst = times(r.burst);
        for (auto& e : r.schedule) {
          e.count = times(e.count);
          e.burst = times(e.burst);
        }
      }
      in_force = std::move(copy);
    }
    auto rules = std::make_shared<limit::rule_set>(*in_force, cur->rules.get());
    publish(std::make_shared<const live_state>(live_state{in_force, std::move(rules), std::move(base)}));
  }

  // Load-driven limits: each scaled rule's factor from the signals, with the
  // ladder's hysteresis (lowered at once, raised one step per dwell).
  void update_scales(const std::vector<degrade::signal_values>& by_model, std::chrono::nanoseconds now) {
    std::lock_guard lock(reload_mutex);
    const auto cur = snapshot();
    const auto& base = *cur->base;
    bool changed = false;
    for (const auto& r : base.limits.rules) {
      if (r.scale.empty()) continue;
      // Steps: 1, then each distinct factor from the weakest to the strongest.
      std::vector<double> steps{1.0};
      for (const auto& sc : r.scale) steps.push_back(sc.factor);
      std::sort(steps.begin() + 1, steps.end(), std::greater<>());
      steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
      int target = 0;
      for (const auto& sc : r.scale) {
        double value = std::numeric_limits<double>::quiet_NaN();
        for (std::size_t m = 0; m < by_model.size(); ++m) {
          if (!sc.model.empty() && cfg->models[m].name != sc.model) continue;
          const double v = degrade::at(by_model[m], sc.what);
          if (!std::isnan(v) && (std::isnan(value) || v > value)) value = v;
        }
        if (std::isnan(value) || value <= sc.above) continue;
        const auto step = std::find(steps.begin(), steps.end(), sc.factor) - steps.begin();
        target = std::max(target, static_cast<int>(step));
      }
      auto& h = scale_steps[r.name];
      const int step = std::min<int>(h.update(target, now, base.degrade.dwell), static_cast<int>(steps.size()) - 1);
      const double factor = steps[static_cast<std::size_t>(step)];
      auto& in_force = scale_factors[r.name];
      if (in_force == 0) { // first seen
        in_force = 1.0;
        metrics.rule_scale.with({r.name}).set(1.0);
      }
      if (factor == in_force) continue;
      spdlog::warn("rule {}: limit × {} (load-driven)", r.name, factor);
      in_force = factor;
      metrics.rule_scale.with({r.name}).set(factor);
      changed = true;
    }
    if (changed) install(cur->base);
  }

  std::optional<control::admin_failure> reload(const std::string& who) override {
    if (!reload_source) {
      spdlog::warn("reload by {}: started without a config file, nothing to reload", who);
      return control::admin_failure{409, "Started without a config file: nothing to reload."};
    }
    std::shared_ptr<const control::config> next;
    try {
      next = reload_source();
    } catch (const control::config_error& e) {
      metrics.reloads.with({"refused"}).inc();
      metrics.reload_ok.set(0);
      std::string problems;
      for (const auto& p : e.problems())
        problems += fmt::format("{}{}: {}", problems.empty() ? "" : "; ", p.key.empty() ? std::string("config") : p.key,
                                p.message);
      spdlog::error("reload by {} refused, the running config stays: {}", who, problems);
      return control::admin_failure{409, "Refused, the running config stays: " + problems};
    }
    return apply_config(std::move(next), who, "reload");
  }

  std::optional<std::size_t> model_named(std::string_view name) const {
    const auto* m = cfg->find_model(name);
    if (!m) return std::nullopt;
    return model_index_of(*m);
  }

  std::optional<control::admin_failure> set_level(std::string_view model, int level, const std::string& who) override {
    const auto i = model_named(model);
    if (!i) return control::admin_failure{404, fmt::format("No model named '{}'.", model)};
    spdlog::warn("admin {}: model {} set to L{} by hand (overrides its triggers until released)", who,
                 cfg->models[*i].name, level);
    if (const auto changed = ladders[*i]->set_manual(level)) level_changed(*i, *changed, "admin");
    return std::nullopt;
  }

  std::optional<control::admin_failure> release_level(std::string_view model, const std::string& who) override {
    const auto i = model_named(model);
    if (!i) return control::admin_failure{404, fmt::format("No model named '{}'.", model)};
    spdlog::warn("admin {}: model {} released: its triggers decide its level again", who, cfg->models[*i].name);
    if (const auto changed = ladders[*i]->release()) level_changed(*i, *changed, "admin");
    return std::nullopt;
  }

  std::optional<control::admin_failure> set_limit(std::string_view rule, std::string_view limit_text,
                                                  std::optional<std::int64_t> burst, const std::string& who) override {
    std::lock_guard lock(reload_mutex); // the base edited is the one in force (no reload in between)
    auto next = std::make_shared<control::config>(*snapshot()->base);
    auto it = std::find_if(next->limits.rules.begin(), next->limits.rules.end(),
                           [&](const control::rule_config& r) { return r.name == rule; });
    if (it == next->limits.rules.end()) return control::admin_failure{404, fmt::format("No rule named '{}'.", rule)};
    const auto rate = limit::parse_rate(limit_text);
    const bool concurrency = it->algorithm == control::limit_algorithm::concurrency;
    if (!rate || rate->count < 1 || (concurrency ? rate->period.count() != 0 : rate->period.count() <= 0))
      return control::admin_failure{400, concurrency
                                             ? "Expected a number of requests in flight, e.g. \"4\"."
                                             : "Expected a count per period, e.g. \"100/minute\" or \"10/30s\"."};
    const bool default_burst = it->burst == it->count;
    it->count = rate->count;
    it->period = std::chrono::duration_cast<control::duration>(rate->period);
    if (burst)
      it->burst = *burst;
    else if (default_burst)
      it->burst = rate->count;
    spdlog::warn("admin {}: rule {} limit set to {} (burst {}) until the next reload", who, rule, limit_text,
                 it->burst);
    return apply_locked(std::move(next), who, "admin limit change");
  }

  std::string status_json() override {
    const auto lv = snapshot();
    const auto now = steady_now();
    json::array models, backends_out, rules_out;
    for (std::size_t i = 0; i < cfg->models.size(); ++i) {
      const auto v = ladders[i]->state();
      json::object m{{"name", cfg->models[i].name},
                     {"level", v.level},
                     {"set_by", v.manual ? "hand" : "triggers"},
                     {"triggers_level", v.automatic},
                     {"triggers_target", v.target}};
      if (!cfg->models[i].fallback.empty()) m["fallback"] = cfg->models[i].fallback;
      models.push_back(std::move(m));
    }
    using bs = upstream::backend_state::breaker_state;
    for (const auto& b : backends) {
      const auto slots = b->slots.read();
      const auto br = b->breaker(now);
      backends_out.push_back(json::object{{"name", b->config().name},
                                          {"healthy", b->healthy()},
                                          {"breaker", br == bs::open        ? "open"
                                                      : br == bs::half_open ? "half_open"
                                                                            : "closed"},
                                          {"in_flight", slots.in_flight},
                                          {"queued", slots.queued}});
    }
    const auto& rs = *lv->rules;
    for (std::size_t i = 0; i < rs.size(); ++i) {
      const auto& r = rs.rule(i);
      const bool concurrency = r.algorithm == control::limit_algorithm::concurrency;
      json::object o{{"name", r.name},
                     {"algorithm", std::string(control::to_string(r.algorithm))},
                     {"limit", concurrency
                                   ? std::to_string(r.count)
                                   : limit::format_rate({r.count, std::chrono::duration_cast<limit::nanos>(r.period)})},
                     {"burst", r.burst}};
      {
        std::lock_guard lock(reload_mutex);
        if (const auto f = scale_factors.find(r.name); f != scale_factors.end()) o["scale"] = f->second;
      }
      if (!redis_limits) {
        o["tracked_keys"] = rs.tracked_keys(i);
        o["overflowed"] = rs.overflowed(i);
      }
      rules_out.push_back(std::move(o));
    }
    return json::serialize(json::object{{"store", redis_limits ? "redis" : "local"},
                                        {"models", std::move(models)},
                                        {"backends", std::move(backends_out)},
                                        {"rules", std::move(rules_out)}});
  }

  // The admin listener's requests (worker 0): routed and checked by control::handle_admin.
  io::task<bool> admin_request(session_context& ctx, request& req) {
    const auto target = parse_target(req.target());
    if (cfg->internals_on_admin && (target.path == "/metrics" || target.path == "/dashboard") &&
        (req.method() == http::verb::get || req.method() == http::verb::head)) {
      request_state st; // no token: the admin listener is private (see docs/CONFIG.md)
      co_return co_await internals(ctx, req, st, target.path);
    }
    const control::admin_request r{req.method_string(), target.path, req[http::field::authorization], req.body(),
                                   std::string(ctx.peer)};
    const auto out = control::handle_admin(r, *this, cfg->admin.token);
    metrics.admin_requests.with({std::to_string(out.status)}).inc();
    co_return co_await write_answer(ctx, req, out.status, "application/json", {}, out.body);
  }

  io::task<void> admin_loop(worker& w, io::acceptor& acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(k_tuple);
      if (ec) {
        if (!acceptor.is_open() || ec == net::error::operation_aborted) co_return;
        continue;
      }
      net::co_spawn(
          w.ioc,
          [this, &w, s = std::move(socket)]() mutable -> io::task<void> {
            if (auto plain = co_await terminate_tls(std::move(s)))
              co_await run_session(
                  std::move(plain->first), limits, w.sessions,
                  [this](session_context& ctx, request& req) { return admin_request(ctx, req); }, plain->second);
          },
          net::detached);
    }
  }

  // The config file, looked at every second: a change (an edit, or a
  // Kubernetes ConfigMap's symlink swapped over the directory) is reloaded.
  io::task<void> watch_loop(worker& w, std::string path) {
    auto fingerprint = [&path] {
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) return std::string(); // follows symlinks
      return fmt::format("{}:{}:{}:{}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    };
    auto last = fingerprint();
    io::timer timer(w.ioc);
    while (!draining.load()) {
      timer.expires_after(std::chrono::seconds(1));
      if (auto [ec] = co_await timer.async_wait(k_tuple); ec) co_return;
      const auto now = fingerprint();
      if (now.empty() || now == last) continue; // gone for a moment (mid-swap): wait for it
      last = now;
      (void)reload("a change of " + path);
    }
  }

  // A decision by Redis. on_limit: queue waits here too, asking again until
  // the rule's max_wait (or the client's deadline); across replicas there is
  // no first-in-first-out line, only retries at the rule's retry_after.
  // The decision is written into d (the caller's: no copy in its frame).
  io::task<void> admit_shared(worker& w, session_context& ctx, request_state& st, const limit::request_facts& facts,
                              limit::redis_limiter::decided& d) {
    d = co_await redis_limits->admit(*w.redis, st.live->rules, facts, steady_now());
    if (d.a.allowed || d.unavailable || !d.a.refused_by || !d.a.refused_by->queue ||
        d.a.refusal.retry_after == limit::k_never)
      co_return;
    auto until = clock::now() + d.a.refused_by->max_wait;
    if (st.deadline < until) until = st.deadline;
    io::timer timer(ctx.stream.get_executor());
    client_watch watch(ctx.stream.socket(), [&] {
      st.client_gone = true;
      timer.cancel();
    });
    while (!d.a.allowed && !st.client_gone && !d.unavailable && d.a.refused_by &&
           d.a.refusal.retry_after != limit::k_never) {
      // A known wait (a window, a bucket) sleeps until it is over; a
      // concurrency slot may free up any moment, so that one polls.
      const bool polls = d.a.refused_by->algorithm == control::limit_algorithm::concurrency;
      const auto due = clock::now() + d.a.refusal.retry_after;
      if (!polls && due > until) break; // it cannot pass in time: the 429 now, not later
      auto wait = polls ? clock::duration(std::chrono::milliseconds(50))
                        : std::chrono::duration_cast<clock::duration>(d.a.refusal.retry_after);
      wait = std::max<clock::duration>(wait, std::chrono::milliseconds(1));
      if (clock::now() + wait > until) break;
      timer.expires_after(wait);
      co_await timer.async_wait(k_tuple);
      if (st.client_gone) break;
      d = co_await redis_limits->admit(*w.redis, st.live->rules, facts, steady_now());
    }
  }

  // on_limit: queue — wait in the key's line (FIFO) instead of a 429, for as
  // long as the rule's max_wait allows; polled, since the capacity that frees
  // up may belong to any worker. A client that leaves leaves the line too.
  // current: the refusal on entry, the last decision on return.
  io::task<void> wait_in_line(session_context& ctx, request_state& st, const limit::request_facts& facts,
                              limit::admission& current) {
    const auto& rule = *current.refused_by;
    auto& rules = *st.live->rules;
    const auto ticket = rules.enqueue(current.refused_rule, current.refused_key);
    struct leave_guard {
      limit::rule_set& rules;
      const limit::queue_ticket& t;
      ~leave_guard() { rules.leave(t); }
    } leave{rules, ticket};
    auto deadline = steady_now() + rule.max_wait;
    if (st.deadline != clock::time_point::max()) // the client's own deadline comes first
      deadline =
          std::min(deadline, steady_now() + std::chrono::duration_cast<limit::nanos>(st.deadline - clock::now()));
    io::timer timer(ctx.stream.get_executor());
    client_watch watch(ctx.stream.socket(), [&] {
      st.client_gone = true;
      timer.cancel();
    });
    for (;;) {
      if (current.allowed || st.client_gone) co_return;
      if (!current.refused_by->queue || current.refusal.retry_after == limit::k_never) co_return;
      // Sleep until this request could pass, checking at least every 20 ms
      // (the line ahead may move sooner), and never past the deadline.
      // Behind others in line: nothing to compute, so check back at the 20 ms cap
      // rather than spinning on the shard's lock.
      auto wait = current.behind_others
                      ? limit::nanos{std::chrono::milliseconds(20)}
                      : std::clamp<limit::nanos>(current.refusal.retry_after, std::chrono::milliseconds(1),
                                                 std::chrono::milliseconds(20));
      const auto now = steady_now();
      if (!current.behind_others && now + current.refusal.retry_after > deadline) co_return;
      if (now + wait > deadline) {
        if (now >= deadline) co_return;
        wait = deadline - now;
      }
      timer.expires_after(wait);
      co_await timer.async_wait(k_tuple);
      if (st.client_gone) co_return;
      current = rules.admit(facts, steady_now(), &ticket);
    }
  }

  // OpenAI's x-ratelimit-* headers from the most constraining request rule
  // and token rule that applied.
  void add_rate_headers(const limit::admission& a, request_state& st) const {
    const limit::decision* requests = nullptr;
    const limit::decision* tokens = nullptr;
    for (const auto& h : a.holds) {
      const auto& r = st.live->rules->rule(h.rule);
      if (r.algorithm == control::limit_algorithm::concurrency) continue;
      auto*& slot = r.cost_tokens ? tokens : requests;
      if (!slot || h.verdict.remaining < slot->remaining) slot = &h.verdict;
    }
    struct names {
      std::string_view limit, remaining, reset;
    };
    auto put = [&](const limit::decision* d, const names& n) {
      if (!d) return;
      st.headers.push_back({n.limit, std::to_string(d->limit)});
      st.headers.push_back({n.remaining, std::to_string(d->remaining)});
      st.headers.push_back({n.reset, limit::format_reset(d->reset)});
    };
    put(requests, {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"});
    put(tokens, {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"});
  }

  openai::local_reply too_many_requests(const limit::admission& a, const control::caller& who) const {
    const auto& r = *a.refused_by;
    const auto& d = a.refusal;
    // A refusal is what a flood gets, so its text is cheap to make: formats
    // compiled, and the common message assembled in one allocation (fmt's
    // run-time format parsing was ~1.2k instructions of a ~22k refusal).
    const std::string limit_text = r.algorithm == control::limit_algorithm::concurrency
                                       ? fmt::format(FMT_COMPILE("{} in flight"), r.count)
                                       : limit::format_rate({r.count, r.period});
    openai::local_reply out;
    out.status = 429;
    std::string message;
    if (d.retry_after == limit::k_never) {
      message = fmt::format(FMT_COMPILE("Request too large for rule '{}' ({}, {}): its cost can never pass; the "
                                        "most it allows at once is {}."),
                            r.name, limit_text, control::to_string(r.algorithm), d.limit);
    } else {
      const auto ms = std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(d.retry_after).count());
      const auto limit = std::to_string(d.limit), remaining = std::to_string(d.remaining);
      const auto again = limit::format_reset(d.retry_after);
      const std::string_view caller = who.anonymous ? std::string_view("your address") : std::string_view(who.name);
      message = assemble([&](auto&& put) {
        put("Rate limit reached for rule '");
        put(r.name);
        put("' (");
        put(limit_text);
        put(", ");
        put(control::to_string(r.algorithm));
        put(") for ");
        put(caller);
        put(": limit ");
        put(limit);
        put(", remaining ");
        put(remaining);
        put(". Please try again in ");
        put(again);
        put(".");
      });
      out.headers.emplace_back("Retry-After", std::to_string((ms + 999) / 1000));
      out.headers.emplace_back("retry-after-ms", std::to_string(ms));
    }
    out.body = openai::error_body(message, r.cost_tokens ? "tokens" : "requests", {}, "rate_limit_exceeded");
    return out;
  }

  // failed: the service failed the request (5xx, or a stream broken after it
  // began); rejected: the request was refused as invalid (4xx other than 429).
  static constexpr std::array<std::string_view, 7> k_outcomes{"ok",     "rate_limited", "degraded", "cached",
                                                              "failed", "cancelled",    "rejected"};
  static std::size_t outcome_of(const request_state& st) {
    if (st.status == 429) return 1;
    if (st.status == 499) return 5;
    if (st.status >= 500 || st.stream_broken) return 4;
    if (st.status >= 400) return 6;
    if (st.cache_hit) return 3;
    if (st.level > 0) return 2;
    return 0;
  }

  void record(worker& w, request_state& st) {
    const auto duration = seconds_since(st.start);
    const auto outcome = outcome_of(st);
    if (st.model_index == SIZE_MAX) { // the model is set with its index: this one's is k_no_model
      auto& counter = w.no_model_by_status[st.status * 8 + static_cast<int>(outcome)];
      if (!counter) counter = &metrics.requests.with({k_no_model, std::to_string(st.status), k_outcomes[outcome]});
      counter->inc();
      if (!w.no_model_duration) w.no_model_duration = &metrics.duration.with({k_no_model});
      w.no_model_duration->observe(duration);
    } else {
      auto& series = w.model_metrics[st.model_index];
      auto& counter = series.by_status[st.status * 8 + static_cast<int>(outcome)];
      if (!counter) counter = &metrics.requests.with({st.model, std::to_string(st.status), k_outcomes[outcome]});
      counter->inc();
      series.duration->observe(duration);
      if (st.usage_prompt >= 0) series.prompt_lengths->observe(static_cast<double>(st.usage_prompt));
      if (st.usage_completion >= 0) series.completion_lengths->observe(static_cast<double>(st.usage_completion));
      if (st.ttft && st.usage_completion >= 2 && st.status == 200)
        series.tpot->observe((duration - *st.ttft) / static_cast<double>(st.usage_completion - 1));
    }
    if (!access || !access->enabled()) return;
    observe::access_record r;
    r.unix_ms = st.unix_ms;
    r.request_id = st.request_id;
    r.client = st.client;
    r.key = st.key_name;
    r.method = st.method;
    r.path = st.path;
    r.model = st.model;
    r.served_model = st.served_model;
    r.backend = st.backend;
    r.status = st.status;
    r.outcome = k_outcomes[outcome];
    r.rule = st.refused_by;
    r.level = st.level;
    r.cache_hit = st.cache_hit;
    if (st.ttft) r.ttft_ms = *st.ttft * 1000;
    r.duration_ms = duration * 1000;
    r.prompt_tokens = st.usage_prompt;
    r.completion_tokens = st.usage_completion;
    access->write(r);
  }

  // The body parsed and checked, its model found and its prompt counted (a
  // prompt that cannot fit the context is refused before any backend is
  // touched): the refusal for a bad request, or nothing.
  std::optional<openai::local_reply> understand(const request& req, openai::endpoint kind,
                                                json::monotonic_resource& arena, request_state& st,
                                                std::optional<openai::request_view>& view,
                                                const control::model_config*& model, tokenize::prompt_count& prompt) {
    auto parsed = openai::parse_request(req.body(), kind, &arena, {.canonical = cache != nullptr});
    if (!parsed) return parsed.error();
    view.emplace(std::move(*parsed));
    model = cfg->find_model(view->model);
    if (!model) return openai::model_not_found(view->model);
    st.model = model->name;
    st.model_index = static_cast<std::size_t>(model - cfg->models.data());
    // Prompt tokens: exact with the model's tokenizer, else an estimate.
    prompt = tokenize::count_prompt(*view, req.body(), tokenizers[st.model_index].get());
    st.prompt_tokens = prompt.tokens;
    if (prompt.exact && model->context_length > 0 &&
        prompt.longest + view->max_tokens.value_or(0) > model->context_length)
      return context_too_long(*model, prompt.longest, view->max_tokens);
    return std::nullopt;
  }

  // POST /v1/chat/completions and /v1/completions.
  // capture: instead of writing a whole answer, hand it back (the seed's
  // /chat reshapes it); refusals and errors are written as usual.
  io::task<bool> proxy(worker& w, session_context& ctx, request& req, request_state& st, openai::endpoint kind,
                       forward_result* capture = nullptr) {
    metrics.in_flight.add(1);
    struct in_flight_guard {
      observe::gauge& g;
      ~in_flight_guard() { g.add(-1); }
    } guard{metrics.in_flight};

    // The pipeline, in order: who calls (before anything else, so a refused
    // caller costs nothing), what is asked (a bad request never reaches a
    // backend or uses quota), which model (unknown: 404, no quota used),
    // admission by the limit rules, then forwarding. When the rules do not
    // need the body, admission comes before what is asked (see below).
    // This frame lives as long as a stream does, so it keeps few slots: every
    // refusal goes through one local_reply, every await's result is written in
    // place (g++ gives each temporary that spans a co_await a slot of its own).
    const auto& lcfg = *st.live->cfg; // as last reloaded (keys, tiers, limits, ladder); the rest never changes
    auto& rules = *st.live->rules;
    openai::local_reply refusal;
    const auto client_ip = control::client_address(lcfg, ctx.peer, st.fields.forwarded_for);
    const auto who = control::identify(lcfg, st.fields.authorization, client_ip);
    if (access && access->enabled()) {
      st.client = client_ip;
      if (who && !who->anonymous) st.key_name = who->name; // anonymous callers are known by their address
    }
    if (!who) {
      refusal = openai::invalid_api_key();
      co_return co_await refused(w, ctx, req, st, refusal);
    }
    // The client's own deadline caps every wait and timeout of this request.
    if (const auto h = st.fields.request_timeout; !h.empty()) {
      const auto t = control::parse_timeout_seconds(h);
      if (!t) {
        refusal =
            openai::invalid_request("x-request-timeout must be a number of seconds (e.g. 30 or 2.5), at most 86400.",
                                    "x-request-timeout", "invalid_timeout");
        co_return co_await refused(w, ctx, req, st, refusal);
      }
      st.deadline = st.start + *t;
    } else if (const auto t = control::parse_timeout_seconds(st.fields.stainless_timeout)) {
      st.deadline = st.start + *t;
    }
    // What is asked: the body parsed and checked, the model found, the prompt
    // counted. When no limit rule needs the body, the rules decide first: a
    // refused request costs no parse (a malformed body from a client over its
    // limit gets 429), and a request the body shows to be bad is refunded.
    // The parsed body lives in an arena that ends with the request (a stream's
    // whole life): its first block sized to the body, not a fixed 4 KiB.
    json::monotonic_resource arena(std::min<std::size_t>(4096, 1024 + 3 * req.body().size()));
    std::optional<openai::request_view> view;
    const control::model_config* model = nullptr;
    tokenize::prompt_count prompt;
    const bool body_first = redis_limits || rules.needs_body();
    if (body_first)
      if (auto bad = understand(req, kind, arena, st, view, model, prompt)) {
        refusal = std::move(*bad);
        co_return co_await refused(w, ctx, req, st, refusal);
      }
    const auto target = parse_target(req.target());
    limit::request_facts facts{client_ip,
                               who->name,
                               who->tier,
                               model ? std::string_view(model->name) : std::string_view(),
                               target.path,
                               [&req](std::string_view name) { return req[name]; },
                               model ? prompt.tokens + view->max_tokens.value_or(model->default_max_tokens) : 0};
    // The limits: decided here (limits.store: local) or by Redis for the fleet.
    std::optional<limit::redis_limiter::decided> shared;
    limit::admission admitted;
    if (redis_limits) {
      shared.emplace();
      co_await admit_shared(w, ctx, st, facts, *shared);
      if (shared->unavailable) {
        refusal = openai::service_unavailable(
            "The rate limiter is unavailable (redis.on_failure: deny). Please try again shortly.", 1,
            "rate_limiter_unavailable");
        co_return co_await refused(w, ctx, req, st, refusal);
      }
      admitted = shared->a;
      redis_limits->keep_leases(*w.redis, *shared);
    } else {
      admitted = rules.admit(facts, steady_now());
      if (!admitted.allowed && admitted.refused_by->queue && admitted.refusal.retry_after != limit::k_never)
        co_await wait_in_line(ctx, st, facts, admitted);
    }
    // Concurrency slots and leases go back however the request ends.
    auto give_back = [&] {
      if (!shared)
        rules.release(admitted);
      else if (!stopping.load()) // at teardown the loop cannot send it: the lease expires by itself
        redis_limits->release(*w.redis, *shared);
    };
    if (st.client_gone) {
      metrics.disconnects.inc();
      st.status = 499;
      give_back();
      record(w, st);
      co_return false;
    }
    for (const auto& name : admitted.shadow_refusals) {
      metrics.shadow_refusals.with({name}).inc();
      spdlog::info("request {}: shadow rule {} would have refused {}", st.request_id, name, who->name);
    }
    const auto headers_before_limits = st.headers.size();
    add_rate_headers(admitted, st);
    if (!admitted.allowed) {
      refusals_of(w, admitted.refused_by->name).inc();
      st.refused_by = admitted.refused_by->name;
      refusal = too_many_requests(admitted, *who);
      co_return co_await refused(w, ctx, req, st, refusal);
    }
    st.want_usage = std::any_of(admitted.holds.begin(), admitted.holds.end(),
                                [&](const limit::rule_hold& h) { return rules.rule(h.rule).cost_tokens; });
    struct release_guard {
      decltype(give_back)& fn;
      ~release_guard() { fn(); }
    } release{give_back};
    if (!body_first)
      if (auto bad = understand(req, kind, arena, st, view, model, prompt)) {
        rules.refund(admitted, steady_now()); // as if it never came: nor do its headers count it
        st.headers.resize(headers_before_limits);
        refusal = std::move(*bad);
        co_return co_await refused(w, ctx, req, st, refusal);
      }
    if (admitted.delay > limit::nanos{0}) // a leaky-bucket shaper holds the request to its rate
      co_await hold(ctx, st, admitted.delay);

    // The ladder: the model's level, if the caller's tier is degraded from it.
    st.level = degrade::applied_level(ladders[st.model_index]->level(), degrade_from(lcfg, who->tier));
    static constexpr std::array<std::string_view, 5> k_levels{"L0", "L1", "L2", "L3", "L4"};
    const auto level_name = k_levels[static_cast<std::size_t>(st.level)];
    st.headers.emplace_back("x-llmgate-degraded", std::string(level_name));
    if (st.level > 0) metrics.degraded.with({model->name, level_name}).inc();
    forward_result result;
    st.served_model = model->name;
    if (st.level >= 4) {
      result = static_reply(lcfg, st, *view, *model);
    } else {
      const auto* serving = model; // L3: the fallback model's pool answers, under its own name
      if (st.level >= 3 && !model->fallback.empty()) serving = cfg->find_model(model->fallback);
      st.stream_off = st.level >= 1 && view->stream;
      st.served_model = serving->name;
      // The response cache answers when the pool cannot (or, with mode
      // always, a temperature-0 repeat); every whole answer is kept for that.
      std::string key;
      bool hit = false;
      if (cache) {
        key = degrade::cache_key(std::move(view->canonical), model->name, target.path,
                                 cfg->cache.per_key ? who->name : "");
        const bool repeat = cfg->cache.mode == control::cache_mode::always && temperature_zero(*view);
        const bool down = !w.router.has_candidate(model_index_of(*serving), {}, steady_now());
        if (repeat || down) hit = from_cache(st, key, result);
        st.capturing = view->stream && !st.stream_off;
      }
      if (!hit) {
        co_await forward(w, ctx, req, st, *view, *serving, result);
        if (cache && !st.client_gone) {
          if (result.kind == forward_result::answer && result.status == 200)
            keep_answer(key, result.body, result.content_type, serving->name, st.level);
          else if (result.kind == forward_result::streamed && st.stream_complete && st.status == 200)
            keep_answer(key, st.captured, "text/event-stream", serving->name, st.level);
          else if ((result.kind == forward_result::reply && result.error.status >= 500 && !result.deadline) ||
                   (result.kind == forward_result::answer && result.status >= 500))
            from_cache(st, key, result); // every backend failed it: a cached answer if there is one
        }
      }
    }
    if (st.tokens_used >= 0) { // token costs corrected by the real usage
      if (!shared)
        rules.settle_tokens(admitted, st.tokens_used, steady_now());
      else
        redis_limits->settle_tokens(*w.redis, *shared, st.tokens_used);
    }
    bool keep = result.keep_alive;
    if (capture && result.kind == forward_result::answer && !st.client_gone) {
      *capture = result;
      co_return true; // the caller writes it, and records the request
    }
    if (st.client_gone) result.kind = forward_result::streamed; // nobody to write to
    switch (result.kind) {
    case forward_result::streamed: break;
    case forward_result::answer: {
      st.status = result.status;
      auto a = start_answer(ctx, req, result.status, result.content_type, st.headers, result.body);
      keep = a.keep;
      if (!a.done()) keep = co_await finish_answer(ctx, std::move(a));
      break;
    }
    case forward_result::reply: keep = co_await reply(ctx, req, st, result.error); break; // an error: not hot
    }
    if (st.client_gone) {
      metrics.disconnects.inc();
      st.status = 499; // nginx's code for "client closed request"
      keep = false;
    }
    record(w, st);
    co_return keep;
  }

  // Sleeps unless the client leaves or the deadline comes first; false when it did not sleep it out.
  io::task<bool> pause(session_context& ctx, request_state& st, clock::duration d) {
    if (clock::now() + d >= st.deadline) co_return false;
    io::timer t(ctx.stream.get_executor(), d);
    st.waiting_on = &t;
    co_await t.async_wait(k_tuple);
    st.waiting_on = nullptr;
    co_return !st.client_gone;
  }

  // Balance over the model's pool; retry on another backend what failed
  // before anything reached the client, within max_attempts, with backoff and
  // within the retry budget. Every outcome feeds the backend's breaker.
  // The outcome is written into `out` (it was returned, and moved five or
  // six times on its way back: ~500 instructions a request).
  // All the while the client is watched (from 20 ms on: worker::watches): if
  // it disconnects, the upstream request is closed at once so the backend
  // stops generating, and a wait (in a backend's line, or before a retry) ends.
  io::task<void> forward(worker& w, session_context& ctx, request& req, request_state& st, openai::request_view& view,
                         const control::model_config& model, forward_result& out) {
    // The session's read buffer (4 KiB, read into when the connection was
    // idle) would sit unused in every held stream: it goes when the watch
    // starts, unless the client already sent more (pipelined). The watch is
    // here, not in a coroutine around this one: a frame fewer a request.
    late_watch watch(
        w.watches, ctx.stream.socket(),
        [&st] {
          st.client_gone = true;
          if (st.waiting_on) st.waiting_on->cancel();
          if (st.upstream) {
            boost::system::error_code ignored;
            st.upstream->stream.socket().shutdown(io::socket::shutdown_both, ignored);
            st.upstream->stream.close();
          }
        },
        &ctx.buffer);
    const auto& retry = cfg->retry;
    // The clock is read once for each stretch that runs without waiting: a
    // proxied request read it ~20 times, ~3% of its user time (perf).
    auto now = clock::now();
    budget.on_request(steady_nanos(now));
    const auto prompt_key =
        model.balance == control::balance_strategy::prefix_affinity ? openai::prompt_prefix(view) : std::string();
    const auto pool_index = model_index_of(model); // the requested model's, or at L3 its fallback's
    auto& stats = *pool_stats[pool_index];
    // The backends asked so far (inline: a vector was an allocation a request); out holds the last one's outcome.
    boost::container::small_vector<std::size_t, 4> tried;
    const auto tried_list = [&tried] { return std::span<const std::size_t>(tried.data(), tried.size()); };
    for (int attempt = 0; attempt < retry.max_attempts; ++attempt) {
      if (attempt > 0) now = clock::now();
      if (now >= st.deadline) break; // the client's deadline passed (in a limit queue, line, or backoff)
      if (attempt > 0) {
        // A retry only when there is somewhere else to go: no budget, sleep or count spent otherwise.
        if (!w.router.has_candidate(pool_index, tried_list(), steady_nanos(now))) break;
        const auto why = control::to_string(static_cast<control::failure_kind>(out.failure));
        if (!budget.try_retry(steady_nanos(now))) {
          metrics.retries_refused.inc();
          spdlog::debug("request {}: no retry after {} (retry budget spent)", st.request_id, why);
          break;
        }
        if (!co_await pause(ctx, st, upstream::full_jitter_backoff(attempt, retry.backoff, retry.max_backoff, w.rng)))
          break;
        metrics.retries.with({why}).inc();
        now = clock::now(); // after the backoff
      }
      const auto choice = w.router.choose(pool_index, prompt_key, tried_list(), steady_nanos(now));
      if (choice.kind == upstream::router::choice::down) {
        if (!tried.empty()) break; // the failure already seen says more than "none left"
        out = no_backend(model);
        co_return;
      }
      if (choice.kind == upstream::router::choice::busy) {
        out = busy(model, "every backend's queue is full");
        co_return;
      }
      if (choice.half_opened) breaker_changed(choice.backend, upstream::backend_state::breaker_state::half_open);
      auto& state = *backends[choice.backend];
      // The breaker hears how the call went exactly once; a call that ends
      // with no verdict (client gone, deadline, an exception) gives back its probe.
      struct verdict {
        gateway::impl& self;
        std::size_t backend;
        upstream::backend_state& state;
        upstream::backend_state::permit permit;
        bool told = false;
        void tell(const upstream::call_result& r) {
          if (told) return;
          told = true;
          if (auto change = state.report(steady_now(), permit, r)) self.breaker_changed(backend, *change);
        }
        ~verdict() { tell({0, true, {}}); }
      } verdict{*this, choice.backend, state, choice.permit};
      if (choice.kind == upstream::router::choice::line) {
        const auto waited_from = clock::now();
        const auto waited = co_await wait_for_slot(ctx, st, state);
        metrics.queue_wait.with({state.config().name}).observe(seconds_since(waited_from));
        stats.record_queue_wait(seconds_since(waited_from), steady_now());
        if (waited != slot_wait::granted) {
          if (waited == slot_wait::gone)
            out = gone();
          else if (waited == slot_wait::full)
            out = busy(model, "every backend's queue is full");
          else if (clock::now() >= st.deadline)
            out = deadline_passed(model);
          else
            out = busy(model, fmt::format("no slot on backend {} within its queue timeout ({})", state.config().name,
                                          control::format_duration(state.config().queue_timeout)));
          co_return;
        }
      }
      struct slot_guard { // the slot is held for the whole exchange, stream included
        upstream::bulkhead& slots;
        ~slot_guard() { slots.release(); }
      } slot{state.slots};
      tried.push_back(choice.backend);
      // A stream's verdict is given at its first token: a half-open probe
      // should not hold the breaker for a whole long answer. A break later
      // in the stream is still counted while the breaker is closed.
      // What the callback needs, behind one pointer: a capture that fits
      // std::function's own room (two pointers) is not allocated.
      struct first_token_watch {
        struct verdict& attempt;
        degrade::window_stats& pool;
        bool told = false;
      } first_token{verdict, stats};
      st.on_first_token = [&first_token](clock::duration took) {
        first_token.attempt.tell({0, false, took});
        first_token.told = true;
        first_token.pool.record_ttft(std::chrono::duration<double>(took).count(), steady_now());
      };
      auto body =
          openai::rewrite_request(view, model.name, state.config().kind, {st.want_usage, st.stream_off, st.level >= 2});
      co_await exchange(w, ctx, req, st, view, choice.backend, std::move(body), out);
      const auto& r = out;
      st.on_first_token = nullptr;
      const bool no_verdict = (st.client_gone && r.failure == 0) || r.deadline;
      // (ttft_p95 comes from streams only: a whole answer's head comes with its
      // last token, and at L1 every stream becomes one.)
      if (!no_verdict) stats.record_answer(r.failure != 0, steady_now());
      if (first_token.told) {
        if (r.failure && !no_verdict) {
          verdict.told = false;
          verdict.permit.probe = false; // counted only while closed
          verdict.tell({r.failure, false, r.took});
        }
      } else {
        verdict.tell({no_verdict ? 0u : r.failure, no_verdict, r.took});
      }
      if (st.client_gone || r.deadline || r.kind == forward_result::streamed || r.failure == 0 ||
          !(r.failure & retry.on))
        break;
    }
    if (tried.empty())
      out = deadline_passed(model);
    else
      settle(st, out);
  }

  // The client's own deadline passed before a backend could be asked.
  static forward_result deadline_passed(const control::model_config& model) {
    forward_result r;
    r.deadline = true;
    r.error = openai::gateway_timeout(fmt::format(
        "The request's own deadline (x-request-timeout / x-stainless-timeout) passed before model {} could answer.",
        model.name));
    return r;
  }

  // The final result: a whole answer names the backend that gave it.
  void settle(request_state& st, const forward_result& r) const {
    if (r.kind == forward_result::answer && r.backend != SIZE_MAX) name_backend(st, cfg->backends[r.backend].name);
  }

  static forward_result gone() {
    forward_result r;
    r.kind = forward_result::streamed; // nothing more to write
    return r;
  }

  forward_result busy(const control::model_config& model, std::string_view why) {
    metrics.busy.with({model.name}).inc();
    forward_result r;
    r.error = openai::service_unavailable(
        fmt::format("Model {} is busy: {}. Please try again shortly.", model.name, why), 1, "service_busy");
    return r;
  }

  // Every backend of the pool is unhealthy or has its breaker open: 503 with
  // Retry-After from the breaker that reopens first.
  forward_result no_backend(const control::model_config& model) {
    metrics.busy.with({model.name}).inc();
    const auto now = steady_now();
    auto wait = std::chrono::nanoseconds::max();
    for (const auto b : workers.front()->router.pool(model_index_of(model))) {
      const auto& s = *backends[b];
      if (s.healthy())
        wait = std::min<std::chrono::nanoseconds>(wait, s.breaker_retry_after(now));
      else
        wait = std::min<std::chrono::nanoseconds>(wait, s.config().health.interval);
    }
    const auto seconds = wait == std::chrono::nanoseconds::max()
                             ? 1
                             : std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(wait).count());
    forward_result r;
    r.error = openai::service_unavailable(
        fmt::format("Service busy: no backend for model {} is available (unhealthy or circuit breaker open). Please "
                    "try again in "
                    "{} s.",
                    model.name, seconds),
        static_cast<int>(seconds), "no_backend_available");
    return r;
  }

  // The level from which a caller's tier is degraded (an unknown tier: the first).
  static int degrade_from(const control::config& c, std::string_view tier) {
    for (const auto& t : c.tiers)
      if (t.name == tier) return t.degrade_from;
    return c.tiers.empty() ? 1 : c.tiers.front().degrade_from;
  }

  // L4: the configured static reply, shaped as the model's answer, or 503 service busy.
  forward_result static_reply(const control::config& c, request_state& st, const openai::request_view& view,
                              const control::model_config& model) {
    if (c.degrade.static_reply.empty())
      return busy(model, "it is degraded to its static reply (L4) and none is configured");
    forward_result r;
    r.kind = forward_result::answer;
    r.status = 200;
    r.content_type = view.stream ? "text/event-stream" : "application/json";
    r.body = degrade::static_completion(c.degrade.static_reply, model.name, view.kind, view.stream, view.include_usage,
                                        st.request_id);
    return r;
  }

  static bool temperature_zero(const openai::request_view& view) { return view.temperature == 0.0; }

  // A cached answer for this request at its level, as a whole answer marked
  // x-llmgate-cache: hit, written into r; false (r untouched) when none.
  bool from_cache(request_state& st, const std::string& key, forward_result& r) {
    auto e = cache->find(key, st.level, steady_now());
    metrics.cache_lookups.with({e ? "hit" : "miss"}).inc();
    if (!e) return false;
    r = forward_result{};
    r.kind = forward_result::answer;
    r.status = 200;
    r.content_type = std::move(e->content_type);
    r.body = std::move(e->body);
    st.headers.emplace_back("x-llmgate-cache", "hit");
    st.backend = "cache";
    st.cache_hit = true;
    return true;
  }

  void keep_answer(std::string_view key, std::string_view body, std::string_view content_type, std::string_view model,
                   int level) {
    if (body.empty()) return;
    if (cache->store(key, {body, content_type, model, level}, steady_now()))
      metrics.cache_stores.inc();
    else
      metrics.cache_declined.inc();
  }

  std::size_t model_index_of(const control::model_config& m) const {
    return static_cast<std::size_t>(&m - cfg->models.data());
  }

  void breaker_changed(std::size_t backend, upstream::backend_state::breaker_state s) {
    using bs = upstream::backend_state::breaker_state;
    const auto name = s == bs::open ? "open" : s == bs::half_open ? "half_open" : "closed";
    metrics.breaker_transitions.with({cfg->backends[backend].name, name}).inc();
    if (s == bs::open)
      spdlog::warn("backend {}: circuit breaker opened; no traffic for {}", cfg->backends[backend].name,
                   control::format_duration(cfg->backends[backend].breaker.recovery_timeout));
    else
      spdlog::info("backend {}: circuit breaker {}", cfg->backends[backend].name, name);
  }

  enum class slot_wait { granted, full, timed_out, gone };

  // In the backend's line until a slot is handed over, the queue timeout,
  // the request's deadline or the client's departure.
  io::task<slot_wait> wait_for_slot(session_context& ctx, request_state& st, upstream::backend_state& b) {
    auto timer = std::make_shared<io::timer>(ctx.stream.get_executor());
    auto waiter = std::make_shared<upstream::bulkhead::waiter>();
    // A release on another worker's thread wakes this one on its own loop.
    waiter->wake = [timer, ex = ctx.stream.get_executor()] { net::post(ex, [timer] { timer->cancel(); }); };
    switch (b.slots.acquire(waiter)) {
    case upstream::bulkhead::outcome::acquired: co_return slot_wait::granted;
    case upstream::bulkhead::outcome::full: co_return slot_wait::full; // filled up since the router looked
    case upstream::bulkhead::outcome::queued: metrics.queued.with({b.config().name}).inc(); break;
    }
    // However this frame ends (even destroyed while suspended, at shutdown),
    // it leaves the line, and a slot handed over meanwhile goes back.
    struct in_line {
      upstream::bulkhead& slots;
      const std::shared_ptr<upstream::bulkhead::waiter>& waiter;
      bool keep = false; // the slot is the caller's now
      ~in_line() {
        if (slots.leave(waiter) && !keep) slots.release();
      }
    } line{b.slots, waiter};
    timer->expires_at(std::min(clock::now() + b.config().queue_timeout, st.deadline));
    st.waiting_on = timer.get();
    co_await timer->async_wait(k_tuple);
    st.waiting_on = nullptr;
    if (st.client_gone) co_return slot_wait::gone;
    if (!b.slots.leave(waiter)) co_return slot_wait::timed_out;
    line.keep = true; // leave() in the destructor says "granted" again: kept
    co_return slot_wait::granted;
  }

  // Names the backend that answered (once, whichever attempt it was).
  static void name_backend(request_state& st, const std::string& name) {
    for (auto& [k, v] : st.headers)
      if (k == "x-llmgate-backend") {
        v = name;
        return;
      }
    st.headers.emplace_back("x-llmgate-backend", name);
  }

  // One backend: send the request, read the answer, relay it; the outcome,
  // streamed or whole, is written into r (the caller's: a stream keeps it).
  io::task<void> exchange(worker& w, session_context& ctx, request& req, request_state& st,
                          const openai::request_view& view, std::size_t index, std::optional<std::string> rewritten,
                          forward_result& r) {
    // What goes to the backend: the rewritten body, or the client's own bytes.
    const std::string_view body = rewritten ? std::string_view(*rewritten) : std::string_view(req.body());
    auto& pool = *w.pools[index];
    const auto& backend = pool.backend();
    const auto& up = cfg->upstream;
    const auto started = clock::now();
    const auto deadline = std::min(started + up.total_timeout, st.deadline);
    const bool client_deadline = st.deadline <= started + up.total_timeout;
    st.backend = backend.name;
    const bool streamed = view.stream && !st.stream_off; // the backend is asked for SSE (not when L1 makes it here)
    r = forward_result{};
    // r becomes a failure: what it was, its verdict and the reply a client gets.
    auto fail = [&](forward_result::kind_t kind, std::string_view result, unsigned failure, openai::local_reply error) {
      upstream_result(w, index, result).inc();
      r = forward_result{};
      r.kind = kind;
      r.failure = failure;
      r.took = clock::now() - started;
      r.error = std::move(error);
      r.error.headers.emplace_back("x-llmgate-backend", backend.name);
    };
    // A timeout: the backend's fault, unless it was the client's own deadline
    // that ran out (then no verdict on the backend and no retry).
    auto timed_out = [&](std::string_view what) {
      if (clock::now() >= st.deadline && client_deadline) {
        fail(forward_result::reply, "client_deadline", 0,
             openai::gateway_timeout(fmt::format("The request's own deadline (x-request-timeout / "
                                                 "x-stainless-timeout) passed while waiting for backend {}.",
                                                 backend.name)));
        r.deadline = true;
        return;
      }
      fail(forward_result::reply, "timeout", control::failure_timeout,
           openai::gateway_timeout(fmt::format("Backend {} {}.", backend.name, what)));
    };

    // A keep-alive connection the backend closed meanwhile fails on first use;
    // then, and only then, the same backend is tried once on a new connection.
    for (int fresh = 0; fresh < 2; ++fresh) {
      boost::system::result<std::unique_ptr<upstream::connection>> acquired =
          fresh ? nullptr : pool.take_idle(); // never a kept one on the second try
      if (!*acquired) {
        const auto connect_limit =
            std::clamp<clock::duration>(deadline - clock::now(), std::chrono::milliseconds(1), up.connect_timeout);
        acquired = co_await pool.connect(std::chrono::duration_cast<control::duration>(connect_limit));
        if (st.client_gone) co_return fail(forward_result::streamed, "client_gone", 0, {});
      }
      if (!acquired) {
        if (acquired.error() == beast::error::timeout)
          co_return timed_out(
              fmt::format("could not be reached within {}", control::format_duration(up.connect_timeout)));
        co_return fail(forward_result::reply, "connect_error", control::failure_connect,
                       openai::bad_gateway(
                           fmt::format("Backend {} is unreachable: {}.", backend.name, acquired.error().message())));
      }
      auto conn = std::move(*acquired);
      if (!conn->reused) w.backend_metrics[index].connects->inc();
      st.upstream = conn.get();
      struct clear_upstream {
        request_state& st;
        ~clear_upstream() { st.upstream = nullptr; }
      } clear{st};

      // The head by hand, as for responses (see format_head). The backend's
      // own key replaces the client's: client keys never reach a backend.
      // Only what a backend uses: every field is parsed by the backend's
      // API server, on the GPU host's CPU (a whole answer needs no Accept:
      // the body's `stream` decides, as it does for every OpenAI-compatible
      // server).
      const decimal port_text(backend.address.port), length_text(body.size());
      std::string& request_head = conn->head; // the connection's: no allocation on a kept-alive one
      assemble_into(request_head, [&](auto&& put) {
        put("POST "sv);
        put(backend.base_path);
        put(view.kind == openai::endpoint::chat_completions ? "/v1/chat/completions"sv : "/v1/completions"sv);
        put(" HTTP/1.1\r\nHost: "sv);
        put(backend.address.host);
        put(":"sv);
        put(port_text.view());
        put("\r\nContent-Type: application/json\r\n"sv);
        if (streamed) put("Accept: text/event-stream\r\n"sv);
        put("User-Agent: llmgate/0.1\r\nx-request-id: "sv);
        put(st.request_id);
        put("\r\n"sv);
        if (!backend.api_key.empty()) {
          put("Authorization: Bearer "sv);
          put(backend.api_key);
          put("\r\n"sv);
        }
        put("Content-Length: "sv);
        put(length_text.view());
        put("\r\n\r\n"sv);
      });
      const std::array<net::const_buffer, 2> request_buffers{net::buffer(request_head), net::buffer(body)};

      // Until the first token: the head of a whole answer, or a stream's first event.
      const auto first_token_by = std::min(clock::now() + up.first_token_timeout, deadline);
      conn->stream.expires_at(first_token_by);
      boost::system::error_code wec;
      if (const auto sent = conn->stream.write_now(request_buffers); sent < request_head.size() + body.size()) {
        auto [ec, n] = co_await io::write_rest(conn->stream, request_buffers, sent); // rarely: io::write_rest
        wec = ec;
      }
      if (st.client_gone) co_return fail(forward_result::streamed, "client_gone", 0, {});
      if (wec == beast::error::timeout) co_return timed_out("did not take the request");
      if (wec) {
        if (conn->reused) continue;
        co_return fail(forward_result::reply, "connect_error", control::failure_connect,
                       openai::bad_gateway(fmt::format("Backend {} failed: {}.", backend.name, wec.message())));
      }

      io::answer_parser parser;
      parser.body_limit(up.max_response_bytes);
      // Beast reads into the room the buffer has, 512 bytes when new: a
      // whole answer of 16 tokens (~520 bytes from the simulator, more from
      // a real model) took two recv calls or more. 4 KiB for whole answers
      // (nginx's proxy_buffer_size is a page); a stream keeps the small
      // buffer, which it holds for as long as it runs (relay_stream gives a
      // large one back).
      constexpr std::size_t k_answer_read = 4096;
      if (!streamed && conn->buffer.capacity() < k_answer_read) conn->buffer.reserve(k_answer_read);
      // The head as the body is read below: the socket's reads, parsed here,
      // without Beast's composed read (its steps and handler hops were ~1,100
      // instructions of a proxied request).
      boost::system::error_code hec;
      while (!parser.is_header_done()) {
        if (parser.parse_buffered(conn->buffer, hec)) {
          if (hec) break;
          continue;
        }
        auto [rec, n] = co_await conn->stream.async_read_some(io::answer_parser::room_in(conn->buffer), k_tuple);
        if (parser.took_read(conn->buffer, rec, n, hec)) break;
      }
      if (st.client_gone) co_return fail(forward_result::streamed, "client_gone", 0, {});
      if (hec == beast::error::timeout)
        co_return timed_out(fmt::format("did not answer within {}", control::format_duration(up.first_token_timeout)));
      if (hec) {
        if (conn->reused &&
            (hec == http::error::end_of_stream || hec == net::error::connection_reset || hec == net::error::eof))
          continue;
        co_return fail(
            forward_result::reply, "connect_error", control::failure_connect,
            openai::bad_gateway(fmt::format("Backend {} sent no valid answer: {}.", backend.name, hec.message())));
      }

      // Sent and answered: the rewritten body is not kept while the answer
      // streams (the head stays with the connection, for its next request).
      rewritten.reset();

      const int status = parser.status();
      const std::string_view content_type = parser.content_type();
      const openai::reasoning_options ropts{cfg->reasoning_field, view.return_reasoning};

      if (streamed && status == 200 && content_type.starts_with("text/event-stream")) {
        co_await relay_stream(w, ctx, req, st, view, *conn, parser, ropts, first_token_by, deadline, started, r);
        if (r.kind == forward_result::streamed && parser.is_done() && parser.keep_alive() && !st.client_gone)
          pool.release(std::move(conn));
        const std::string_view result = st.client_gone                          ? "client_gone"
                                        : r.deadline                            ? "client_deadline"
                                        : r.failure == control::failure_timeout ? "timeout"
                                        : r.failure != 0                        ? "interrupted"
                                                                                : "ok";
        upstream_result(w, index, result).inc();
        if (r.kind != forward_result::streamed) r.error.headers.emplace_back("x-llmgate-backend", backend.name);
        co_return;
      }
      const auto took = clock::now() - started;

      // A whole answer: read it, then rewrite the reasoning once. Read
      // straight into the string: a buffer here would sit in the coroutine
      // frame of every request, streams included.
      std::string answer;
      boost::system::error_code rec;
      while (!parser.is_done()) {
        // As much as the answer says is left (resize zero-fills), at most 16 KiB a read.
        const auto left = parser.content_length_remaining();
        const auto step = static_cast<std::size_t>(std::clamp<std::uint64_t>(left.value_or(16384), 1, 16384));
        const auto had = answer.size();
        answer.resize(had + step);
        parser.read_into(answer.data() + had, step);
        // What came with the head is parsed without an asynchronous step (io::answer_parser).
        boost::system::error_code ec;
        while (!parser.parse_buffered(conn->buffer, ec)) {
          conn->stream.expires_at(std::min(clock::now() + up.idle_timeout, deadline));
          auto [aec, n] = co_await conn->stream.async_read_some(io::answer_parser::room_in(conn->buffer), k_tuple);
          if (parser.took_read(conn->buffer, aec, n, ec)) break;
        }
        if (ec == http::error::need_buffer) ec = {};
        answer.resize(had + step - parser.room());
        if (ec) {
          rec = ec;
          break;
        }
      }
      if (st.client_gone) co_return fail(forward_result::streamed, "client_gone", 0, {});
      if (rec == beast::error::timeout) co_return timed_out("stopped answering");
      if (rec)
        co_return fail(
            forward_result::reply, "interrupted", control::failure_interrupted,
            openai::bad_gateway(fmt::format("Backend {} broke off its answer: {}.", backend.name, rec.message())));
      const bool reusable = parser.keep_alive();
      r.kind = forward_result::answer;
      r.status = status;
      r.took = took;
      r.failure = status >= 500 ? control::failure_5xx : status == 429 ? control::failure_429 : 0u;
      r.content_type = content_type.empty() ? "application/json" : content_type;
      if (status == 200 && content_type.starts_with("application/json")) {
        openai::usage_counts usage;
        usage.prompt_tokens = usage.completion_tokens = -1;
        auto rewritten = openai::rewrite_response(answer, view.kind, ropts, &usage);
        count_usage(w, st, usage);
        r.body = rewritten ? std::move(*rewritten) : std::move(answer);
        if (st.stream_off) { // L1: the stream the client asked for, made from the whole answer
          if (auto sse = degrade::completion_to_sse(r.body, view.kind, view.include_usage)) {
            r.body = std::move(*sse);
            r.content_type = "text/event-stream";
          }
        }
      } else {
        r.body = std::move(answer);
      }
      if (reusable) pool.release(std::move(conn));
      upstream_result(w, index, status >= 500 ? "status_5xx" : status == 429 ? "status_429" : "ok").inc();
      r.backend = index;
      co_return;
    }
    co_return fail(forward_result::reply, "connect_error", control::failure_connect,
                   openai::bad_gateway(fmt::format("Backend {} closed the connection.", backend.name)));
  }

  void count_usage(worker& w, request_state& st, const openai::usage_counts& u) {
    if (u.prompt_tokens >= 0 && u.completion_tokens >= 0) st.tokens_used = u.prompt_tokens + u.completion_tokens;
    st.usage_prompt = u.prompt_tokens;
    st.usage_completion = u.completion_tokens;
    auto& series = w.model_metrics[st.model_index];
    if (u.prompt_tokens > 0) series.prompt_tokens->inc(static_cast<std::uint64_t>(u.prompt_tokens));
    if (u.completion_tokens > 0) series.completion_tokens->inc(static_cast<std::uint64_t>(u.completion_tokens));
  }

  // One piece of a streamed answer, as a chunk or (HTTP/1.0) as raw bytes:
  // what the socket takes at once (nearly always all of it), without a
  // coroutine frame per event; send_rest writes the rest when it fell short.
  // The chunk's frame is written here: Beast's make_chunk is a sequence of
  // five buffers walked through a variant, a tenth of a token event's cost.
  static constexpr std::string_view k_crlf = "\r\n";
  struct chunk_head {
    std::array<char, 2 * sizeof(std::size_t) + 2> bytes;
    std::size_t size;
    explicit chunk_head(std::size_t n) {
      const auto [end, ec] = std::to_chars(bytes.data(), bytes.data() + bytes.size() - 2, n, 16);
      end[0] = '\r';
      end[1] = '\n';
      size = static_cast<std::size_t>(end + 2 - bytes.data());
    }
    // The chunk: this head, the piece, its CRLF.
    [[nodiscard]] std::array<net::const_buffer, 3> around(std::string_view piece) const {
      return {net::const_buffer(bytes.data(), size), net::buffer(piece), net::buffer(k_crlf)};
    }
  };
  // The bytes sent; `total`, the piece's size on the wire.
  static std::size_t send_piece(session_context& ctx, std::string_view piece, bool chunked, std::size_t& total) {
    if (!chunked) {
      total = piece.size();
      return ctx.stream.write_now(net::buffer(piece));
    }
    const chunk_head head(piece.size());
    const auto chunk = head.around(piece);
    total = net::buffer_size(chunk);
    return ctx.stream.write_now(chunk);
  }
  // `piece` must outlive the wait: the frame's bytes, not the worker's scratch.
  static io::task<boost::system::error_code> send_rest(session_context& ctx, std::string_view piece, bool chunked,
                                                       std::size_t sent) {
    if (!chunked) {
      auto [ec, n] = co_await io::write_rest(ctx.stream, net::buffer(piece), sent);
      co_return ec;
    }
    const chunk_head head(piece.size());
    auto [ec, n] = co_await io::write_rest(ctx.stream, head.around(piece), sent);
    co_return ec;
  }

  // SSE from the backend to the client, event by event as it arrives: each
  // read's complete events go out in one chunk, rewritten only where reasoning
  // must change shape. The response head goes out with the first event, so a
  // backend that fails before its first token leaves the request free to be
  // retried elsewhere (kind reply); once committed, a backend that breaks off
  // gets the client a well-formed error event and a clean end. The outcome
  // is written into result (the caller's: no second copy in this frame).
  io::task<void> relay_stream(worker& w, session_context& ctx, request& req, request_state& st,
                              const openai::request_view& view, upstream::connection& conn, io::answer_parser& parser,
                              openai::reasoning_options ropts, clock::time_point first_token_by,
                              clock::time_point deadline, clock::time_point started, forward_result& result) {
    result = forward_result{};
    result.kind = forward_result::reply;
    // A pooled connection that last carried a whole answer has a 4 KiB
    // buffer: not held for the stream's life (memory per held stream).
    if (conn.buffer.capacity() > 1024) conn.buffer.shrink_to_fit();
    // HTTP/1.0 knows no chunked encoding: its stream ends when the connection closes.
    const bool chunked = req.version() >= 11;
    bool committed = false;
    auto commit = [&]() -> io::task<bool> {
      committed = true;
      result.kind = forward_result::streamed;
      result.status = 200;
      result.took = clock::now() - started;
      if (st.on_first_token) st.on_first_token(result.took);
      result.keep_alive = chunked && keep_alive_for(ctx, req);
      st.status = 200;
      name_backend(st, st.backend);
      st.headers.emplace_back("Cache-Control", "no-cache");
      if (!co_await write_stream_head(ctx, 200, "text/event-stream", st.headers, result.keep_alive, chunked)) {
        st.client_gone = true;
        co_return false;
      }
      co_return true;
    };

    openai::sse_reader reader;
    openai::stream_rewriter rewriter(view.kind, ropts, st.want_usage && !view.include_usage);
    std::string held; // what must outlive a wait (the head's write, a short write): empty otherwise
    bool done_seen = false, first_sent = false;
    std::string failure;
    unsigned failure_kind = 0;
    char buf[1024]; // in the frame of every held stream: token events are a few hundred bytes; a burst takes more reads
    while (!parser.is_done()) {
      parser.read_into(buf, sizeof buf);
      // The answer's next bytes, parsed into buf: what the connection's
      // buffer holds first, then the socket (io::answer_parser says why).
      boost::system::error_code ec;
      while (!parser.parse_buffered(conn.buffer, ec)) {
        conn.stream.expires_at(committed ? std::min(clock::now() + cfg->upstream.idle_timeout, deadline)
                                         : first_token_by);
        auto [rec, n] = co_await conn.stream.async_read_some(io::answer_parser::room_in(conn.buffer), k_tuple);
        if (parser.took_read(conn.buffer, rec, n, ec)) break;
      }
      if (ec == http::error::need_buffer) ec = {};
      const std::string_view got(buf, sizeof buf - parser.room());
      if (st.client_gone) co_return;
      // From here to the first wait the worker's scratch is this stream's.
      auto& events = w.stream_events;
      auto& out = w.stream_out;
      events.clear();
      if (!reader.feed(got, events)) {
        failure = "the backend sent an oversized event";
        failure_kind = control::failure_interrupted;
        break;
      }
      // The bytes go on as they came while no event changes and the reader
      // finds them in the shape append_sse writes (as vLLM and SGLang send
      // them); from the first event that changes, out is written instead.
      bool as_read = reader.verbatim();
      out.clear();
      auto write_out_before = [&](std::size_t i) {
        as_read = false;
        for (std::size_t j = 0; j < i; ++j) openai::append_sse(out, events[j].data, events[j].event);
      };
      for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        if (e.data == "[DONE]") {
          done_seen = true;
          const auto held_back = rewriter.flush();
          if (as_read && held_back.empty()) continue;
          if (as_read) write_out_before(i);
          for (const auto& chunk : held_back) openai::append_sse(out, chunk);
          out += openai::k_sse_done;
          continue;
        }
        const auto rewritten = rewriter.rewrite(e.data);
        if (!rewritten) {
          if (!as_read) openai::append_sse(out, e.data, e.event);
          continue;
        }
        if (as_read) write_out_before(i);
        if (!rewritten->empty()) openai::append_sse(out, *rewritten, e.event); // empty: read for accounting, not sent
      }
      std::string_view piece = events.empty() ? std::string_view() : as_read ? got : std::string_view(out);
      if (!piece.empty()) {
        if (st.capturing) {
          st.captured += piece;
          if (st.captured.size() > k_max_cached_stream) { // too long to be worth keeping
            st.capturing = false;
            std::string().swap(st.captured);
          }
        }
        if (!committed) { // the head goes first, once: out is kept across its write
          if (!as_read) piece = held.assign(out);
          if (!co_await commit()) co_return;
        }
        if (!first_sent) {
          st.ttft = seconds_since(st.start);
          w.model_metrics[st.model_index].ttft->observe(*st.ttft);
          first_sent = true;
        }
        ctx.stream.expires_after(ctx.limits.write_timeout);
        std::size_t total = 0;
        const auto sent = send_piece(ctx, piece, chunked, total);
        boost::system::error_code wec;
        if (sent < total) {
          if (piece.data() == out.data()) piece = held.assign(out);
          wec = co_await send_rest(ctx, piece, chunked, sent);
        }
        if (wec) { // the client went away: drop the backend's answer
          st.client_gone = true;
          conn.stream.close();
          co_return;
        }
        if (!held.empty()) std::string().swap(held);
      }
      // A burst's scratch is not kept beyond what a few events need.
      if (w.stream_out.capacity() > k_kept_stream_scratch) std::string().swap(w.stream_out);
      if (w.stream_events.capacity() > k_kept_stream_scratch / sizeof(openai::sse_event))
        std::vector<openai::sse_event>().swap(w.stream_events);
      if (ec) {
        failure_kind = ec == beast::error::timeout ? control::failure_timeout : control::failure_interrupted;
        if (ec == beast::error::timeout && clock::now() >= st.deadline) { // the client's deadline, not the backend
          result.deadline = true;
          failure_kind = 0;
          failure = "the request's own deadline (x-request-timeout / x-stainless-timeout) passed";
        } else {
          failure = ec != beast::error::timeout ? fmt::format("the backend connection failed ({})", ec.message())
                    : !committed                ? "no first token within upstream.first_token_timeout"
                                                : "the backend stopped sending (timeout)";
        }
        break;
      }
    }
    if (auto u = rewriter.usage()) {
      count_usage(w, st, *u);
    } else if (st.prompt_tokens >= 0) {
      // No usage from the backend: count the stream (one token per content
      // event, as vLLM sends) and the prompt as counted before admission.
      st.usage_completion = static_cast<std::int64_t>(rewriter.chunks_with_content());
      st.usage_prompt = st.prompt_tokens;
      st.tokens_used = st.prompt_tokens + st.usage_completion;
    }
    if (!committed) { // nothing reached the client: the caller may retry elsewhere
      result.failure = result.deadline ? 0u : failure_kind ? failure_kind : control::failure_interrupted;
      result.took = clock::now() - started;
      const auto message = fmt::format("Backend {} failed before its first token: {}.", st.backend,
                                       failure.empty() ? "the stream ended empty" : failure);
      result.error = result.deadline || failure_kind == control::failure_timeout ? openai::gateway_timeout(message)
                                                                                 : openai::bad_gateway(message);
      co_return;
    }
    st.stream_complete = done_seen && failure.empty();
    st.stream_broken = !failure.empty() && !done_seen;
    std::string& out = held; // empty here: the last piece went in the loop
    if (!failure.empty() && !done_seen) {
      spdlog::warn("request {}: stream from {} broke off: {}", st.request_id, st.backend, failure);
      openai::append_sse(out, openai::error_body(fmt::format("The answer was cut off: {}.", failure), "upstream_error",
                                                 {}, "stream_interrupted"));
      out += openai::k_sse_done;
      result.status = 502;
      result.failure = failure_kind;
    }
    ctx.stream.expires_after(ctx.limits.write_timeout);
    if (!out.empty()) {
      std::size_t total = 0;
      const auto sent = send_piece(ctx, out, chunked, total);
      boost::system::error_code ec;
      if (sent < total) ec = co_await send_rest(ctx, out, chunked, sent);
      if (ec) {
        st.client_gone = true;
        co_return;
      }
    }
    if (!chunked) co_return; // the connection's close ends the body
    if (auto [ec, n] = co_await io::write(ctx.stream, http::make_chunk_last()); ec) st.client_gone = true;
    co_return;
  }

  // POST /tokenize in vLLM's shape: {"model", "prompt"} or {"model",
  // "messages"} → {"count", "tokens", "max_model_len"}, from the gateway's own
  // tokenizer, so clients can count before they send.
  io::task<bool> tokenize_endpoint(worker& w, session_context& ctx, request& req, request_state& st) {
    const bool chat = req.body().find("\"messages\"") != std::string::npos;
    json::monotonic_resource arena(4096);
    auto view = openai::parse_request(
        req.body(), chat ? openai::endpoint::chat_completions : openai::endpoint::completions, &arena, {.body = true});
    if (!view) co_return co_await reply(ctx, req, st, view.error());
    const auto* model = cfg->find_model(view->model);
    if (!model) co_return co_await reply(ctx, req, st, openai::model_not_found(view->model));
    const auto* tok = tokenizers[static_cast<std::size_t>(model - cfg->models.data())].get();
    if (!tok)
      co_return co_await reply(
          ctx, req, st,
          openai::invalid_request(
              fmt::format("Model '{}' has no tokenizer configured (models[].tokenizer).", model->name), "model",
              "tokenizer_not_configured"));
    std::vector<std::int32_t> ids;
    if (chat) {
      ids = tok->encode(tokenize::render_qwen3_chat(view->body(), view->enable_thinking));
    } else if (const auto& p = view->body().at("prompt"); p.is_string()) {
      ids = tok->encode(p.get_string());
    } else {
      co_return co_await reply(ctx, req, st,
                               openai::invalid_request("'prompt' must be a string here.", "prompt", "invalid_type"));
    }
    json::array tokens;
    for (auto id : ids) tokens.push_back(id);
    json::object out{{"count", ids.size()}, {"tokens", std::move(tokens)}};
    out["max_model_len"] = model->context_length > 0 ? json::value(model->context_length) : json::value(nullptr);
    auto body = json::serialize(out);
    co_return co_await text(ctx, req, st, http::status::ok, std::move(body));
  }

  // The seed's GET /chat?query=...: the default model, answered as
  // {"result": "..."} — through the same caller check, limits and accounting
  // as /v1/chat/completions.
  io::task<bool> seed_chat(worker& w, session_context& ctx, request& req, request_state& st,
                           const target_parts& target) {
    const auto query = query_param(target.query, "query");
    if (!query || query->empty())
      co_return co_await reply(
          ctx, req, st,
          openai::invalid_request("'query' is required: GET /chat?query=...", "query", "missing_required_parameter"));
    json::object body{{"model", cfg->models.front().name},
                      {"messages", json::array{json::object{{"role", "user"}, {"content", *query}}}}};
    request inner = req; // same caller, same address, same route for the limits
    inner.body() = json::serialize(body);
    forward_result captured;
    captured.kind = forward_result::reply;
    const bool keep = co_await proxy(w, ctx, inner, st, openai::endpoint::chat_completions, &captured);
    if (captured.kind != forward_result::answer) co_return keep; // proxy already answered (error, refusal)
    bool out = false;
    if (captured.status == 200) {
      boost::system::error_code ec;
      auto parsed = json::parse(captured.body, ec);
      std::string content;
      if (!ec && parsed.is_object())
        if (const auto* p = parsed.find_pointer("/choices/0/message/content", ec); p && p->is_string())
          content = p->get_string();
      // (Built outside the co_await: g++ 12 miscompiles braced lists with string literals inside one.)
      auto answer = json::serialize(json::object{{"result", content}});
      out = co_await text(ctx, req, st, http::status::ok, std::move(answer));
    } else {
      out = co_await reply(ctx, req, st, {captured.status, captured.body, {}});
    }
    record(w, st);
    co_return out;
  }
};

gateway::gateway(std::shared_ptr<const control::config> cfg, observe::registry& metrics, std::string note)
    : impl_(std::make_unique<impl>(std::move(cfg), metrics, std::move(note))) {}

gateway::~gateway() {
  impl_->stopping = true; // frames destroyed from here on leave Redis leases to expire
  for (auto& w : impl_->workers) {
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
  // The admin acceptor belongs to worker 0's loop: it goes before the loop does.
  impl_->admin_acceptor.reset();
  // Coroutine frames still pending are destroyed with their io_context; their
  // guards call into the rule set, so the workers go before the rest of impl.
  impl_->workers.clear();
}

std::uint16_t gateway::start() {
  try {
    impl_->access = std::make_unique<observe::access_log>(impl_->cfg->access_log);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("access_log {}: {}", impl_->cfg->access_log, e.what()));
  }
  std::signal(SIGHUP, SIG_IGN); // until run() listens for it: a reload signal never kills the process
  auto& m = *impl_;
  for (unsigned i = 0; i < m.cfg->workers; ++i) {
    auto w = std::make_unique<impl::worker>(*m.cfg, m.backends, std::random_device{}() + i);
    if (m.redis_limits) w->redis = m.redis_limits->connect(w->ioc.get_executor());
    m.prepare_series(*w);
    for (std::size_t i = 0; i < m.cfg->backends.size(); ++i)
      w->pools.push_back(std::make_unique<upstream::pool>(w->ioc.get_executor(), m.cfg->backends[i],
                                                          m.cfg->upstream.max_idle_per_backend, m.tls_of(i)));
    try {
      m.bind(*w, m.port ? m.port : m.cfg->listen.port);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error(
          fmt::format("cannot listen on {}:{}: {}", m.cfg->listen.host, m.cfg->listen.port, e.code().message()));
    }
    if (!m.port) m.port = w->acceptor->local_endpoint().port();
    m.workers.push_back(std::move(w));
  }
  if (const auto& a = m.cfg->admin.listen) {
    try {
      tcp::endpoint ep(net::ip::make_address(a->host), a->port);
      m.admin_acceptor.emplace(m.workers.front()->ioc);
      m.admin_acceptor->open(ep.protocol());
      m.admin_acceptor->set_option(io::acceptor::reuse_address(true));
      m.admin_acceptor->bind(ep);
      m.admin_acceptor->listen();
      m.admin_port = m.admin_acceptor->local_endpoint().port();
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error(
          fmt::format("cannot listen on {}:{} (admin.listen): {}", a->host, a->port, e.code().message()));
    }
  }
  return m.port;
}

void gateway::set_reload(std::string path, std::function<std::shared_ptr<const control::config>()> source) {
  impl_->watched_path = std::move(path);
  impl_->reload_source = std::move(source);
}

int gateway::run() {
  auto& m = *impl_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (auto& w : m.workers) {
    guards.push_back(net::make_work_guard(w->ioc));
    net::co_spawn(w->ioc, m.accept_loop(*w), net::detached);
    if (w == m.workers.front()) net::co_spawn(w->ioc, m.sweep_loop(*w), net::detached);
    if (w == m.workers.front()) net::co_spawn(w->ioc, m.degrade_loop(*w), net::detached);
    if (w == m.workers.front() && m.admin_acceptor)
      net::co_spawn(w->ioc, m.admin_loop(*w, *m.admin_acceptor), net::detached);
    if (w == m.workers.front() && m.reload_source && !m.watched_path.empty())
      net::co_spawn(w->ioc, m.watch_loop(*w, m.watched_path), net::detached);
    if (w == m.workers.front()) m.start_monitors(*w);
    if (w == m.workers.front() && m.redis_limits)
      net::co_spawn(w->ioc, m.redis_limits->heartbeat(*w->redis, m.draining), net::detached);
    const auto index = static_cast<std::size_t>(&w - m.workers.data());
    w->thread = std::thread([&ioc = w->ioc, index] {
      observe::set_shard(index); // this worker's cells of the metrics
      ioc.run();
    });
  }
  spdlog::info("llmgate listening on {}:{} with {} worker(s), {} backend(s), {} model(s){}", m.cfg->listen.host, m.port,
               m.workers.size(), m.cfg->backends.size(), m.cfg->models.size(), m.note.empty() ? "" : "; " + m.note);
  if (m.admin_acceptor) { // before the "listening" line, which tells a supervisor it is up
    if (m.cfg->admin.token.empty())
      spdlog::warn("admin API on {}:{} stays closed: admin.token is empty", m.cfg->admin.listen->host, m.admin_port);
    fmt::print("llmgate admin on {}:{}\n", m.cfg->admin.listen->host, m.admin_port);
  }
  fmt::print("llmgate listening on {}:{}\n", m.cfg->listen.host, m.port);
  std::fflush(stdout);

  // SIGHUP reloads the config file; SIGTERM and SIGINT drain and stop.
  net::io_context signals_ioc;
  net::signal_set signals(signals_ioc, SIGTERM, SIGINT, SIGHUP);
  int signal_number = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                             int n) {
    if (!ec && n == SIGHUP) {
      (void)m.reload("SIGHUP");
      signals.async_wait(on_signal);
      return;
    }
    signal_number = n;
  };
  signals.async_wait(on_signal);
  signals_ioc.run();

  spdlog::info("signal {}: draining (up to {})", signal_number, control::format_duration(m.cfg->server.drain_timeout));
  m.draining = true;
  for (auto& w : m.workers)
    net::post(w->ioc, [&w, &m] {
      boost::system::error_code ec;
      w->acceptor->close(ec);
      if (w == m.workers.front() && m.admin_acceptor) m.admin_acceptor->close(ec);
      w->sessions.drain();
    });
  const auto deadline = clock::now() + m.cfg->server.drain_timeout;
  while (m.open_connections.load() > 0 && clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int left = m.open_connections.load();
  if (left > 0) spdlog::warn("drain deadline passed: closing {} connection(s)", left);
  for (auto& w : m.workers)
    net::post(w->ioc, [&w] {
      w->sessions.close_all();
      if (w->redis) w->redis->redis.close(); // its reader would keep the loop busy
    });
  guards.clear();
  for (auto& w : m.workers) {
    // Let the closes run, then stop whatever is still pending.
    const auto stop_at = clock::now() + std::chrono::seconds(2);
    while (!w->ioc.stopped() && clock::now() < stop_at) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
  spdlog::info("drained; exiting");
  return 0;
}

} // namespace llmgate::server
