#include "upstream/monitor.hpp"
#include "io/io.hpp"

#include "upstream/http_get.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace llmgate::upstream {

namespace net = boost::asio;

namespace {

using io::k_tuple;

io::task<bool> sleep_for(control::duration d) {
  io::timer t(co_await net::this_coro::executor, d);
  auto [ec] = co_await t.async_wait(k_tuple);
  co_return !ec;
}

} // namespace

io::task<void> check_health(backend_state& s, const std::atomic<bool>& stop, monitor_hooks hooks,
                            const tls::context* tls) {
  const auto& b = s.config();
  const auto& h = b.health;
  const http_url url{b.address.host, b.address.port, b.base_path + h.path, b.tls.enabled};
  while (!stop.load()) {
    auto r = co_await http_get(url, h.timeout, 4 << 20, b.api_key, tls); // /v1/models of a big provider is long
    const bool passed = r && r->status >= 200 && r->status < 300;
    if (hooks.checked) hooks.checked(passed ? "pass" : "fail");
    if (auto change = s.health_result(passed)) {
      if (*change)
        spdlog::info("backend {}: healthy again ({} checks of {} passed)", b.name, h.healthy_threshold, url.target);
      else
        spdlog::warn("backend {}: unhealthy after {} failed checks of {} ({}); no traffic until it recovers", b.name,
                     h.unhealthy_threshold, url.target, r ? fmt::format("status {}", r->status) : r.error().message());
    }
    if (!co_await sleep_for(h.interval)) co_return;
  }
}

io::task<void> scrape_metrics(backend_state& s, const control::scrape_config& cfg, const std::atomic<bool>& stop,
                              monitor_hooks hooks, const tls::context* tls) {
  const auto& b = s.config();
  const auto engine_url = b.metrics_url.empty() ? std::nullopt : control::parse_http_url(b.metrics_url);
  const auto gpu_url = b.gpu_metrics_url.empty() ? std::nullopt : control::parse_http_url(b.gpu_metrics_url);
  if (!engine_url && !gpu_url) co_return;
  bool engine_failing = false; // log a failing scrape once, not every interval
  while (!stop.load()) {
    if (engine_url) {
      auto r = co_await http_get(*engine_url, cfg.timeout, 8 << 20, {}, tls); // no key: metrics_url may be another host
      const bool ok = r && r->status == 200;
      if (ok)
        s.set_engine(observe::read_engine_figures(r->body));
      else
        s.clear_engine();
      if (hooks.scraped) hooks.scraped("engine", ok ? "ok" : "error");
      if (!ok && !engine_failing)
        spdlog::warn("backend {}: cannot scrape {} ({}); least_busy counts it as the busiest meanwhile", b.name,
                     b.metrics_url, r ? fmt::format("status {}", r->status) : r.error().message());
      engine_failing = !ok;
    }
    if (gpu_url) {
      auto r = co_await http_get(*gpu_url, cfg.timeout, 8 << 20, {}, tls);
      const bool ok = r && r->status == 200;
      s.set_gpu(ok ? observe::read_gpu_figures(r->body) : observe::gpu_figures{});
      if (hooks.scraped) hooks.scraped("gpu", ok ? "ok" : "error");
    }
    if (!co_await sleep_for(cfg.interval)) co_return;
  }
}

} // namespace llmgate::upstream
