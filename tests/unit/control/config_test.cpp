#include "control/config.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::control {
namespace {

using namespace std::chrono_literals;

const char* fake_env(const char* name) {
  static const std::map<std::string, std::string> env = {
      {"LLMGATE_TEST_KEY", "sk-test"},
      {"LLMGATE_TEST_HOST", "10.1.2.3"},
      {"LLMGATE_TEST_EMPTY", ""},
  };
  const auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

std::shared_ptr<const config> load(const std::string& yaml) { return load_config(yaml, "test.yaml", &fake_env); }

// The problems a config is refused for; fails the test when it loads.
std::vector<config_problem> problems_of(const std::string& yaml, std::string* what = nullptr) {
  try {
    (void)load(yaml);
  } catch (const config_error& e) {
    if (what) *what = e.what();
    return e.problems();
  }
  ADD_FAILURE() << "config loaded:\n" << yaml;
  return {};
}

const config_problem* find_problem(const std::vector<config_problem>& problems, std::string_view key) {
  for (const auto& p : problems)
    if (p.key == key) return &p;
  return nullptr;
}

std::string describe(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) out += "line " + std::to_string(p.line) + " " + p.key + ": " + p.message + "\n";
  return out;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

const std::string k_full = R"(listen: 0.0.0.0:9090
workers: 3
reasoning_field: both
log_level: debug
cors:
  allow_origins: ["https://app.example", "http://localhost:3000"]
  max_age: 5m
server:
  header_timeout: 2s
  body_timeout: 15s
  idle_timeout: 1m
  drain_timeout: 20s
  max_body_bytes: 1MiB
  max_header_bytes: 32KiB
  max_connections: 500
upstream:
  connect_timeout: 250ms
  first_token_timeout: 30s
  idle_timeout: 45s
  total_timeout: 5m
  max_idle_per_backend: 8
  max_response_bytes: 16MiB
backends:
  - name: gpu-a
    url: http://10.0.0.1:8000
    kind: vllm
    models: [Qwen3-1.7B, Qwen3-0.6B]
    weight: 3
  - name: gpu-b
    url: http://10.0.0.2:30000/v1
    kind: sglang
    api_key: "${LLMGATE_TEST_KEY}"
    models: [Qwen3-1.7B]
  - name: laptop
    url: "http://[::1]:11434/proxy/"
    kind: ollama
    api_key: "${LLMGATE_UNSET_VAR:-fallback-key}"
    models: Qwen3-0.6B
models:
  - name: Qwen3-1.7B
    aliases: [qwen3, Qwen/Qwen3-1.7B]
    fallback: Qwen3-0.6B
    context_length: 32768
    default_max_tokens: 2048
  - Qwen3-0.6B
)";

TEST(load_config, reads_a_full_config) {
  const auto c = load(k_full);
  EXPECT_EQ(c->listen.host, "0.0.0.0");
  EXPECT_EQ(c->listen.port, 9090);
  EXPECT_EQ(c->workers, 3u);
  EXPECT_EQ(c->reasoning_field, openai::reasoning_field::both);
  EXPECT_EQ(c->log_level, "debug");

  EXPECT_EQ(c->cors.allow_origins, (std::vector<std::string>{"https://app.example", "http://localhost:3000"}));
  EXPECT_EQ(c->cors.max_age, 5min);

  EXPECT_EQ(c->server.header_timeout, 2s);
  EXPECT_EQ(c->server.body_timeout, 15s);
  EXPECT_EQ(c->server.idle_timeout, 1min);
  EXPECT_EQ(c->server.drain_timeout, 20s);
  EXPECT_EQ(c->server.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(c->server.max_header_bytes, 32u * 1024);
  EXPECT_EQ(c->server.max_connections, 500u);

  EXPECT_EQ(c->upstream.connect_timeout, 250ms);
  EXPECT_EQ(c->upstream.first_token_timeout, 30s);
  EXPECT_EQ(c->upstream.idle_timeout, 45s);
  EXPECT_EQ(c->upstream.total_timeout, 5min);
  EXPECT_EQ(c->upstream.max_idle_per_backend, 8u);
  EXPECT_EQ(c->upstream.max_response_bytes, 16u * 1024 * 1024);
}

TEST(load_config, reads_backends) {
  const auto c = load(k_full);
  ASSERT_EQ(c->backends.size(), 3u);

  const auto& a = c->backends[0];
  EXPECT_EQ(a.name, "gpu-a");
  EXPECT_EQ(a.url, "http://10.0.0.1:8000");
  EXPECT_EQ(a.address.host, "10.0.0.1");
  EXPECT_EQ(a.address.port, 8000);
  EXPECT_EQ(a.base_path, "");
  EXPECT_EQ(a.kind, openai::backend_kind::vllm);
  EXPECT_EQ(a.api_key, "");
  EXPECT_EQ(a.models, (std::vector<std::string>{"Qwen3-1.7B", "Qwen3-0.6B"}));
  EXPECT_EQ(a.weight, 3);
  EXPECT_EQ(a.metrics_url, "http://10.0.0.1:8000/metrics");

  const auto& b = c->backends[1];
  EXPECT_EQ(b.kind, openai::backend_kind::sglang);
  EXPECT_EQ(b.api_key, "sk-test");
  EXPECT_EQ(b.address.host, "10.0.0.2");
  EXPECT_EQ(b.address.port, 30000);
  EXPECT_EQ(b.base_path, ""); // "/v1" names the API root, which requests add themselves
  EXPECT_EQ(b.weight, 1);

  const auto& l = c->backends[2];
  EXPECT_EQ(l.kind, openai::backend_kind::ollama);
  EXPECT_EQ(l.api_key, "fallback-key");
  EXPECT_EQ(l.address.host, "::1");
  EXPECT_EQ(l.address.port, 11434);
  EXPECT_EQ(l.base_path, "/proxy");
  EXPECT_EQ(l.models, (std::vector<std::string>{"Qwen3-0.6B"})); // a single value is a list of one
}

TEST(load_config, reads_models_and_resolves_aliases) {
  const auto c = load(k_full);
  ASSERT_EQ(c->models.size(), 2u);
  const auto* big = c->find_model("Qwen3-1.7B");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->fallback, "Qwen3-0.6B");
  EXPECT_EQ(big->context_length, 32768);
  EXPECT_EQ(big->default_max_tokens, 2048);
  EXPECT_EQ(c->find_model("qwen3"), big);
  EXPECT_EQ(c->find_model("Qwen/Qwen3-1.7B"), big);

  const auto* small = c->find_model("Qwen3-0.6B");
  ASSERT_NE(small, nullptr);
  EXPECT_NE(small, big);
  EXPECT_EQ(small->context_length, 0);
  EXPECT_EQ(small->default_max_tokens, 1024);

  EXPECT_EQ(c->find_model("qwen3-0.6b"), nullptr); // names are case-sensitive
  EXPECT_EQ(c->find_model("gpt-4"), nullptr);
}

const std::string k_minimal = R"(backends:
  - name: a
    url: http://127.0.0.1:8000
    models: [m]
models: [m]
)";

