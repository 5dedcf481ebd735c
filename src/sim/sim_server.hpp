#pragma once
// `llmgate sim`: an OpenAI-compatible stand-in for a vLLM server running
// Qwen3, with vLLM's and DCGM's metric names, a continuous-batching timing
// model and fault injection (flags, and POST /sim/faults at run time).
// A sim_server runs its own event loop on its own thread.
#include "control/config.hpp"
#include "sim/engine.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace llmgate::sim {

struct faults {
  double error_rate = 0; // share of requests answered with error_status
  int error_status = 500;
  std::int64_t latency_ms = 0;        // added before the first token
  bool hang = false;                  // accept requests and never answer
  std::int64_t drop_after_tokens = 0; // >0: close the connection after this many tokens
  bool refuse = false;                // stop listening: connections are refused, idle ones closed
  std::int64_t refuse_for_ms = 0;     // >0: listen again after this long (0: until told so)
  double gpu_temp = 0;                // >0: DCGM_FI_DEV_GPU_TEMP reports this
};

struct sim_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string model = "Qwen3-1.7B";
  profile timing;                            // find_profile("default", ...) by default
  bool reasoning_parser = false;             // thinking in a field instead of inline <think>
  std::string reasoning_field = "reasoning"; // vLLM >= 0.17; "reasoning_content" as SGLang
  std::size_t answer_tokens = 0;             // 0: chosen by the prompt (16..48)
  std::size_t thinking_tokens = 0;
  std::uint64_t seed = 1;
  faults initial_faults;
  control::tls_server_config tls; // serve HTTPS with this certificate (tests of https:// backends)
};

class sim_server final {
public:
  explicit sim_server(sim_options opts);
  ~sim_server(); // stops the thread
  sim_server(const sim_server&) = delete;
  sim_server& operator=(const sim_server&) = delete;

  // Binds and starts serving on a thread of its own; returns the port.
  std::uint16_t start();
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace llmgate::sim
