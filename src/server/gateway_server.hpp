#pragma once
// The gateway process: one event loop per worker thread, each with its own
// listener (SO_REUSEPORT), connections and upstream pools; the request
// pipeline; graceful drain on SIGTERM. Thread-safe where noted.
#include "control/config.hpp"
#include "observe/metrics.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace llmgate::server {

class gateway final {
public:
  // note: said in the start-up log line (e.g. that backends are simulated).
  gateway(std::shared_ptr<const control::config> cfg, observe::registry& metrics, std::string note = {});
  ~gateway();
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  // Binds every worker's listener; throws std::runtime_error when it cannot.
  // Returns the port bound (useful with port 0).
  std::uint16_t start();
  // Reloads (SIGHUP, the admin API, a change of the file at `path`) read the
  // config through `source` (which throws control::config_error when it is
  // not valid). Without it, there is nothing to reload.
  void set_reload(std::string path, std::function<std::shared_ptr<const control::config>()> source);
  // Serves until SIGTERM or SIGINT, then drains: stops accepting, lets
  // in-flight requests finish up to server.drain_timeout, closes the rest.
  // Returns the process exit code.
  int run();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace llmgate::server