TEST(load_config, defaults_when_sections_are_absent) {
  const auto c = load(k_minimal);
  EXPECT_EQ(c->listen.host, "127.0.0.1");
  EXPECT_EQ(c->listen.port, 8080);
  EXPECT_GE(c->workers, 1u); // 0 means one per core
  EXPECT_EQ(c->reasoning_field, openai::reasoning_field::reasoning_content);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->server.header_timeout, 10s);
  EXPECT_EQ(c->upstream.total_timeout, 10min);
  ASSERT_EQ(c->backends.size(), 1u);
  EXPECT_EQ(c->backends[0].kind, openai::backend_kind::vllm);
  EXPECT_EQ(c->backends[0].weight, 1);
}

TEST(load_config, models_section_is_optional) {
  // A model only named by a backend gets default settings.
  const auto c = load(R"(backends:
  - name: a
    url: http://127.0.0.1:8000
    models: [m]
)");
  const auto* m = c->find_model("m");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->default_max_tokens, 1024);
}

TEST(load_config, models_named_only_by_backends_are_added) {
  const auto c = load(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m, extra]}
models: [m]
)");
  ASSERT_NE(c->find_model("extra"), nullptr);
  EXPECT_EQ(c->find_model("extra")->name, "extra");
}

TEST(load_config, substitutes_environment_variables) {
  const auto c = load(R"(backends:
  - name: a
    url: "http://${LLMGATE_TEST_HOST}:${LLMGATE_TEST_PORT:-8001}/x"
    api_key: "${LLMGATE_TEST_EMPTY}"
    models: [m]
  - name: b
    url: http://127.0.0.1:8000
    api_key: "key-${LLMGATE_TEST_EMPTY:-dflt}-${LLMGATE_TEST_KEY}"
    models: [m]
models: [m]
)");
  EXPECT_EQ(c->backends[0].address.host, "10.1.2.3");
  EXPECT_EQ(c->backends[0].address.port, 8001);
  EXPECT_EQ(c->backends[0].base_path, "/x");
  EXPECT_EQ(c->backends[0].api_key, "");                 // set but empty, no default: empty
  EXPECT_EQ(c->backends[1].api_key, "key-dflt-sk-test"); // an empty value takes the default
}

TEST(load_config, unset_variable_without_default_names_variable_and_line) {
  std::string what;
  const auto problems = problems_of(R"(backends:
  - name: a
    url: http://127.0.0.1:8000
    api_key: "${LLMGATE_UNSET_VAR}"
    models: [m]
models: [m]
)",
                                    &what);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].line, 4);
  EXPECT_EQ(problems[0].key, "backends[0].api_key");
  EXPECT_TRUE(contains(problems[0].message, "LLMGATE_UNSET_VAR")) << problems[0].message;
  EXPECT_TRUE(contains(what, "LLMGATE_UNSET_VAR")) << what;
  EXPECT_TRUE(contains(what, "line 4")) << what;
}

TEST(load_config, unknown_keys_are_named_with_their_line) {
  const auto problems = problems_of(R"(listen: 127.0.0.1:8080
colour: blue
backends:
  - name: a
    url: http://127.0.0.1:8000
    models: [m]
    wieght: 2
models: [m]
)");
  ASSERT_EQ(problems.size(), 2u) << describe(problems);
  const auto* top = find_problem(problems, "colour");
  ASSERT_NE(top, nullptr) << describe(problems);
  EXPECT_EQ(top->line, 2);
  const auto* inner = find_problem(problems, "backends[0].wieght");
  ASSERT_NE(inner, nullptr) << describe(problems);
  EXPECT_EQ(inner->line, 7);
  EXPECT_TRUE(contains(inner->message, "weight")) << inner->message; // the allowed keys are listed
}

