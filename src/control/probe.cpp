#include "control/probe.hpp"

#include "tls/tls.hpp"
#include "upstream/http_get.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <fmt/format.h>

namespace llmgate::control {

namespace json = boost::json;

namespace {

std::vector<std::string> model_ids(const std::string& body) {
  std::vector<std::string> ids;
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return ids;
  if (const auto* data = v.get_object().if_contains("data"); data && data->is_array())
    for (const auto& m : data->get_array())
      if (m.is_object())
        if (const auto* id = m.get_object().if_contains("id"); id && id->is_string())
          ids.emplace_back(id->get_string());
  return ids;
}

void check_metrics(const backend_config& b, const std::string& url, std::string_view label, std::string_view expect,
                   duration timeout, const tls::context* tls, std::vector<probe_finding>& out) {
  auto parsed = parse_http_url(url);
  if (!parsed) {
    out.push_back({b.name, false, fmt::format("{} {}: not an http(s):// URL", label, url)});
    return;
  }
  auto r = upstream::http_get_blocking(*parsed, timeout, tls);
  if (!r)
    out.push_back({b.name, false, fmt::format("{} {}: {}", label, url, r.error().message())});
  else if (r->status != 200)
    out.push_back({b.name, false, fmt::format("{} {}: HTTP {}", label, url, r->status)});
  else if (r->body.find(expect) == std::string::npos)
    out.push_back({b.name, false, fmt::format("{} {}: answers, but has no {} metrics", label, url, expect)});
  else
    out.push_back({b.name, true, fmt::format("{} {}: exposes {} metrics", label, url, expect)});
}

} // namespace

std::vector<probe_finding> probe_backends(const config& cfg, duration timeout) {
  std::vector<probe_finding> out;
  for (const auto& b : cfg.backends) {
    // The backend's TLS settings, as the gateway would use them (a bad file is a finding).
    std::optional<tls::context> tls;
    if (b.tls.enabled || b.metrics_url.starts_with("https://") || b.gpu_metrics_url.starts_with("https://")) {
      try {
        tls = tls::context::client(b.tls);
      } catch (const std::exception& e) {
        out.push_back({b.name, false, fmt::format("{}: {}", b.url, e.what())});
        continue;
      }
    }
    const auto* ctx = tls ? &*tls : nullptr;
    upstream::http_url url{b.address.host, b.address.port, b.base_path + "/v1/models", b.tls.enabled};
    auto r = upstream::http_get_blocking(url, timeout, ctx);
    if (!r) {
      out.push_back({b.name, false, fmt::format("{}: does not answer ({})", b.url, r.error().message())});
      continue;
    }
    if (r->status != 200) {
      out.push_back({b.name, false, fmt::format("{}: GET /v1/models answered HTTP {}", b.url, r->status)});
      continue;
    }
    const auto ids = model_ids(r->body);
    for (const auto& m : b.models) {
      const bool served = std::find(ids.begin(), ids.end(), m) != ids.end();
      out.push_back({b.name, served,
                     served ? fmt::format("{}: serves {}", b.url, m)
                            : fmt::format("{}: does not serve {} (it serves: {})", b.url, m, fmt::join(ids, ", "))});
    }
    // What each kind of server names its own metrics; Ollama and hosted APIs expose none.
    std::string_view prefix;
    switch (b.kind) {
    case openai::backend_kind::vllm: prefix = "vllm:"; break;
    case openai::backend_kind::sglang: prefix = "sglang:"; break;
    case openai::backend_kind::llamacpp: prefix = "llamacpp:"; break;
    default: break;
    }
    if (!prefix.empty()) check_metrics(b, b.metrics_url, "metrics", prefix, timeout, ctx, out);
    if (!b.gpu_metrics_url.empty())
      check_metrics(b, b.gpu_metrics_url, "GPU metrics", "DCGM_FI_DEV_", timeout, ctx, out);
  }
  return out;
}

bool backend_answers(const std::string& host, std::uint16_t port, duration timeout) {
  auto r = upstream::http_get_blocking({host, port, "/v1/models"}, timeout);
  return r && r->status == 200;
}

} // namespace llmgate::control
