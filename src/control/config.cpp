#include "control/config.hpp"

#include "limit/rate_parse.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <date/tz.h>

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

namespace llmgate::control {

const model_config* config::find_model(std::string_view name_or_alias) const {
  const auto it = model_index.find(name_or_alias);
  return it == model_index.end() ? nullptr : &models[it->second];
}

namespace {

std::string describe(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += '\n';
    if (p.line > 0) out += fmt::format("line {}: ", p.line);
    if (!p.key.empty()) out += fmt::format("{}: ", p.key);
    out += p.message;
  }
  return out;
}

} // namespace

config_error::config_error(std::vector<config_problem> problems)
    : std::runtime_error(describe(problems)), problems_(std::move(problems)) {}

std::optional<endpoint_address> parse_host_port(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return endpoint_address{std::string(host), static_cast<std::uint16_t>(value)};
}

std::optional<std::array<unsigned char, 16>> parse_address(std::string_view text) {
  std::array<unsigned char, 16> out{};
  const std::string s(text);
  if (s.find(':') == std::string::npos) {
    unsigned char v4[4];
    if (inet_pton(AF_INET, s.c_str(), v4) != 1) return std::nullopt;
    out[10] = out[11] = 0xff; // ::ffff:a.b.c.d
    std::copy(v4, v4 + 4, out.begin() + 12);
    return out;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.data()) != 1) return std::nullopt;
  return out;
}

std::optional<cidr> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  const auto addr = parse_address(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  int prefix = v4 ? 32 : 128;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || prefix < 0 || prefix > (v4 ? 32 : 128))
      return std::nullopt;
  }
  return cidr{*addr, v4 ? prefix + 96 : prefix};
}

bool cidr::contains(const std::array<unsigned char, 16>& a) const {
  int bits = prefix;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((a[i] & mask) != (address[i] & mask)) return false;
  }
  return true;
}

std::string_view to_string(limit_algorithm a) {
  switch (a) {
  case limit_algorithm::fixed_window: return "fixed_window";
  case limit_algorithm::sliding_window: return "sliding_window";
  case limit_algorithm::sliding_log: return "sliding_log";
  case limit_algorithm::token_bucket: return "token_bucket";
  case limit_algorithm::leaky_bucket: return "leaky_bucket";
  case limit_algorithm::gcra: return "gcra";
  case limit_algorithm::concurrency: return "concurrency";
  }
  return "?";
}

std::string_view to_string(balance_strategy s) {
  switch (s) {
  case balance_strategy::round_robin: return "round_robin";
  case balance_strategy::weighted: return "weighted";
  case balance_strategy::least_outstanding: return "least_outstanding";
  case balance_strategy::least_busy: return "least_busy";
  case balance_strategy::prefix_affinity: return "prefix_affinity";
  }
  return "?";
}

std::optional<balance_strategy> parse_balance_strategy(std::string_view s) {
  for (auto b : {balance_strategy::round_robin, balance_strategy::weighted, balance_strategy::least_outstanding,
                 balance_strategy::least_busy, balance_strategy::prefix_affinity})
    if (to_string(b) == s) return b;
  return std::nullopt;
}

std::string_view to_string(failure_kind k) {
  switch (k) {
  case failure_connect: return "connect_error";
  case failure_timeout: return "timeout";
  case failure_5xx: return "status_5xx";
  case failure_429: return "status_429";
  case failure_interrupted: return "interrupted";
  }
  return "?";
}

std::optional<failure_kind> parse_failure_kind(std::string_view s) {
  for (auto k : {failure_connect, failure_timeout, failure_5xx, failure_429, failure_interrupted})
    if (to_string(k) == s) return k;
  return std::nullopt;
}