TEST(load_config, tls_for_the_listener_backends_and_redis) {
  // A file that exists stands for every certificate: the loader only checks they can be read.
  const std::string file = "/proc/self/status";
  auto c = load(fmt::format(R"(server: {{tls: {{cert: "{0}", key: "{0}"}}}}
backends:
  - {{name: a, url: "https://gpu-1.internal/v1", models: [m]}}
  - {{name: b, url: "http://10.0.0.2:8000", models: [m], tls: {{ca: "{0}", server_name: gpu-2, verify: false}}}}
  - {{name: c, url: "https://10.0.0.3:8443", models: [m], metrics_url: "https://10.0.0.3:9443/metrics"}}
redis: {{url: "rediss://:pw@cache.internal:6380/2", tls: {{ca: "{0}", cert: "{0}", key: "{0}"}}}}
)",
                            file));
  EXPECT_TRUE(c->server.tls.enabled());
  EXPECT_EQ(c->server.tls.cert, file);
  const auto& a = c->backends[0];
  EXPECT_TRUE(a.tls.enabled);
  EXPECT_EQ(a.address.port, 443); // https's own port when the URL names none
  EXPECT_EQ(a.base_path, "");
  EXPECT_EQ(a.metrics_url, "https://gpu-1.internal:443/metrics"); // vLLM's metrics beside the API, over TLS too
  EXPECT_TRUE(a.tls.verify);
  const auto& b = c->backends[1];
  EXPECT_TRUE(b.tls.enabled); // a tls: block turns it on for an http:// URL
  EXPECT_FALSE(b.tls.verify);
  EXPECT_EQ(b.tls.server_name, "gpu-2");
  EXPECT_EQ(c->backends[2].address.port, 8443);
  EXPECT_TRUE(c->redis.tls.enabled);
  EXPECT_EQ(c->redis.host, "cache.internal");
  EXPECT_EQ(c->redis.port, 6380);
  EXPECT_EQ(c->redis.password, "pw");
  EXPECT_EQ(c->redis.database, 2);
  EXPECT_EQ(c->redis.tls.cert, file);
  EXPECT_FALSE(load(k_minimal)->server.tls.enabled());
  EXPECT_FALSE(load("redis: {url: \"redis://127.0.0.1:6379\"}\n" + k_minimal)->redis.tls.enabled);

  // What cannot work is refused with its line: an unreadable file, a certificate without its key,
  // an https:// URL with TLS turned off.
  const auto problems = problems_of(fmt::format(R"(server: {{tls: {{cert: /nonexistent/server.crt}}}}
backends:
  - {{name: a, url: "https://10.0.0.1", models: [m], tls: {{enabled: false}}}}
  - {{name: b, url: "http://10.0.0.2:8000", models: [m], tls: {{cert: "{0}"}}}}
redis: {{url: "rediss://127.0.0.1", tls: {{ca: /nonexistent/ca.crt}}}}
)",
                                                file));
  ASSERT_EQ(problems.size(), 5u) << describe(problems);
  const auto* cert = find_problem(problems, "server.tls.cert");
  ASSERT_NE(cert, nullptr) << describe(problems);
  EXPECT_TRUE(contains(cert->message, "/nonexistent/server.crt")) << cert->message;
  EXPECT_EQ(cert->line, 1);
  EXPECT_NE(find_problem(problems, "server.tls"), nullptr) << describe(problems);              // no key
  EXPECT_NE(find_problem(problems, "backends[0].tls.enabled"), nullptr) << describe(problems); // https without TLS
  EXPECT_NE(find_problem(problems, "backends[1].tls"), nullptr) << describe(problems);         // cert without key
  const auto* ca = find_problem(problems, "redis.tls.ca");
  ASSERT_NE(ca, nullptr) << describe(problems);
  EXPECT_EQ(ca->line, 5);
}

TEST(load_config, reports_every_problem_at_once) {
  const auto problems = problems_of(R"(workers: lots
server:
  header_timeout: 5
backends:
  - name: a
    url: ftp://10.0.0.1:8000
    kind: tgi
    models: [m]
models: [m]
)");
  ASSERT_EQ(problems.size(), 4u) << describe(problems);
  const auto* workers = find_problem(problems, "workers");
  ASSERT_NE(workers, nullptr) << describe(problems);
  EXPECT_EQ(workers->line, 1);
  const auto* timeout = find_problem(problems, "server.header_timeout");
  ASSERT_NE(timeout, nullptr) << describe(problems);
  EXPECT_EQ(timeout->line, 3);
  const auto* url = find_problem(problems, "backends[0].url");
  ASSERT_NE(url, nullptr) << describe(problems);
  EXPECT_EQ(url->line, 6);
  EXPECT_TRUE(contains(url->message, "ftp")) << url->message;
  const auto* kind = find_problem(problems, "backends[0].kind");
  ASSERT_NE(kind, nullptr) << describe(problems);
  EXPECT_EQ(kind->line, 7);
  EXPECT_TRUE(contains(kind->message, "tgi")) << kind->message;
}

TEST(load_config, bad_values_are_refused) {
  auto problems = problems_of("reasoning_field: thoughts\n" + k_minimal);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "reasoning_field");

  problems = problems_of("log_level: loud\n" + k_minimal);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "log_level");

  problems = problems_of("listen: localhost\n" + k_minimal);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "listen");

  problems = problems_of("upstream:\n  connect_timeout: soon\n" + k_minimal);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "upstream.connect_timeout");
  EXPECT_EQ(problems[0].line, 2);
}

TEST(load_config, duplicate_backend_names_are_refused) {
  const auto problems = problems_of(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m]}
  - {name: a, url: "http://127.0.0.1:8001", models: [m]}
models: [m]
)");
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "backends");
  EXPECT_TRUE(contains(problems[0].message, "'a'")) << problems[0].message;
}

TEST(load_config, model_served_by_no_backend_is_refused) {
  const auto problems = problems_of(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m]}
models: [m, orphan]
)");
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "models[1]");
  EXPECT_TRUE(contains(problems[0].message, "orphan")) << problems[0].message;
}

TEST(load_config, unknown_fallback_and_duplicate_alias_are_refused) {
  const auto problems = problems_of(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m, n]}
