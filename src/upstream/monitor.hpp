#pragma once
// Watching one backend from the side: active health checks (GET its health
// path every interval; healthy/unhealthy thresholds) and scrapes of its
// metrics_url and gpu_metrics_url, whose figures feed least_busy and
// /metrics. Both loops run on the event loop they are spawned on until
// `stop` is set. Include only from translation units that speak HTTP.
#include "control/config.hpp"
#include "io/io.hpp"
#include "upstream/backend_state.hpp"

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string_view>

namespace llmgate::tls {
class context;
}

namespace llmgate::upstream {

struct monitor_hooks {
  std::function<void(std::string_view result)> checked;                          // "pass" or "fail"
  std::function<void(std::string_view target, std::string_view result)> scraped; // "engine"|"gpu", "ok"|"error"
};

// tls: the backend's client context (https:// urls), or null; it outlives the loops.
io::task<void> check_health(backend_state& s, const std::atomic<bool>& stop, monitor_hooks hooks,
                            const tls::context* tls = nullptr);
io::task<void> scrape_metrics(backend_state& s, const control::scrape_config& cfg, const std::atomic<bool>& stop,
                              monitor_hooks hooks, const tls::context* tls = nullptr);

} // namespace llmgate::upstream
