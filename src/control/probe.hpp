#pragma once
// `llmgate check --probe`: the seed's first-login checklist done by the tool.
// Connects to every backend and reports whether it answers, serves the
// configured models and exposes metrics.
#include "control/config.hpp"

#include <string>
#include <vector>

namespace llmgate::control {

struct probe_finding {
  std::string backend;
  bool ok = false;
  std::string what; // one line: what was checked and what was found
};

[[nodiscard]] std::vector<probe_finding> probe_backends(const config& cfg, duration timeout);

// True when an OpenAI-compatible server answers GET /v1/models at host:port.
[[nodiscard]] bool backend_answers(const std::string& host, std::uint16_t port, duration timeout);

} // namespace llmgate::control