models:
  - {name: m, aliases: [x], fallback: ghost}
  - {name: n, aliases: [x]}
)");
  ASSERT_EQ(problems.size(), 2u) << describe(problems);
  const auto* fallback = find_problem(problems, "models[0].fallback");
  ASSERT_NE(fallback, nullptr) << describe(problems);
  EXPECT_TRUE(contains(fallback->message, "ghost"));
  const auto* alias = find_problem(problems, "models");
  ASSERT_NE(alias, nullptr) << describe(problems);
  EXPECT_TRUE(contains(alias->message, "'x'"));
}

TEST(load_config, backend_needs_name_url_and_models) {
  const auto problems = problems_of(R"(backends:
  - kind: vllm
models: [m]
)");
  EXPECT_NE(find_problem(problems, "backends[0].name"), nullptr) << describe(problems);
  EXPECT_NE(find_problem(problems, "backends[0].url"), nullptr) << describe(problems);
  EXPECT_NE(find_problem(problems, "backends[0].models"), nullptr) << describe(problems);
}

TEST(load_config, at_least_one_backend) {
  const auto problems = problems_of("models: [m]\n");
  EXPECT_NE(find_problem(problems, "backends"), nullptr) << describe(problems);
}

TEST(load_config, backend_url_forms) {
  const auto c = load(R"(backends:
  - {name: a, url: "http://h1:8000/v1/", models: [m]}
  - {name: b, url: "http://h2:8000/proxy/v1", models: [m]}
  - {name: c, url: "http://h3/api", models: [m]}
models: [m]
)");
  EXPECT_EQ(c->backends[0].base_path, "");
  EXPECT_EQ(c->backends[1].base_path, "/proxy");
  EXPECT_EQ(c->backends[2].address.host, "h3");
  EXPECT_EQ(c->backends[2].address.port, 80);
  EXPECT_EQ(c->backends[2].base_path, "/api");
}

TEST(load_config, default_metrics_url_is_beside_the_api_root) {
  // vLLM serves /metrics at the server root, not under /v1.
  const auto c = load(R"(backends:
  - {name: a, url: "http://h1:8000/v1", models: [m]}
  - {name: b, url: "http://h2:8000/proxy/", models: [m]}
models: [m]
)");
  EXPECT_EQ(c->backends[0].metrics_url, "http://h1:8000/metrics");
  EXPECT_EQ(c->backends[1].metrics_url, "http://h2:8000/proxy/metrics");
}

TEST(load_config, yaml_syntax_error_is_a_config_error) {
  const auto problems = problems_of("backends: [\n  {name: a\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(contains(problems[0].message, "test.yaml")) << problems[0].message;
}

TEST(parse_host_port, reads_v4_v6_and_names) {
  auto a = parse_host_port("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  a = parse_host_port("[::1]:9000");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 9000);
  a = parse_host_port("gpu-box.internal:1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "gpu-box.internal");
  for (const std::string_view bad : {"localhost", ":80", "h:", "h:70000", "h:80x", "[::1]9000", "[::1"})
    EXPECT_FALSE(parse_host_port(bad).has_value()) << bad;
}

// The resilience sections: breaker, health, retry, scrape; per-backend slots, queue and overrides.
const std::string k_resilience = R"(breaker:
  failure_threshold: 3
  recovery_timeout: 20s
  half_open_probes: 2
  window: 50
  minimum_calls: 20
  failure_rate_threshold: 0.25
  slow_call_duration: 15s
  slow_call_rate_threshold: 0.8
  failure_on: [connect_error, status_429]
health:
  interval: 3s
  timeout: 500ms
  healthy_threshold: 4
  unhealthy_threshold: 6
retry:
  max_attempts: 2
  backoff: 50ms
  max_backoff: 2s
  budget_ratio: 0.1
  budget_min_per_second: 1.5
  budget_window: 30s
  on: [connect_error, timeout]
scrape:
  enabled: false
  interval: 5s
  timeout: 750ms
backends:
  - name: a
    url: http://10.0.0.1:8000
    models: [m]
    max_in_flight: 8
    queue: {max: 16, timeout: 2s}
    breaker: {failure_threshold: 7, failure_on: timeout}
    health: {unhealthy_threshold: 1, path: /ready}
  - name: b
    url: http://10.0.0.2:8000
    models: [m]
models:
  - {name: m, balance: least_busy}
)";

TEST(load_config, reads_the_resilience_sections) {
  const auto c = load(k_resilience);
  const auto& br = c->breaker;
  EXPECT_TRUE(br.enabled);
  EXPECT_EQ(br.failure_threshold, 3);
  EXPECT_EQ(br.recovery_timeout, 20s);
  EXPECT_EQ(br.half_open_probes, 2);
  EXPECT_EQ(br.window, 50);
  EXPECT_EQ(br.minimum_calls, 20);
  EXPECT_DOUBLE_EQ(br.failure_rate_threshold, 0.25);
  EXPECT_EQ(br.slow_call_duration, 15s);
  EXPECT_DOUBLE_EQ(br.slow_call_rate_threshold, 0.8);
  EXPECT_EQ(br.failure_on, failure_connect | failure_429);

  EXPECT_TRUE(c->health.enabled);
  EXPECT_EQ(c->health.interval, 3s);
  EXPECT_EQ(c->health.timeout, 500ms);
  EXPECT_EQ(c->health.healthy_threshold, 4);
  EXPECT_EQ(c->health.unhealthy_threshold, 6);

  EXPECT_EQ(c->retry.max_attempts, 2);
  EXPECT_EQ(c->retry.backoff, 50ms);
  EXPECT_EQ(c->retry.max_backoff, 2s);
  EXPECT_DOUBLE_EQ(c->retry.budget_ratio, 0.1);
  EXPECT_DOUBLE_EQ(c->retry.budget_min_per_second, 1.5);
  EXPECT_EQ(c->retry.budget_window, 30s);
  EXPECT_EQ(c->retry.on, failure_connect | failure_timeout);

  EXPECT_FALSE(c->scrape.enabled);
  EXPECT_EQ(c->scrape.interval, 5s);
  EXPECT_EQ(c->scrape.timeout, 750ms);

  const auto* m = c->find_model("m");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->balance, balance_strategy::least_busy);
}

TEST(load_config, backend_overrides_start_from_the_top_level_values) {
  const auto c = load(k_resilience);
  ASSERT_EQ(c->backends.size(), 2u);
  const auto& a = c->backends[0];
  EXPECT_EQ(a.max_in_flight, 8u);
  EXPECT_EQ(a.queue_max, 16u);
  EXPECT_EQ(a.queue_timeout, 2s);
  // Its own keys ...
  EXPECT_EQ(a.breaker.failure_threshold, 7);
  EXPECT_EQ(a.breaker.failure_on, failure_set(failure_timeout)); // a single value is a list of one
  EXPECT_EQ(a.health.unhealthy_threshold, 1);
  EXPECT_EQ(a.health.path, "/ready");
  // ... over the top-level sections, not over the built-in defaults.
  EXPECT_EQ(a.breaker.recovery_timeout, 20s);
  EXPECT_EQ(a.breaker.half_open_probes, 2);
  EXPECT_EQ(a.breaker.window, 50);
  EXPECT_DOUBLE_EQ(a.breaker.failure_rate_threshold, 0.25);
  EXPECT_EQ(a.health.healthy_threshold, 4);
  EXPECT_EQ(a.health.interval, 3s);

  const auto& b = c->backends[1];
  EXPECT_EQ(b.breaker.failure_threshold, 3);
  EXPECT_EQ(b.breaker.recovery_timeout, 20s);
  EXPECT_EQ(b.breaker.failure_on, failure_connect | failure_429);
  EXPECT_EQ(b.health.unhealthy_threshold, 6);
  EXPECT_EQ(b.health.timeout, 500ms);
  EXPECT_EQ(b.max_in_flight, 0u); // no cap
  EXPECT_EQ(b.queue_max, 0u);
  EXPECT_EQ(b.queue_timeout, 5s);
  // Backend a's overrides did not leak into the shared sections.
  EXPECT_EQ(c->breaker.failure_threshold, 3);
  EXPECT_EQ(c->health.unhealthy_threshold, 6);
  EXPECT_EQ(c->health.path, "");
}

TEST(load_config, top_level_sections_apply_wherever_they_are_written) {
  const auto c = load(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m], breaker: {window: 5}}
breaker: {failure_threshold: 9}
health: {healthy_threshold: 7}
)");
  const auto& a = c->backends[0];
  EXPECT_EQ(a.breaker.failure_threshold, 9);
  EXPECT_EQ(a.breaker.window, 5);
  EXPECT_EQ(a.health.healthy_threshold, 7);
}

