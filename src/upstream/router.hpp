#pragma once
// Which backends may serve a model, and which one to try next. The pools are
// built once per config; a router's round-robin position is per worker
// (not thread-safe: each event-loop thread has its own).
#include "control/config.hpp"
#include "upstream/balancer.hpp"

#include <cstddef>
#include <string_view>
#include <vector>

namespace llmgate::upstream {

class router final {
public:
  explicit router(const control::config& cfg);

  // Backend indices (into config::backends) serving this canonical model name.
  [[nodiscard]] const std::vector<std::size_t>& pool(std::string_view model) const;

  // The backend for attempt number `attempt` (0 first) of a request: the
  // model's balancer (round robin for now) picks the first, retries take the
  // next backends in turn.
  [[nodiscard]] std::size_t pick(std::string_view model, std::size_t attempt, std::size_t& cursor);

private:
  const control::config& cfg_;
  std::vector<std::vector<std::size_t>> pools_; // by model index
  std::vector<balancer> balancers_;             // by model index
  std::vector<backend_load> loads_;             // scratch: one entry per pool member
  std::vector<std::size_t> empty_;
};

} // namespace llmgate::upstream