std::optional<http_url> parse_http_url(std::string_view url) {
  http_url out;
  if (url.starts_with("https://")) {
    out.tls = true;
    out.port = 443;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const auto slash = url.find('/');
  const auto authority = url.substr(0, slash);
  if (slash != std::string_view::npos) out.target = std::string(url.substr(slash));
  if (auto hp = parse_host_port(authority)) {
    out.host = hp->host;
    out.port = hp->port;
  } else {
    out.host = std::string(authority);
  }
  if (out.host.empty()) return std::nullopt;
  return out;
}

namespace {

std::optional<limit_algorithm> parse_algorithm(std::string_view s) {
  for (auto a : {limit_algorithm::fixed_window, limit_algorithm::sliding_window, limit_algorithm::sliding_log,
                 limit_algorithm::token_bucket, limit_algorithm::leaky_bucket, limit_algorithm::gcra,
                 limit_algorithm::concurrency})
    if (to_string(a) == s) return a;
  return std::nullopt;
}

bool has_burst(limit_algorithm a) {
  return a == limit_algorithm::token_bucket || a == limit_algorithm::gcra || a == limit_algorithm::leaky_bucket;
}

// Walks the YAML tree, converting and checking values; every mistake is
// recorded with its line, and loading goes on so one run reports them all.
class loader final {
public:
  explicit loader(env_lookup env) : env_(env ? env : [](const char* n) -> const char* { return std::getenv(n); }) {}

  std::vector<config_problem> problems;

  void problem(const YAML::Node& n, const std::string& key, std::string message) {
    const auto mark = n.Mark();
    problems.push_back(
        {mark.line >= 0 ? mark.line + 1 : 0, mark.column >= 0 ? mark.column + 1 : 0, key, std::move(message)});
  }

  void check_keys(const YAML::Node& map, const std::string& path, std::initializer_list<std::string_view> allowed) {
    for (const auto& kv : map) {
      const auto key = kv.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string list;
        for (auto a : allowed) list += fmt::format("{}{}", list.empty() ? "" : ", ", a);
        problem(kv.first, join(path, key), fmt::format("unknown key (expected one of: {})", list));
      }
    }
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }

  // The scalar with ${VAR} and ${VAR:-default} substituted.
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) {
      problem(n, key, "expected a single value");
      return std::nullopt;
    }
    const std::string& raw = n.Scalar();
    std::string out;
    std::size_t i = 0;
    while (i < raw.size()) {
      const auto start = raw.find("${", i);
      if (start == std::string::npos) {
        out.append(raw, i);
        break;
      }
      out.append(raw, i, start - i);
      const auto end = raw.find('}', start);
      if (end == std::string::npos) {
        problem(n, key, "unterminated ${...}");
        return std::nullopt;
      }
      std::string inner = raw.substr(start + 2, end - start - 2);
      std::optional<std::string> fallback;
      if (const auto dash = inner.find(":-"); dash != std::string::npos) {
        fallback = inner.substr(dash + 2);
        inner.resize(dash);
      }
      const bool valid_name = !inner.empty() && std::all_of(inner.begin(), inner.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      });
      if (!valid_name) {
        problem(n, key, fmt::format("'${{{}}}' is not a valid variable reference", inner));
        return std::nullopt;
      }
      if (const char* v = env_(inner.c_str()); v && *v)
        out += v;
      else if (fallback)
        out += *fallback;
      else if (v)
        out += v; // set but empty, no default: empty is what was asked for
      else {
        problem(n, key,
                fmt::format("environment variable {} is not set (write ${{{}:-default}} to allow that)", inner, inner));
        return std::nullopt;
      }
      i = end + 1;
    }
    return out;
  }

  void get(const YAML::Node& n, const std::string& key, std::string& out) {
    if (auto s = scalar(n, key)) out = *s;
  }

  void get(const YAML::Node& n, const std::string& key, bool& out) {
    auto s = scalar(n, key);
    if (!s) return;
    if (*s == "true")
      out = true;
    else if (*s == "false")
      out = false;
    else
      problem(n, key, fmt::format("expected true or false, got '{}'", *s));
  }

  template <class Int>
  void get_int(const YAML::Node& n, const std::string& key, Int& out, std::int64_t lo, std::int64_t hi) {
    auto s = scalar(n, key);
    if (!s) return;
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc{} || ptr != s->data() + s->size()) {
      problem(n, key, fmt::format("expected an integer, got '{}'", *s));
      return;
    }
    if (v < lo || v > hi) {
      problem(n, key, fmt::format("must be between {} and {}, got {}", lo, hi, v));
      return;
    }
    out = static_cast<Int>(v);
  }

  void get_duration(const YAML::Node& n, const std::string& key, duration& out) {
    auto s = scalar(n, key);
    if (!s) return;
    if (auto d = parse_duration(*s))
      out = *d;
    else
      problem(n, key, fmt::format("expected a duration with a unit (250ms, 5s, 10m, 1h), got '{}'", *s));
  }

  void get_double(const YAML::Node& n, const std::string& key, double& out, double lo, double hi) {
    auto s = scalar(n, key);
    if (!s) return;
    char* end = nullptr;
    const double v = std::strtod(s->c_str(), &end);
    if (s->empty() || end != s->c_str() + s->size()) {
      problem(n, key, fmt::format("expected a number, got '{}'", *s));
      return;
    }
    if (!(v >= lo && v <= hi)) {
      problem(n, key, fmt::format("must be between {} and {}, got {}", lo, hi, *s));
      return;
    }
    out = v;
  }

  // A list of failure kinds (connect_error, timeout, status_5xx, status_429, interrupted).
  void get_failures(const YAML::Node& n, const std::string& key, failure_set& out) {
    std::vector<std::string> names;
    get_list(n, key, names);
    failure_set set = 0;
    for (const auto& name : names) {
      if (auto k = parse_failure_kind(name))
        set |= *k;
      else
        problem(
            n, key,
            fmt::format("unknown failure '{}' (connect_error, timeout, status_5xx, status_429, interrupted)", name));
    }
    out = set;
  }

  template <class Int> void get_size(const YAML::Node& n, const std::string& key, Int& out, std::uint64_t hi) {
    auto s = scalar(n, key);
    if (!s) return;
    auto v = parse_size(*s);
    if (!v)
      problem(n, key, fmt::format("expected a size (65536, 64KiB, 8MiB), got '{}'", *s));
    else if (*v < 1 || *v > hi)
      problem(n, key, fmt::format("must be between 1 and {} bytes", hi));
    else
      out = static_cast<Int>(*v);
  }

  void get_list(const YAML::Node& n, const std::string& key, std::vector<std::string>& out) {
    if (n.IsScalar()) { // a single value is a list of one
      if (auto s = scalar(n, key)) out = {*s};
      return;
    }
    if (!n.IsSequence()) {
      problem(n, key, "expected a list");
      return;
    }
    out.clear();
    for (std::size_t i = 0; i < n.size(); ++i)
      if (auto s = scalar(n[i], fmt::format("{}[{}]", key, i))) out.push_back(*s);
  }

  bool expect_map(const YAML::Node& n, const std::string& key) {
    if (n.IsMap()) return true;
    problem(n, key, "expected a mapping (key: value pairs)");
    return false;
  }

  void read_server(const YAML::Node& n, server_config& s) {
    if (!expect_map(n, "server")) return;
    check_keys(n, "server",
               {"header_timeout", "body_timeout", "idle_timeout", "drain_timeout", "max_body_bytes", "max_header_bytes",
                "max_headers", "max_connections", "max_connections_per_client", "tls"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("server", k);
      if (k == "header_timeout")
        get_duration(kv.second, key, s.header_timeout);
      else if (k == "body_timeout")
        get_duration(kv.second, key, s.body_timeout);
      else if (k == "idle_timeout")
        get_duration(kv.second, key, s.idle_timeout);
      else if (k == "drain_timeout")
        get_duration(kv.second, key, s.drain_timeout);
      else if (k == "max_body_bytes")
        get_size(kv.second, key, s.max_body_bytes, 1ull << 32);
      else if (k == "max_header_bytes")
        get_size(kv.second, key, s.max_header_bytes, 1u << 20);
      else if (k == "max_headers")
        get_int(kv.second, key, s.max_headers, 1, 10'000);
      else if (k == "max_connections")
        get_int(kv.second, key, s.max_connections, 1, 1'000'000);
      else if (k == "max_connections_per_client")
        get_int(kv.second, key, s.max_connections_per_client, 0, 1'000'000);
      else if (k == "tls")
        read_tls_server(kv.second, key, s.tls);
    }
  }

  // A file the gateway will read at start: named, and readable now.
  void check_file(const YAML::Node& n, const std::string& key, const std::string& path) {
    if (path.empty()) return;
    if (::access(path.c_str(), R_OK) == 0) return; // not opened: a FIFO would block the loader
    problem(n, key, fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  }

  // server.tls: {cert: FILE, key: FILE}
  void read_tls_server(const YAML::Node& n, const std::string& path, tls_server_config& t) {
    if (!expect_map(n, path)) return;
    check_keys(n, path, {"cert", "key"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      get(kv.second, key, k == "cert" ? t.cert : t.key);
      check_file(kv.second, key, k == "cert" ? t.cert : t.key);
    }
    if (t.cert.empty() != t.key.empty()) problem(n, path, "needs both cert and key (PEM files)");
  }

  // tls: {ca, verify, server_name, cert, key} of a connection the gateway opens.
  void read_tls_client(const YAML::Node& n, const std::string& path, tls_client_config& t) {
    if (!expect_map(n, path)) return;
    check_keys(n, path, {"enabled", "ca", "verify", "server_name", "cert", "key"});
    t.enabled = true; // a tls: block turns it on unless it says enabled: false
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "enabled")
        get(kv.second, key, t.enabled);
      else if (k == "verify")
        get(kv.second, key, t.verify);
      else if (k == "server_name")
        get(kv.second, key, t.server_name);
      else {
        auto& file = k == "ca" ? t.ca : k == "cert" ? t.cert : t.key;
        get(kv.second, key, file);
        check_file(kv.second, key, file);
      }
    }
    if (t.cert.empty() != t.key.empty()) problem(n, path, "a client certificate needs both cert and key");
  }

  void read_upstream(const YAML::Node& n, upstream_config& u) {
    if (!expect_map(n, "upstream")) return;
    check_keys(n, "upstream",
               {"connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout", "max_idle_per_backend",
                "max_response_bytes"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("upstream", k);
      if (k == "connect_timeout")
        get_duration(kv.second, key, u.connect_timeout);
      else if (k == "first_token_timeout")
        get_duration(kv.second, key, u.first_token_timeout);
      else if (k == "idle_timeout")
        get_duration(kv.second, key, u.idle_timeout);
      else if (k == "total_timeout")
        get_duration(kv.second, key, u.total_timeout);
      else if (k == "max_idle_per_backend")
        get_int(kv.second, key, u.max_idle_per_backend, 0, 100'000);
      else if (k == "max_response_bytes")
        get_size(kv.second, key, u.max_response_bytes, 1ull << 34);
    }
  }

  void read_breaker(const YAML::Node& n, const std::string& path, breaker_config& b) {
    if (!expect_map(n, path)) return;
    check_keys(n, path,
               {"enabled", "failure_threshold", "recovery_timeout", "half_open_probes", "window", "minimum_calls",
                "failure_rate_threshold", "slow_call_duration", "slow_call_rate_threshold", "failure_on"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "enabled")
        get(kv.second, key, b.enabled);
      else if (k == "failure_threshold")
        get_int(kv.second, key, b.failure_threshold, 1, 1'000'000);
      else if (k == "recovery_timeout")
        get_duration(kv.second, key, b.recovery_timeout);
      else if (k == "half_open_probes")
        get_int(kv.second, key, b.half_open_probes, 1, 10'000);
      else if (k == "window")
        get_int(kv.second, key, b.window, 1, 100'000);
      else if (k == "minimum_calls")
        get_int(kv.second, key, b.minimum_calls, 1, 100'000);
      else if (k == "failure_rate_threshold")
        get_double(kv.second, key, b.failure_rate_threshold, 0.01, 1.0);
      else if (k == "slow_call_duration")
        get_duration(kv.second, key, b.slow_call_duration);
      else if (k == "slow_call_rate_threshold")
        get_double(kv.second, key, b.slow_call_rate_threshold, 0.01, 1.0);
      else if (k == "failure_on")
        get_failures(kv.second, key, b.failure_on);
    }
  }

  void read_health(const YAML::Node& n, const std::string& path, health_config& h) {
    if (!expect_map(n, path)) return;
    check_keys(n, path, {"enabled", "path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "enabled")
        get(kv.second, key, h.enabled);
      else if (k == "path") {
        get(kv.second, key, h.path);
        if (!h.path.empty() && !h.path.starts_with('/'))
          problem(kv.second, key, fmt::format("a path starts with '/', got '{}'", h.path));
      } else if (k == "interval")
        get_duration(kv.second, key, h.interval);
      else if (k == "timeout")
        get_duration(kv.second, key, h.timeout);
      else if (k == "healthy_threshold")
        get_int(kv.second, key, h.healthy_threshold, 1, 1000);
      else if (k == "unhealthy_threshold")
        get_int(kv.second, key, h.unhealthy_threshold, 1, 1000);
    }
    if (h.interval.count() <= 0) problem(n, join(path, "interval"), "must be longer than 0");
  }

  void read_retry(const YAML::Node& n, retry_config& r) {
    if (!expect_map(n, "retry")) return;
    check_keys(
        n, "retry",
        {"max_attempts", "backoff", "max_backoff", "budget_ratio", "budget_min_per_second", "budget_window", "on"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("retry", k);
      if (k == "max_attempts")
        get_int(kv.second, key, r.max_attempts, 1, 100);
      else if (k == "backoff")
        get_duration(kv.second, key, r.backoff);
      else if (k == "max_backoff")
        get_duration(kv.second, key, r.max_backoff);
      else if (k == "budget_ratio")
        get_double(kv.second, key, r.budget_ratio, 0.0, 10.0);
      else if (k == "budget_min_per_second")
        get_double(kv.second, key, r.budget_min_per_second, 0.0, 1e6);
      else if (k == "budget_window")
        get_duration(kv.second, key, r.budget_window);
      else if (k == "on")
        get_failures(kv.second, key, r.on);
    }
    if (r.budget_window < std::chrono::seconds(1)) problem(n, "retry.budget_window", "must be at least 1s");
  }

  void read_scrape(const YAML::Node& n, scrape_config& s) {
    if (!expect_map(n, "scrape")) return;
    check_keys(n, "scrape", {"enabled", "interval", "timeout"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("scrape", k);
      if (k == "enabled")
        get(kv.second, key, s.enabled);
      else if (k == "interval")
        get_duration(kv.second, key, s.interval);
      else if (k == "timeout")
        get_duration(kv.second, key, s.timeout);
    }
    if (s.interval.count() <= 0) problem(n, "scrape.interval", "must be longer than 0");
  }

  void read_queue(const YAML::Node& n, const std::string& path, backend_config& b, bool& max_given) {
    if (!expect_map(n, path)) return;
    check_keys(n, path, {"max", "timeout"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      if (k == "max") {
        get_int(kv.second, join(path, k), b.queue_max, 0, 1'000'000);
        max_given = true;
      } else if (k == "timeout")
        get_duration(kv.second, join(path, k), b.queue_timeout);
    }
  }

  void read_cors(const YAML::Node& n, cors_config& c) {
    if (!expect_map(n, "cors")) return;
    check_keys(n, "cors", {"allow_origins", "max_age"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      if (k == "allow_origins")
        get_list(kv.second, "cors.allow_origins", c.allow_origins);
      else if (k == "max_age")
        get_duration(kv.second, "cors.max_age", c.max_age);
    }
  }

  void read_backend(const YAML::Node& n, const std::string& path, backend_config& b) {
    if (!expect_map(n, path)) return;
    check_keys(n, path,
               {"name", "url", "kind", "api_key", "models", "weight", "metrics_url", "gpu_metrics_url", "max_in_flight",
                "queue", "breaker", "health", "tls"});
    bool metrics_url_given = false, queue_max_given = false;
    std::optional<YAML::Node> tls_block; // read after the url
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "name")
        get(kv.second, key, b.name);
      else if (k == "url") {
        get(kv.second, key, b.url);
        parse_url(kv.second, key, b);
      } else if (k == "kind") {
        std::string kind;
        get(kv.second, key, kind);
        if (auto parsed = openai::parse_backend_kind(kind))
          b.kind = *parsed;
        else if (!kind.empty() || kv.second.IsScalar())
          problem(kv.second, key, fmt::format("unknown kind '{}' (vllm, sglang, llamacpp, ollama, openai)", kind));
      } else if (k == "api_key")
        get(kv.second, key, b.api_key);
      else if (k == "models")
        get_list(kv.second, key, b.models);
      else if (k == "weight")
        get_int(kv.second, key, b.weight, 1, 1000);
      else if (k == "metrics_url") {
        get(kv.second, key, b.metrics_url);
        metrics_url_given = true;
        check_metrics_url(kv.second, key, b.metrics_url);
      } else if (k == "gpu_metrics_url") {
        get(kv.second, key, b.gpu_metrics_url);
        check_metrics_url(kv.second, key, b.gpu_metrics_url);
      } else if (k == "max_in_flight")
        get_int(kv.second, key, b.max_in_flight, 0, 1'000'000);
      else if (k == "queue")
        read_queue(kv.second, key, b, queue_max_given);
      else if (k == "breaker")
        read_breaker(kv.second, key, b.breaker);
      else if (k == "health")
        read_health(kv.second, key, b.health);
      else if (k == "tls")
        tls_block = kv.second;
    }
    // After the url, which turns TLS on for https://; a block may still turn it off.
    if (tls_block) read_tls_client(*tls_block, join(path, "tls"), b.tls);
    if (b.url.starts_with("https://") && !b.tls.enabled)
      problem(n, join(path, "tls.enabled"), "an https:// backend speaks TLS; use an http:// url for plain HTTP");
    if (!queue_max_given) b.queue_max = b.max_in_flight; // one GPU's worth may wait
    if (b.health.path.empty())
      b.health.path = b.kind == openai::backend_kind::ollama   ? "/api/version"
                      : b.kind == openai::backend_kind::openai ? "/v1/models"
                                                               : "/health";
    if (b.name.empty()) problem(n, join(path, "name"), "every backend needs a name");
    if (b.url.empty()) problem(n, join(path, "url"), "every backend needs a url");
    if (b.models.empty()) problem(n, join(path, "models"), "every backend serves at least one model");
    // vLLM, SGLang and llama.cpp serve /metrics beside the API root, not under /v1;
    // Ollama and hosted OpenAI-compatible APIs serve none.
    const bool has_metrics = b.kind == openai::backend_kind::vllm || b.kind == openai::backend_kind::sglang ||
                             b.kind == openai::backend_kind::llamacpp;
    if (!metrics_url_given && has_metrics && !b.address.host.empty())
      b.metrics_url = fmt::format("{}://{}:{}{}/metrics", b.tls.enabled ? "https" : "http", b.address.host,
                                  b.address.port, b.base_path);
  }

  void check_metrics_url(const YAML::Node& n, const std::string& key, const std::string& url) {
    if (!url.empty() && !parse_http_url(url))
      problem(n, key, fmt::format("expected http[s]://host:port/path, got '{}'", url));
  }

  void parse_url(const YAML::Node& n, const std::string& key, backend_config& b) {
    const auto parsed = parse_http_url(b.url);
    if (!parsed) {
      problem(n, key, fmt::format("expected http[s]://host[:port][/path], got '{}'", b.url));
      return;
    }
    b.tls.enabled = parsed->tls;
    std::string_view path = parsed->target;
    while (path.ends_with('/')) path.remove_suffix(1);
    // A base URL written the OpenAI way (".../v1") names the API root; requests add /v1 themselves.
    if (path.ends_with("/v1")) path.remove_suffix(3);
    b.address = {parsed->host, parsed->port};
    b.base_path = path;
  }

  void read_model(const YAML::Node& n, const std::string& path, model_config& m) {
    if (n.IsScalar()) { // "- Qwen3-0.6B" is a model with defaults
      get(n, path, m.name);
      return;
    }
    if (!expect_map(n, path)) return;
    check_keys(
        n, path,
        {"name", "aliases", "fallback", "context_length", "default_max_tokens", "tokenizer", "balance", "degrade"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "name")
        get(kv.second, key, m.name);
      else if (k == "aliases")
        get_list(kv.second, key, m.aliases);
      else if (k == "fallback")
        get(kv.second, key, m.fallback);
      else if (k == "degrade")
        read_model_degrade(kv.second, key, m);
      else if (k == "context_length")
        get_int(kv.second, key, m.context_length, 1, 100'000'000);
      else if (k == "default_max_tokens")
        get_int(kv.second, key, m.default_max_tokens, 1, 100'000'000);
      else if (k == "balance") {
        std::string b;
        get(kv.second, key, b);
        if (auto parsed = parse_balance_strategy(b))
          m.balance = *parsed;
        else
          problem(kv.second, key,
                  fmt::format("unknown strategy '{}' (round_robin, weighted, least_outstanding, least_busy, "
                              "prefix_affinity)",
                              b));
      } else if (k == "tokenizer") {
        get(kv.second, key, m.tokenizer);
        if (!m.tokenizer.empty() && !std::ifstream(m.tokenizer))
          problem(kv.second, key, fmt::format("cannot read tokenizer file '{}'", m.tokenizer));
      }
    }
    if (m.name.empty()) problem(n, join(path, "name"), "every model needs a name");
  }

  // A model's degrade: {level: auto | 0..4, triggers: [...]}.
  void read_model_degrade(const YAML::Node& n, const std::string& path, model_config& m) {
    if (!expect_map(n, path)) return;
    check_keys(n, path, {"level", "triggers"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "level") {
        if (auto s = scalar(kv.second, key); s && *s == "auto")
          m.level = -1;
        else
          get_int(kv.second, key, m.level, 0, 4);
      } else if (k == "triggers")
        read_triggers(kv.second, key, m.triggers.emplace());
    }
  }

  // A signal's threshold: seconds for the time signals (written as durations), a share for the ratios.
  double read_threshold(const YAML::Node& n, const std::string& key, signal what) {
    double out = 0;
    if (what == signal::ttft_p95 || what == signal::queue_wait_p95) {
      duration d{};
      get_duration(n, key, d);
      return std::chrono::duration<double>(d).count();
    }
    const bool share = what == signal::breakers_open || what == signal::error_rate || what == signal::gpu_mem;
    get_double(n, key, out, 0, share ? 1 : 1e9);
    return out;
  }

  std::optional<signal> read_signal(const YAML::Node& n, const std::string& key) {
    std::string name;
    get(n, key, name);
    if (auto s = parse_signal(name)) return s;
    problem(n, key,
            fmt::format("unknown signal '{}' (breakers_open, queue_depth, queue_wait_p95, ttft_p95, error_rate, "
                        "gpu_temp, gpu_util, gpu_mem, waiting)",
                        name));
    return std::nullopt;
  }

  // scale: [{signal: gpu_temp, above: 80, factor: 0.5, model: Qwen3-1.7B}, ...]
  void read_scale(const YAML::Node& n, const std::string& path, std::vector<scale_config>& out) {
    if (!n.IsSequence()) {
      problem(n, path, "expected a list of {signal, above, factor}");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = fmt::format("{}[{}]", path, i);
      const auto& e = n[i];
      if (!expect_map(e, item)) continue;
      check_keys(e, item, {"signal", "above", "factor", "model"});
      if (!e["signal"] || !e["above"] || !e["factor"]) {
        problem(e, item, "a scale entry needs signal, above and factor");
        continue;
      }
      auto& sc = out.emplace_back();
      const auto what = read_signal(e["signal"], join(item, "signal"));
      if (!what) continue;
      sc.what = *what;
      sc.above = read_threshold(e["above"], join(item, "above"), sc.what);
      get_double(e["factor"], join(item, "factor"), sc.factor, 0.001, 1); // a limit is only ever lowered by load
      if (e["model"]) get(e["model"], join(item, "model"), sc.model);
    }
  }

  // [{signal: gpu_temp, above: 85, level: 2}, ...]; times (ttft_p95, queue_wait_p95) as durations.
  void read_triggers(const YAML::Node& n, const std::string& path, std::vector<trigger_config>& out) {
    if (!n.IsSequence()) {
      problem(n, path, "expected a list of {signal, above, level}");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = fmt::format("{}[{}]", path, i);
      const auto& t = n[i];
      if (!expect_map(t, item)) continue;
      check_keys(t, item, {"signal", "above", "level"});
      auto& tr = out.emplace_back();
      if (!t["signal"] || !t["above"]) {
        problem(t, item, "a trigger needs signal and above");
        continue;
      }
      const auto what = read_signal(t["signal"], join(item, "signal"));
      if (!what) continue;
      tr.what = *what;
      tr.above = read_threshold(t["above"], join(item, "above"), tr.what);
      if (t["level"]) get_int(t["level"], join(item, "level"), tr.level, 1, 4);
    }
  }

  void read_degrade(const YAML::Node& n, degrade_config& d) {
    if (!expect_map(n, "degrade")) return;
    check_keys(n, "degrade", {"static_reply", "interval", "window", "dwell", "triggers"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("degrade", k);
      if (k == "static_reply")
        get(kv.second, key, d.static_reply);
      else if (k == "interval")
        get_duration(kv.second, key, d.interval);
      else if (k == "window")
        get_duration(kv.second, key, d.window);
      else if (k == "dwell")
        get_duration(kv.second, key, d.dwell);
      else if (k == "triggers")
        read_triggers(kv.second, key, d.triggers);
    }
    if (d.interval < std::chrono::milliseconds(10)) problem(n, "degrade.interval", "must be at least 10ms");
    if (d.window < d.interval) problem(n, "degrade.window", "must be at least degrade.interval");
  }

  void read_admin(const YAML::Node& n, admin_config& a) {
    if (!expect_map(n, "admin")) return;
    check_keys(n, "admin", {"listen", "token"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("admin", k);
      if (k == "listen") {
        if (auto s = scalar(kv.second, key)) {
          if (auto hp = parse_host_port(*s))
            a.listen = *hp;
          else
            problem(kv.second, key, fmt::format("expected host:port, got '{}'", *s));
        }
      } else if (k == "token")
        get(kv.second, key, a.token); // never echoed
    }
  }

  void read_cache(const YAML::Node& n, cache_config& c) {
    if (!expect_map(n, "cache")) return;
    check_keys(n, "cache", {"mode", "max_entries", "max_bytes", "ttl", "scope"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("cache", k);
      if (k == "mode") {
        std::string m;
        get(kv.second, key, m);
        if (m == "off")
          c.mode = cache_mode::off;
        else if (m == "when_down")
          c.mode = cache_mode::when_down;
        else if (m == "always")
          c.mode = cache_mode::always;
        else
          problem(kv.second, key, fmt::format("expected off, when_down or always, got '{}'", m));
      } else if (k == "max_entries")
        get_int(kv.second, key, c.max_entries, 1, 100'000'000);
      else if (k == "max_bytes")
        get_size(kv.second, key, c.max_bytes, std::uint64_t{1} << 40);
      else if (k == "ttl")
        get_duration(kv.second, key, c.ttl);
      else if (k == "scope") {
        std::string s;
        get(kv.second, key, s);
        if (s == "global" || s == "key")
          c.per_key = s == "key";
        else
          problem(kv.second, key, fmt::format("expected global or key, got '{}'", s));
      }
    }
  }

  void read_rule(const YAML::Node& n, const std::string& path, rule_config& r) {
    if (!expect_map(n, path)) return;
    check_keys(n, path,
               {"name", "key", "algorithm", "limit", "burst", "cost", "tiers", "mode", "shape", "delay", "max_wait",
                "schedule", "timezone", "on_limit", "scale"});
    bool max_wait_given = false;
    YAML::Node schedule_node;
    std::optional<std::string> limit_text;
    YAML::Node limit_node;
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join(path, k);
      if (k == "name") {
        get(kv.second, key, r.name);
      } else if (k == "key") {
        get_list(kv.second, key, r.key);
        for (const auto& part : r.key)
          if (part != "client_ip" && part != "api_key" && part != "model" && part != "route" && part != "global" &&
              !(part.starts_with("header:") && part.size() > 7))
            problem(kv.second, key,
                    fmt::format("unknown key part '{}' (client_ip, api_key, model, route, global, header:NAME)", part));
      } else if (k == "algorithm") {
        std::string a;
        get(kv.second, key, a);
        if (auto parsed = parse_algorithm(a))
          r.algorithm = *parsed;
        else
          problem(kv.second, key,
                  fmt::format("unknown algorithm '{}' (fixed_window, sliding_window, sliding_log, token_bucket, "
                              "leaky_bucket, gcra, concurrency)",
                              a));
      } else if (k == "limit") {
        limit_text = scalar(kv.second, key);
        limit_node = kv.second;
      } else if (k == "burst") {
        get_int(kv.second, key, r.burst, 1, 1'000'000'000'000);
      } else if (k == "cost") {
        std::string cost;
        get(kv.second, key, cost);
        if (cost == "tokens")
          r.cost_tokens = true;
        else if (cost != "requests")
          problem(kv.second, key, fmt::format("expected requests or tokens, got '{}'", cost));
      } else if (k == "tiers") {
        get_list(kv.second, key, r.tiers);
      } else if (k == "mode") {
        std::string mode;
        get(kv.second, key, mode);
        if (mode == "shadow")
          r.shadow = true;
        else if (mode != "enforce")
          problem(kv.second, key, fmt::format("expected enforce or shadow, got '{}'", mode));
      } else if (k == "shape") {
        get(kv.second, key, r.shape);
      } else if (k == "delay") {
        get_int(kv.second, key, r.delay, 0, 1'000'000'000);
      } else if (k == "on_limit") {
        std::string what;
        get(kv.second, key, what);
        if (what == "queue")
          r.queue = true;
        else if (what != "reject")
          problem(kv.second, key, fmt::format("expected reject or queue, got '{}'", what));
      } else if (k == "max_wait") {
        max_wait_given = true;
        get_duration(kv.second, key, r.max_wait);
      } else if (k == "schedule") {
        schedule_node = kv.second;
      } else if (k == "scale") {
        read_scale(kv.second, key, r.scale);
      } else if (k == "timezone") {
        get(kv.second, key, r.timezone);
        try {
          (void)date::locate_zone(r.timezone);
        } catch (const std::exception&) {
          problem(kv.second, key,
                  fmt::format("unknown time zone '{}' (an IANA name such as Asia/Shanghai)", r.timezone));
        }
      }
    }
    if (r.name.empty()) problem(n, join(path, "name"), "every rule needs a name");
    if (!limit_text) {
      if (!n["limit"]) problem(n, join(path, "limit"), "every rule needs a limit");
      return;
    }
    if (r.algorithm == limit_algorithm::concurrency) {
      std::int64_t v = 0;
      const auto [ptr, ec] = std::from_chars(limit_text->data(), limit_text->data() + limit_text->size(), v);
      if (ec != std::errc{} || ptr != limit_text->data() + limit_text->size() || v < 1)
        problem(
            limit_node, join(path, "limit"),
            fmt::format("a concurrency limit is a number of requests in flight (at least 1), got '{}'", *limit_text));
      r.count = v;
    } else if (auto rate = limit::parse_rate(*limit_text)) {
      r.count = rate->count;
      r.period = rate->period;
    } else {
      problem(limit_node, join(path, "limit"),
              fmt::format("expected COUNT/PERIOD such as 30/minute, 5/second, 100000/hour (count at least 1), got "
                          "'{}'",
                          *limit_text));
    }
    if (r.burst == 0) r.burst = r.count; // "30/minute" means a burst of 30
    if (r.burst != r.count && !has_burst(r.algorithm))
      problem(n, join(path, "burst"), fmt::format("{} has no burst", to_string(r.algorithm)));
    if ((r.shape || r.delay > 0) && r.algorithm != limit_algorithm::leaky_bucket)
      problem(n, join(path, "shape"), "shape and delay apply to leaky_bucket only");
    if (r.algorithm == limit_algorithm::sliding_log) {
      if (r.cost_tokens)
        problem(n, join(path, "cost"), "sliding_log keeps an entry per request; use another algorithm for tokens");
      if (r.count > k_max_sliding_log_limit)
        problem(
            n, join(path, "limit"),
            fmt::format("sliding_log keeps an entry per request; its limit is capped at {}", k_max_sliding_log_limit));
    }
    if (r.algorithm == limit_algorithm::concurrency && r.cost_tokens)
      problem(n, join(path, "cost"), "a concurrency rule counts requests in flight, not tokens");
    if (schedule_node.IsDefined() && !schedule_node.IsNull()) read_schedule(schedule_node, join(path, "schedule"), r);
    if (r.queue && !max_wait_given)
      problem(n, join(path, "max_wait"), "on_limit: queue needs max_wait (how long a request may wait its turn)");
  }

  // [{at: "22:00-08:00", limit: 200/minute, burst: 50}, ...]
  void read_schedule(const YAML::Node& n, const std::string& path, rule_config& r) {
    if (!n.IsSequence()) {
      problem(n, path, "expected a list of {at: HH:MM-HH:MM, limit: ...}");
      return;
    }
    if (r.algorithm == limit_algorithm::concurrency) {
      problem(n, path, "a concurrency rule has no schedule");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = fmt::format("{}[{}]", path, i);
      if (!expect_map(n[i], item)) continue;
      check_keys(n[i], item, {"at", "limit", "burst"});
      schedule_entry e;
      if (auto at = n[i]["at"] ? scalar(n[i]["at"], join(item, "at")) : std::nullopt) {
        int h1 = 0, m1 = 0, h2 = 0, m2 = 0;
        char tail = 0;
        if (std::sscanf(at->c_str(), "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 || h1 > 24 || h2 < 0 ||
            h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 || (h1 * 60 + m1) == (h2 * 60 + m2))
          problem(n[i]["at"], join(item, "at"), fmt::format("expected HH:MM-HH:MM (e.g. 22:00-08:00), got '{}'", *at));
        e.start_minute = (h1 * 60 + m1) % 1440;
        e.end_minute = (h2 * 60 + m2) % 1440;
      } else {
        problem(n[i], join(item, "at"), "every schedule entry needs at: HH:MM-HH:MM");
      }
      if (auto text = n[i]["limit"] ? scalar(n[i]["limit"], join(item, "limit")) : std::nullopt) {
        auto rate = limit::parse_rate(*text);
        if (!rate)
          problem(n[i]["limit"], join(item, "limit"), fmt::format("expected COUNT/PERIOD, got '{}'", *text));
        else if (rate->period != r.period)
          problem(n[i]["limit"], join(item, "limit"),
                  fmt::format("a schedule changes the count, not the period: use the rule's period ({})",
                              limit::format_rate({1, r.period}).substr(2)));
        else
          e.count = rate->count;
      } else {
        problem(n[i], join(item, "limit"), "every schedule entry needs a limit");
      }
      e.burst = e.count;
      if (n[i]["burst"]) get_int(n[i]["burst"], join(item, "burst"), e.burst, 1, 1'000'000'000'000);
      r.schedule.push_back(e);
    }
  }

  // redis: {url: redis://[user:password@]host:port[/db], timeout, ...}
  void read_redis(const YAML::Node& n, redis_config& r) {
    if (!expect_map(n, "redis")) return;
    check_keys(n, "redis",
               {"url", "password", "timeout", "connect_timeout", "on_failure", "replicas", "key_prefix", "lease",
                "heartbeat", "sentinels", "master", "cluster", "tls"});
    std::optional<YAML::Node> tls_block; // read after the url
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("redis", k);
      if (k == "url") {
        std::string url;
        get(kv.second, key, url);
        if (!parse_redis_url(url, r)) // the URL may hold a password: never echoed
          problem(kv.second, key, "expected redis[s]://[user][:password@]host[:port][/db]");
      } else if (k == "password")
        get(kv.second, key, r.password);
      else if (k == "timeout")
        get_duration(kv.second, key, r.timeout);
      else if (k == "connect_timeout")
        get_duration(kv.second, key, r.connect_timeout);
      else if (k == "on_failure") {
        std::string p;
        get(kv.second, key, p);
        if (p == "local")
          r.on_failure = redis_failure_policy::local;
        else if (p == "allow")
          r.on_failure = redis_failure_policy::allow;
        else if (p == "deny")
          r.on_failure = redis_failure_policy::deny;
        else
          problem(kv.second, key, fmt::format("expected local, allow or deny, got '{}'", p));
      } else if (k == "replicas")
        get_int(kv.second, key, r.replicas, 1, 10'000);
      else if (k == "key_prefix")
        get(kv.second, key, r.key_prefix);
      else if (k == "lease")
        get_duration(kv.second, key, r.lease);
      else if (k == "heartbeat")
        get_duration(kv.second, key, r.heartbeat);
      else if (k == "master")
        get(kv.second, key, r.master_name);
      else if (k == "sentinels" || k == "cluster") {
        std::vector<std::string> list;
        get_list(kv.second, key, list);
        for (const auto& e : list) {
          if (auto hp = parse_host_port(e))
            (k == "sentinels" ? r.sentinels : r.cluster).push_back(*hp);
          else
            problem(kv.second, key, fmt::format("expected host:port, got '{}'", e));
        }
      } else if (k == "tls")
        tls_block = kv.second;
    }
    if (tls_block) read_tls_client(*tls_block, "redis.tls", r.tls); // after the url: rediss:// turns it on
    if (!r.sentinels.empty() && !r.cluster.empty())
      problem(n, "redis", "sentinels and cluster exclude each other (a Redis Cluster fails over by itself)");
    if (!r.cluster.empty() && r.database != 0) problem(n, "redis.url", "a Redis Cluster has only database 0");
    if (r.timeout.count() <= 0) problem(n, "redis.timeout", "must be longer than 0");
    if (r.connect_timeout.count() <= 0) problem(n, "redis.connect_timeout", "must be longer than 0");
    if (r.heartbeat < std::chrono::milliseconds(10)) problem(n, "redis.heartbeat", "must be at least 10ms");
    if (r.lease < std::chrono::seconds(1)) problem(n, "redis.lease", "must be at least 1s");
  }

  // redis[s]://[user][:password@]host[:port][/db], as redis-cli and redis-py
  // read it: "user@" alone is a user without a password; %XX escapes are
  // decoded; rediss:// is over TLS.
  static bool parse_redis_url(std::string_view url, redis_config& r) {
    if (url.starts_with("rediss://")) {
      r.tls.enabled = true;
      url.remove_prefix(9);
    } else if (url.starts_with("redis://")) {
      url.remove_prefix(8);
    } else {
      return false;
    }
    auto decode = [](std::string_view in, std::string& out) {
      out.clear();
      for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '%' && i + 2 < in.size()) {
          int v = 0;
          const auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
          if (ec != std::errc{} || p != in.data() + i + 3) return false;
          out += static_cast<char>(v);
          i += 2;
        } else if (in[i] == '%') {
          return false;
        } else {
          out += in[i];
        }
      }
      return true;
    };
    if (const auto at = url.rfind('@'); at != std::string_view::npos) {
      const auto cred = url.substr(0, at);
      url.remove_prefix(at + 1);
      const auto colon = cred.find(':');
      if (!decode(cred.substr(0, colon), r.username)) return false;
      if (colon != std::string_view::npos && !decode(cred.substr(colon + 1), r.password)) return false;
    }
    std::string_view db;
    if (const auto slash = url.find('/'); slash != std::string_view::npos) {
      db = url.substr(slash + 1);
      url = url.substr(0, slash);
    }
    auto hp = parse_host_port(url);
    if (!hp) { // no port: 6379
      std::string_view host = url;
      if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
      if (host.empty() || (!url.starts_with('[') && host.find(':') != std::string_view::npos)) return false;
      hp = endpoint_address{std::string(host), 6379};
    }
    r.host = hp->host;
    r.port = hp->port;
    if (!db.empty()) {
      const auto [ptr, ec] = std::from_chars(db.data(), db.data() + db.size(), r.database);
      if (ec != std::errc{} || ptr != db.data() + db.size() || r.database < 0) return false;
    }
    return true;
  }

  void read_limits(const YAML::Node& n, limits_config& l) {
    if (!expect_map(n, "limits")) return;
    check_keys(n, "limits", {"store", "max_tracked_keys", "rules"});
    for (const auto& kv : n) {
      const auto k = kv.first.Scalar();
      const auto key = join("limits", k);
      if (k == "store") {
        std::string store;
        get(kv.second, key, store);
        if (store == "redis")
          l.redis_store = true;
        else if (store != "local")
          problem(kv.second, key, fmt::format("expected local or redis, got '{}'", store));
      } else if (k == "max_tracked_keys") {
        get_int(kv.second, key, l.max_tracked_keys, 1, 100'000'000);
      } else if (k == "rules") {
        if (!kv.second.IsSequence()) {
          problem(kv.second, key, "expected a list of rules");
          continue;
        }
        for (std::size_t i = 0; i < kv.second.size(); ++i)
          read_rule(kv.second[i], fmt::format("limits.rules[{}]", i), l.rules.emplace_back());
      }
    }
  }

  void read_tiers(const YAML::Node& n, std::vector<tier_config>& tiers) {
    if (!n.IsSequence()) {
      problem(n, "tiers", "expected a list of tiers");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto path = fmt::format("tiers[{}]", i);
      auto& t = tiers.emplace_back();
      if (!expect_map(n[i], path)) continue;
      check_keys(n[i], path, {"name", "degrade_from"});
      for (const auto& kv : n[i]) {
        const auto k = kv.first.Scalar();
        if (k == "name")
          get(kv.second, join(path, k), t.name);
        else if (k == "degrade_from")
          get_int(kv.second, join(path, k), t.degrade_from, 0, 4);
      }
      if (t.name.empty()) problem(n[i], join(path, "name"), "every tier needs a name");
    }
  }

  void read_keys(const YAML::Node& n, std::vector<key_config>& keys) {
    if (!n.IsSequence()) {
      problem(n, "keys", "expected a list of keys");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto path = fmt::format("keys[{}]", i);
      auto& k = keys.emplace_back();
      if (!expect_map(n[i], path)) continue;
      check_keys(n[i], path, {"key", "name", "tier"});
      for (const auto& kv : n[i]) {
        const auto name = kv.first.Scalar();
        if (name == "key")
          get(kv.second, join(path, name), k.key);
        else if (name == "name")
          get(kv.second, join(path, name), k.name);
        else if (name == "tier")
          get(kv.second, join(path, name), k.tier);
      }
      if (k.key.empty()) problem(n[i], join(path, "key"), "empty key (an unset ${VAR:-}?): it would match nobody");
      if (k.name.empty())
        problem(n[i], join(path, "name"), "every key needs a name (logs and metrics show it, never the key)");
    }
  }

  void read_auth(const YAML::Node& v, config& c) {
    if (!expect_map(v, "auth")) return;
    check_keys(v, "auth", {"mode"});
    if (!v["mode"]) return;
    std::string mode;
    get(v["mode"], "auth.mode", mode);
    if (mode == "required")
      c.auth_required = true;
    else if (mode != "optional")
      problem(v["mode"], "auth.mode", fmt::format("expected optional or required, got '{}'", mode));
  }

  void read_trusted_proxies(const YAML::Node& v, config& c) {
    std::vector<std::string> ranges;
    get_list(v, "trusted_proxies", ranges);
    for (const auto& r : ranges) {
      if (auto parsed = parse_cidr(r))
        c.trusted_proxies.push_back(*parsed);
      else
        problem(v, "trusted_proxies", fmt::format("expected an address or CIDR range (10.0.0.0/8, ::1), got '{}'", r));
    }
  }

  void read(const YAML::Node& root, config& c) {
    if (!root.IsMap()) {
      problem(root, "", "the config must be a mapping of keys (listen, backends, models, ...)");
      return;
    }
    check_keys(root, "", {"listen", "workers",         "reasoning_field", "log_level",    "access_log",
                          "cors",   "server",          "upstream",        "backends",     "models",
                          "auth",   "trusted_proxies", "tiers",           "default_tier", "keys",
                          "limits", "breaker",         "health",          "retry",        "scrape",
                          "redis",  "degrade",         "admin",           "cache",        "metrics_listener"});
    std::optional<YAML::Node> backends_node, models_node;
    for (const auto& kv : root) {
      const auto k = kv.first.Scalar();
      const auto& v = kv.second;
      if (k == "listen") {
        if (auto s = scalar(v, k)) {
          if (auto a = parse_host_port(*s))
            c.listen = *a;
          else
            problem(v, k, fmt::format("expected host:port, got '{}'", *s));
        }
      } else if (k == "workers")
        get_int(v, k, c.workers, 0, 256);
      else if (k == "reasoning_field") {
        if (auto s = scalar(v, k)) {
          if (auto f = openai::parse_reasoning_field(*s))
            c.reasoning_field = *f;
          else
            problem(v, k, fmt::format("expected reasoning_content, reasoning or both, got '{}'", *s));
        }
      } else if (k == "log_level") {
        get(v, k, c.log_level);
        static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
        if (!levels.contains(c.log_level))
          problem(v, k,
                  fmt::format("expected trace, debug, info, warn, error, critical or off, got '{}'", c.log_level));
      } else if (k == "access_log") {
        get(v, k, c.access_log);
        if (c.access_log.empty()) problem(v, k, "expected stdout, stderr, off or a file path");
      } else if (k == "metrics_listener") {
        std::string where;
        get(v, k, where);
        if (where == "public" || where == "admin")
          c.internals_on_admin = where == "admin";
        else
          problem(v, k, fmt::format("expected public or admin, got '{}'", where));
      } else if (k == "cors")
        read_cors(v, c.cors);
      else if (k == "server")
        read_server(v, c.server);
      else if (k == "upstream")
        read_upstream(v, c.upstream);
      else if (k == "breaker")
        read_breaker(v, k, c.breaker);
      else if (k == "health")
        read_health(v, k, c.health);
      else if (k == "retry")
        read_retry(v, c.retry);
      else if (k == "scrape")
        read_scrape(v, c.scrape);
      else if (k == "redis")
        read_redis(v, c.redis);
      else if (k == "degrade")
        read_degrade(v, c.degrade);
      else if (k == "admin")
        read_admin(v, c.admin);
      else if (k == "cache")
        read_cache(v, c.cache);
      else if (k == "backends")
        backends_node = v;
      else if (k == "auth")
        read_auth(v, c);
      else if (k == "trusted_proxies")
        read_trusted_proxies(v, c);
      else if (k == "tiers")
        read_tiers(v, c.tiers);
      else if (k == "default_tier")
        get(v, k, c.default_tier);
      else if (k == "keys")
        read_keys(v, c.keys);
      else if (k == "limits")
        read_limits(v, c.limits);
      else if (k == "models")
        models_node = v;
    }
    if (!backends_node || !backends_node->IsSequence() || backends_node->size() == 0)
      problem(backends_node ? *backends_node : root, "backends", "at least one backend is required (a list)");
    else
      for (std::size_t i = 0; i < backends_node->size(); ++i) {
        auto& b = c.backends.emplace_back();
        b.breaker = c.breaker; // a backend's own breaker and health keys override these
        b.health = c.health;
        read_backend((*backends_node)[i], fmt::format("backends[{}]", i), b);
      }
    if (models_node) {
      if (!models_node->IsSequence())
        problem(*models_node, "models", "expected a list");
      else
        for (std::size_t i = 0; i < models_node->size(); ++i)
          read_model((*models_node)[i], fmt::format("models[{}]", i), c.models.emplace_back());
    }
    cross_check(root, c);
  }

  // Relations between sections: unique names, every model served somewhere.
  void cross_check(const YAML::Node& root, config& c) {
    std::set<std::string> backend_names;
    for (const auto& b : c.backends)
      if (!b.name.empty() && !backend_names.insert(b.name).second)
        problems.push_back({0, 0, "backends", fmt::format("backend name '{}' is used twice", b.name)});
    // A model only named by backends gets default settings.
    for (const auto& b : c.backends)
      for (const auto& m : b.models)
        if (std::none_of(c.models.begin(), c.models.end(), [&](const model_config& mc) { return mc.name == m; }))
          c.models.emplace_back().name = m;
    for (std::size_t i = 0; i < c.models.size(); ++i) {
      const auto& m = c.models[i];
      if (m.name.empty()) continue;
      for (const auto& name : [&] {
             auto all = m.aliases;
             all.insert(all.begin(), m.name);
             return all;
           }()) {
        if (!c.model_index.emplace(name, i).second)
          problems.push_back({0, 0, "models", fmt::format("model name or alias '{}' is used twice", name)});
      }
      const bool served = std::any_of(c.backends.begin(), c.backends.end(), [&](const backend_config& b) {
        return std::find(b.models.begin(), b.models.end(), m.name) != b.models.end();
      });
      if (!served)
        problems.push_back({0, 0, fmt::format("models[{}]", i), fmt::format("no backend serves model '{}'", m.name)});
    }
    for (std::size_t i = 0; i < c.models.size(); ++i) {
      const auto& fb = c.models[i].fallback;
      if (fb.empty()) continue;
      const auto it = c.model_index.find(fb);
      if (it == c.model_index.end())
        problems.push_back(
            {0, 0, fmt::format("models[{}].fallback", i), fmt::format("fallback model '{}' is not configured", fb)});
      else if (it->second == i)
        problems.push_back({0, 0, fmt::format("models[{}].fallback", i), "a model cannot be its own fallback"});
      else
        c.models[i].fallback = c.models[it->second].name; // an alias names the model itself
    }
    if (c.internals_on_admin && !c.admin.listen)
      problems.push_back({0, 0, "metrics_listener", "admin needs admin.listen"});
    if (c.workers == 0) c.workers = std::max(1u, std::thread::hardware_concurrency());
    // Tiers: none declared means one, "default", degraded from L1.
    if (c.tiers.empty()) c.tiers.push_back({"default", 1});
    auto tier_known = [&](const std::string& t) {
      return std::any_of(c.tiers.begin(), c.tiers.end(), [&](const tier_config& x) { return x.name == t; });
    };
    if (!tier_known(c.default_tier))
      problems.push_back({0, 0, "default_tier", fmt::format("tier '{}' is not declared in tiers", c.default_tier)});
    for (std::size_t i = 0; i < c.keys.size(); ++i)
      if (!c.keys[i].tier.empty() && !tier_known(c.keys[i].tier))
        problems.push_back({0, 0, fmt::format("keys[{}].tier", i), fmt::format("unknown tier '{}'", c.keys[i].tier)});
    std::set<std::string> rule_names;
    for (std::size_t i = 0; i < c.limits.rules.size(); ++i) {
      const auto& r = c.limits.rules[i];
      if (!r.name.empty() && !rule_names.insert(r.name).second)
        problems.push_back({0, 0, "limits.rules", fmt::format("rule name '{}' is used twice", r.name)});
      for (auto& sc : c.limits.rules[i].scale) {
        if (sc.model.empty()) continue;
        if (const auto it = c.model_index.find(sc.model); it != c.model_index.end())
          sc.model = c.models[it->second].name; // an alias names the model itself
        else
          problems.push_back(
              {0, 0, fmt::format("limits.rules[{}].scale", i), fmt::format("unknown model '{}'", sc.model)});
      }
      for (const auto& t : r.tiers)
        if (!tier_known(t))
          problems.push_back({0, 0, fmt::format("limits.rules[{}].tiers", i), fmt::format("unknown tier '{}'", t)});
    }
    (void)root;
  }

private:
  env_lookup env_;
};

} // namespace

namespace {
constexpr std::array<std::pair<signal, std::string_view>, 9> k_signals{{{signal::breakers_open, "breakers_open"},
                                                                        {signal::queue_depth, "queue_depth"},
                                                                        {signal::queue_wait_p95, "queue_wait_p95"},
                                                                        {signal::ttft_p95, "ttft_p95"},
                                                                        {signal::error_rate, "error_rate"},
                                                                        {signal::gpu_temp, "gpu_temp"},
                                                                        {signal::gpu_util, "gpu_util"},
                                                                        {signal::gpu_mem, "gpu_mem"},
                                                                        {signal::waiting, "waiting"}}};
} // namespace

std::vector<std::string> restart_needed(const config& a, const config& b) {
  std::vector<std::string> out;
  auto differs = [&](bool changed, std::string_view what) {
    if (changed) out.emplace_back(what);
  };
  differs(a.listen != b.listen, "listen");
  differs(a.workers != b.workers, "workers");
  differs(a.access_log != b.access_log, "access_log");
  differs(a.internals_on_admin != b.internals_on_admin, "metrics_listener");
  differs(a.reasoning_field != b.reasoning_field, "reasoning_field");
  differs(a.server != b.server, "server");
  differs(a.upstream != b.upstream, "upstream");
  differs(a.breaker != b.breaker, "breaker");
  differs(a.health != b.health, "health");
  differs(a.retry != b.retry, "retry");
  differs(a.scrape != b.scrape, "scrape");
  differs(a.backends != b.backends, "backends");
  differs(a.redis != b.redis, "redis");
  differs(a.admin != b.admin, "admin");
  differs(a.cache != b.cache, "cache");
  differs(a.degrade.window != b.degrade.window, "degrade.window");
  differs(a.limits.redis_store != b.limits.redis_store, "limits.store");
  // Models: everything but their ladder settings.
  auto without_ladder = [](std::vector<model_config> models) {
    for (auto& m : models) {
      m.level = -1;
      m.triggers.reset();
    }
    return models;
  };
  differs(without_ladder(a.models) != without_ladder(b.models), "models");
  return out;
}

std::string_view to_string(signal s) {
  for (const auto& [v, name] : k_signals)
    if (v == s) return name;
  return "?";
}

std::optional<signal> parse_signal(std::string_view s) {
  for (const auto& [v, name] : k_signals)
    if (name == s) return v;
  return std::nullopt;
}

std::shared_ptr<const config> load_config(const std::string& yaml_text, const std::string& source, env_lookup env) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw config_error({{e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column + 1, "",
                         fmt::format("{}: YAML syntax error: {}", source, e.msg)}});
  }
  auto c = std::make_shared<config>();
  loader l(env);
  l.read(root, *c);
  if (!l.problems.empty()) throw config_error(std::move(l.problems));
  return c;
}

std::shared_ptr<const config> load_config_file(const std::string& path, env_lookup env) {
  std::ifstream in(path);
  if (!in) throw config_error({{0, 0, "", fmt::format("cannot read config file '{}'", path)}});
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config(ss.str(), path, env);
}

} // namespace llmgate::control