TEST(load_config, resilience_defaults) {
  const auto c = load(k_minimal);
  // The breaker counts what says the backend is in trouble; a 429 is its own limit working.
  const failure_set backend_trouble = failure_connect | failure_timeout | failure_5xx | failure_interrupted;
  EXPECT_TRUE(c->breaker.enabled);
  EXPECT_EQ(c->breaker.failure_threshold, 5); // the seed's defaults
  EXPECT_EQ(c->breaker.recovery_timeout, 30s);
  EXPECT_EQ(c->breaker.failure_on, backend_trouble);
  EXPECT_EQ(c->retry.on, backend_trouble | failure_429); // a 429 is worth trying elsewhere
  EXPECT_TRUE(c->scrape.enabled);
  const auto& b = c->backends[0];
  EXPECT_EQ(b.breaker.failure_threshold, 5);
  EXPECT_EQ(b.breaker.failure_on, backend_trouble);
  EXPECT_EQ(b.max_in_flight, 0u);
  EXPECT_EQ(b.queue_max, 0u);
  EXPECT_EQ(b.queue_timeout, 5s);
  EXPECT_EQ(b.health.healthy_threshold, 2);
  EXPECT_EQ(b.health.unhealthy_threshold, 3);
  EXPECT_EQ(c->find_model("m")->balance, balance_strategy::round_robin);
}

TEST(load_config, queue_max_defaults_to_max_in_flight) {
  const auto c = load(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m], max_in_flight: 4}
  - {name: b, url: "http://127.0.0.1:8001", models: [m], max_in_flight: 4, queue: {timeout: 1s}}
  - {name: c, url: "http://127.0.0.1:8002", models: [m], max_in_flight: 4, queue: {max: 0}}
  - {name: d, url: "http://127.0.0.1:8003", models: [m], max_in_flight: 2, queue: {max: 9}}
)");
  ASSERT_EQ(c->backends.size(), 4u);
  EXPECT_EQ(c->backends[0].queue_max, 4u); // one GPU's worth may wait
  EXPECT_EQ(c->backends[1].queue_max, 4u);
  EXPECT_EQ(c->backends[1].queue_timeout, 1s);
  EXPECT_EQ(c->backends[2].queue_max, 0u); // an explicit 0: no line at all
  EXPECT_EQ(c->backends[3].queue_max, 9u);
  EXPECT_EQ(c->backends[3].max_in_flight, 2u);
}

const std::string k_kinds = R"(backends:
  - {name: v, url: "http://h:8000/v1", models: [m]}
  - {name: s, url: "http://h:30000", kind: sglang, models: [m]}
  - {name: l, url: "http://h:8080", kind: llamacpp, models: [m]}
  - {name: o, url: "http://h:11434", kind: ollama, models: [m]}
  - {name: p, url: "http://h:9000/v1", kind: openai, models: [m]}
  - {name: q, url: "http://h:9001", kind: openai, models: [m], metrics_url: "http://h:9100/metrics"}
  - {name: x, url: "http://h:11435", kind: ollama, models: [m], health: {path: /custom}}
)";

TEST(load_config, health_path_defaults_by_kind) {
  const auto c = load(k_kinds);
  ASSERT_EQ(c->backends.size(), 7u);
  EXPECT_EQ(c->backends[0].health.path, "/health");
  EXPECT_EQ(c->backends[1].health.path, "/health");
  EXPECT_EQ(c->backends[2].health.path, "/health");
  EXPECT_EQ(c->backends[3].health.path, "/api/version");
  EXPECT_EQ(c->backends[4].health.path, "/v1/models");
  EXPECT_EQ(c->backends[5].health.path, "/v1/models");
  EXPECT_EQ(c->backends[6].health.path, "/custom");

  // A top-level path is every backend's, unless a backend names its own.
  const auto d = load("health: {path: /healthz}\n" + k_kinds);
  EXPECT_EQ(d->backends[0].health.path, "/healthz");
  EXPECT_EQ(d->backends[3].health.path, "/healthz");
  EXPECT_EQ(d->backends[4].health.path, "/healthz");
  EXPECT_EQ(d->backends[6].health.path, "/custom");
}

TEST(load_config, metrics_url_defaults_only_for_engines_that_serve_one) {
  const auto c = load(k_kinds);
  EXPECT_EQ(c->backends[0].metrics_url, "http://h:8000/metrics");
  EXPECT_EQ(c->backends[1].metrics_url, "http://h:30000/metrics");
  EXPECT_EQ(c->backends[2].metrics_url, "http://h:8080/metrics");
  EXPECT_EQ(c->backends[3].metrics_url, "");                      // Ollama serves none
  EXPECT_EQ(c->backends[4].metrics_url, "");                      // nor do hosted OpenAI-compatible APIs
  EXPECT_EQ(c->backends[5].metrics_url, "http://h:9100/metrics"); // unless one is named
}

TEST(load_config, failure_lists) {
  const auto c = load(R"(breaker:
  failure_on: [connect_error, timeout, status_5xx, status_429, interrupted]
retry:
  on: []
)" + k_minimal);
  const failure_set all = failure_connect | failure_timeout | failure_5xx | failure_429 | failure_interrupted;
  EXPECT_EQ(c->breaker.failure_on, all);
  EXPECT_EQ(c->backends[0].breaker.failure_on, all);
  EXPECT_EQ(c->retry.on, 0u); // an empty list: retry nothing
}

TEST(load_config, strategy_and_failure_names_round_trip) {
  for (const auto s : {balance_strategy::round_robin, balance_strategy::weighted, balance_strategy::least_outstanding,
                       balance_strategy::least_busy, balance_strategy::prefix_affinity})
    EXPECT_EQ(parse_balance_strategy(to_string(s)), s) << to_string(s);
  EXPECT_FALSE(parse_balance_strategy("fastest").has_value());
  for (const auto k : {failure_connect, failure_timeout, failure_5xx, failure_429, failure_interrupted})
    EXPECT_EQ(parse_failure_kind(to_string(k)), k) << to_string(k);
  EXPECT_FALSE(parse_failure_kind("status_418").has_value());
}

TEST(load_config, unknown_failure_kinds_are_named_with_their_line) {
  const auto problems = problems_of(R"(breaker:
  failure_on: [connect_error, status_418]
retry:
  on: [timeout, teapot]
)" + k_minimal);
  ASSERT_EQ(problems.size(), 2u) << describe(problems);
  const auto* breaker = find_problem(problems, "breaker.failure_on");
  ASSERT_NE(breaker, nullptr) << describe(problems);
  EXPECT_EQ(breaker->line, 2);
  EXPECT_TRUE(contains(breaker->message, "status_418")) << breaker->message;
  const auto* retry = find_problem(problems, "retry.on");
  ASSERT_NE(retry, nullptr) << describe(problems);
  EXPECT_EQ(retry->line, 4);
  EXPECT_TRUE(contains(retry->message, "teapot")) << retry->message;
}

TEST(load_config, unknown_balance_strategy_is_named_with_its_line) {
  const auto problems = problems_of(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [m]}
models:
  - name: m
    balance: fastest
)");
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].key, "models[0].balance");
  EXPECT_EQ(problems[0].line, 5);
  EXPECT_TRUE(contains(problems[0].message, "fastest")) << problems[0].message;
  EXPECT_TRUE(contains(problems[0].message, "least_busy")) << problems[0].message; // the choices are listed
}

TEST(load_config, failure_rate_threshold_must_be_a_rate) {
  const auto problems = problems_of(R"(breaker:
  failure_rate_threshold: 1.5
backends:
  - name: a
    url: http://127.0.0.1:8000
    models: [m]
    breaker:
      failure_rate_threshold: 0
models: [m]
)");
  ASSERT_EQ(problems.size(), 2u) << describe(problems);
  const auto* top = find_problem(problems, "breaker.failure_rate_threshold");
  ASSERT_NE(top, nullptr) << describe(problems);
  EXPECT_EQ(top->line, 2);
  EXPECT_TRUE(contains(top->message, "1.5")) << top->message;
  const auto* own = find_problem(problems, "backends[0].breaker.failure_rate_threshold");
  ASSERT_NE(own, nullptr) << describe(problems);
  EXPECT_EQ(own->line, 8);
}

TEST(load_config, unknown_keys_in_breaker_and_queue_are_named_with_their_line) {
  const auto problems = problems_of(R"(breaker:
  failure_treshold: 3
backends:
  - name: a
    url: http://127.0.0.1:8000
    models: [m]
    breaker:
      recovery: 10s
    queue: {max: 2, wait: 1s}
models: [m]
)");
  ASSERT_EQ(problems.size(), 3u) << describe(problems);
  const auto* top = find_problem(problems, "breaker.failure_treshold");
  ASSERT_NE(top, nullptr) << describe(problems);
  EXPECT_EQ(top->line, 2);
  EXPECT_TRUE(contains(top->message, "failure_threshold")) << top->message; // the allowed keys are listed
  const auto* own = find_problem(problems, "backends[0].breaker.recovery");
  ASSERT_NE(own, nullptr) << describe(problems);
  EXPECT_EQ(own->line, 8);
  EXPECT_TRUE(contains(own->message, "recovery_timeout")) << own->message;
  const auto* queue = find_problem(problems, "backends[0].queue.wait");
  ASSERT_NE(queue, nullptr) << describe(problems);
  EXPECT_EQ(queue->line, 9);
}

TEST(load_config, bad_health_retry_and_scrape_values_are_refused) {
  const auto problems = problems_of(R"(health:
  path: ready
retry:
  budget_window: 500ms
scrape:
  interval: 0s
)" + k_minimal);
  ASSERT_EQ(problems.size(), 3u) << describe(problems);
  const auto* path = find_problem(problems, "health.path");
  ASSERT_NE(path, nullptr) << describe(problems);
  EXPECT_EQ(path->line, 2);
  const auto* window = find_problem(problems, "retry.budget_window");
  ASSERT_NE(window, nullptr) << describe(problems);
  EXPECT_GT(window->line, 0);
  const auto* interval = find_problem(problems, "scrape.interval");
  ASSERT_NE(interval, nullptr) << describe(problems);
  EXPECT_GT(interval->line, 0);
}

} // namespace
TEST(load_config, reads_limit_rules_with_schedules_and_names_bad_ones) {
  const auto c = load_config(R"(backends:
  - {name: a, url: "http://127.0.0.1:8001", models: [Qwen3-1.7B]}
limits:
  rules:
    - name: night-owls
      key: client_ip
      algorithm: fixed_window
      limit: 50/minute
      schedule: [{at: "22:00-08:00", limit: 200/minute}]
      timezone: Asia/Shanghai
)",
                             "t.yaml");
  ASSERT_EQ(c->limits.rules.size(), 1u);
  const auto& r = c->limits.rules[0];
  ASSERT_EQ(r.schedule.size(), 1u);
  EXPECT_EQ(r.schedule[0].count, 200);
  EXPECT_TRUE(r.schedule[0].covers(23 * 60));
  EXPECT_TRUE(r.schedule[0].covers(3 * 60));
  EXPECT_FALSE(r.schedule[0].covers(12 * 60));
  try {
    (void)load_config(R"(backends:
  - {name: a, url: "http://127.0.0.1:8001", models: [Qwen3-1.7B]}
limits:
  rules:
    - {name: a, algorithm: fixed_window, limit: 5/minute, timezone: Mars/Olympus, schedule: [{at: "25:00-08:00", limit: 9/hour}]}
)",
                      "t.yaml");
    FAIL() << "expected a config error";
  } catch (const config_error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("unknown time zone 'Mars/Olympus'"), std::string::npos) << text;
    EXPECT_NE(text.find("expected HH:MM-HH:MM"), std::string::npos) << text;
    EXPECT_NE(text.find("changes the count, not the period"), std::string::npos) << text;
  }
}

} // namespace llmgate::control

namespace llmgate::control {
namespace {

std::shared_ptr<const config> with_redis(const std::string& redis_yaml) {
  return load_config(
      "backends: [{name: a, url: \"http://127.0.0.1:1\", models: [m]}]\nlimits: {store: redis}\nredis: " + redis_yaml +
          "\n",
      "redis.yaml");
}

TEST(redis_config, urls_as_redis_cli_reads_them) {
  auto c = with_redis("{url: \"redis://10.0.0.5:6380/3\"}");
  EXPECT_TRUE(c->limits.redis_store);
  EXPECT_EQ(c->redis.host, "10.0.0.5");
  EXPECT_EQ(c->redis.port, 6380);
  EXPECT_EQ(c->redis.database, 3);
  EXPECT_TRUE(c->redis.password.empty());
  c = with_redis("{url: \"redis://app:p%40ss:w@cache\"}"); // a password with '@' and ':', escaped or not
  EXPECT_EQ(c->redis.username, "app");
  EXPECT_EQ(c->redis.password, "p@ss:w");
  EXPECT_EQ(c->redis.host, "cache");
  EXPECT_EQ(c->redis.port, 6379);
  c = with_redis("{url: \"redis://:secret@[::1]\"}");
  EXPECT_EQ(c->redis.username, "");
  EXPECT_EQ(c->redis.password, "secret");
  EXPECT_EQ(c->redis.host, "::1");
  c = with_redis("{url: \"redis://reader@host:7000\"}"); // a user alone has no password
  EXPECT_EQ(c->redis.username, "reader");
  EXPECT_TRUE(c->redis.password.empty());
}

TEST(redis_config, a_bad_url_is_reported_without_echoing_its_password) {
  try {
    (void)with_redis("{url: \"redis://user:hunter2@host:notaport\"}");
    FAIL() << "accepted";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("redis.url"), std::string::npos);
  }
  EXPECT_THROW((void)with_redis("{heartbeat: 0s}"), config_error);
  EXPECT_THROW((void)with_redis("{sentinels: [\"nowhere\"]}"), config_error);
  const auto s = with_redis("{sentinels: [\"10.0.0.1:26379\", \"10.0.0.2:26379\"], master: cache}");
  ASSERT_EQ(s->redis.sentinels.size(), 2u);
  EXPECT_EQ(s->redis.sentinels[1].host, "10.0.0.2");
  EXPECT_EQ(s->redis.sentinels[1].port, 26379);
  EXPECT_EQ(s->redis.master_name, "cache");
  const auto c = with_redis("{cluster: [\"10.0.0.1:7000\", \"10.0.0.2:7001\"]}");
  ASSERT_EQ(c->redis.cluster.size(), 2u);
  EXPECT_EQ(c->redis.cluster[1].port, 7001);
  EXPECT_THROW((void)with_redis("{cluster: [\"10.0.0.1:7000\"], sentinels: [\"10.0.0.1:26379\"]}"), config_error);
  EXPECT_THROW((void)with_redis("{cluster: [\"10.0.0.1:7000\"], url: \"redis://h:1/2\"}"), config_error);
  EXPECT_THROW((void)with_redis("{cluster: [\"10.0.0.1\"]}"), config_error);
  EXPECT_THROW((void)with_redis("{on_failure: maybe}"), config_error);
  EXPECT_THROW((void)with_redis("{url: \"http://host\"}"), config_error);
}

TEST(degrade_config, ladder_triggers_admin_and_cache) {
  const auto c = load(R"(backends:
  - {name: a, url: "http://127.0.0.1:8000", models: [Qwen3-1.7B, Qwen3-0.6B]}
models:
  - name: Qwen3-1.7B
    aliases: [big]
    fallback: small
    degrade: {level: 2}
  - name: Qwen3-0.6B
    aliases: [small]
    degrade:
      level: auto
      triggers: [{signal: waiting, above: 10, level: 4}]
degrade:
  static_reply: "busy"
  dwell: 10s
  triggers:
    - {signal: gpu_temp, above: 85, level: 2}
    - {signal: ttft_p95, above: 3s}
admin: {listen: "127.0.0.1:9090", token: secret}
cache: {mode: always, max_entries: 5, ttl: 1m, scope: key}
)");
  EXPECT_EQ(c->models[0].fallback, "Qwen3-0.6B") << "an alias names the model itself";
  EXPECT_EQ(c->models[0].level, 2);
  EXPECT_FALSE(c->models[0].triggers);
  EXPECT_EQ(c->models[1].level, -1);
  ASSERT_TRUE(c->models[1].triggers);
  EXPECT_EQ((*c->models[1].triggers)[0].what, signal::waiting);
  EXPECT_EQ((*c->models[1].triggers)[0].level, 4);
  EXPECT_EQ(c->degrade.static_reply, "busy");
  EXPECT_EQ(c->degrade.dwell, std::chrono::seconds(10));
  ASSERT_EQ(c->degrade.triggers.size(), 2u);
  EXPECT_EQ(c->degrade.triggers[1].above, 3.0) << "a time threshold in seconds";
  EXPECT_EQ(c->degrade.triggers[1].level, 1);
  ASSERT_TRUE(c->admin.listen);
  EXPECT_EQ(c->admin.listen->port, 9090);
  EXPECT_EQ(c->admin.token, "secret");
  EXPECT_EQ(c->cache.mode, cache_mode::always);
  EXPECT_EQ(c->cache.max_entries, 5u);
  EXPECT_TRUE(c->cache.per_key);

  EXPECT_FALSE(problems_of("degrade: {triggers: [{signal: heat, above: 1}]}\n" + k_minimal).empty());
  EXPECT_FALSE(problems_of("degrade: {triggers: [{signal: error_rate, above: 2}]}\n" + k_minimal).empty());
  EXPECT_FALSE(problems_of("degrade: {triggers: [{signal: gpu_temp, above: 80, level: 5}]}\n" + k_minimal).empty());
  EXPECT_FALSE(problems_of("cache: {mode: sometimes}\n" + k_minimal).empty());
  EXPECT_TRUE(load("metrics_listener: admin\nadmin: {listen: \"127.0.0.1:0\"}\n" + k_minimal)->internals_on_admin);
  EXPECT_FALSE(problems_of("metrics_listener: admin\n" + k_minimal).empty()) << "admin needs admin.listen";
  EXPECT_FALSE(problems_of("metrics_listener: nowhere\n" + k_minimal).empty());
  EXPECT_FALSE(problems_of("access_log: \"\"\n" + k_minimal).empty());
  const auto scaled = load(k_minimal + R"(limits:
  rules:
    - name: free
      limit: 10/minute
      scale: [{signal: gpu_temp, above: 80, factor: 0.5}, {signal: ttft_p95, above: 2s, factor: 0.25, model: m}]
)");
  const auto& sc = scaled->limits.rules[0].scale;
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].what, signal::gpu_temp);
  EXPECT_EQ(sc[0].factor, 0.5);
  EXPECT_EQ(sc[1].above, 2.0);
  EXPECT_EQ(sc[1].model, "m");
  EXPECT_FALSE(problems_of(k_minimal + "limits: {rules: [{name: r, limit: 1/second, scale: [{signal: gpu_temp, above: "
                                       "80, factor: 2}]}]}\n")
                   .empty())
      << "load only ever lowers a limit";
  EXPECT_FALSE(problems_of(k_minimal + "limits: {rules: [{name: r, limit: 1/second, scale: [{signal: gpu_temp, above: "
                                       "80, factor: 0.5, model: nope}]}]}\n")
                   .empty());
  EXPECT_FALSE(problems_of(R"(backends: [{name: a, url: "http://127.0.0.1:1", models: [m]}]
models: [{name: m, fallback: m}]
)")
                   .empty())
      << "a model cannot be its own fallback";
  EXPECT_FALSE(problems_of(R"(backends: [{name: a, url: "http://127.0.0.1:1", models: [m]}]
models: [{name: m, degrade: {level: 7}}]
)")
                   .empty());
}

} // namespace
} // namespace llmgate::control
