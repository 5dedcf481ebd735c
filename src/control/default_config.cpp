#include "control/default_config.hpp"

#include <fmt/format.h>

namespace llmgate::control {

namespace {

constexpr std::string_view k_common = R"(listen: 127.0.0.1:8080
reasoning_field: reasoning_content
)";

constexpr std::string_view k_models = R"(models:
  - name: Qwen3-1.7B
    aliases: [qwen3-1.7b, Qwen/Qwen3-1.7B]
    fallback: Qwen3-0.6B
    context_length: 32768
  - name: Qwen3-0.6B
    aliases: [qwen3-0.6b, Qwen/Qwen3-0.6B]
    context_length: 32768
)";

} // namespace

std::string default_config_yaml() {
  return fmt::format(R"({}backends:
  - name: local-8000
    url: http://127.0.0.1:{}
    kind: vllm
    models: [Qwen3-1.7B]
models:
  - name: Qwen3-1.7B
    aliases: [qwen3-1.7b, Qwen/Qwen3-1.7B]
    context_length: 32768
)",
                     k_common, k_default_backend_port);
}

std::string simulated_config_yaml(std::uint16_t port_a, std::uint16_t port_b, std::uint16_t port_small) {
  return fmt::format(R"({}backends:
  - {{name: sim-qwen3-1.7b-a, url: "http://127.0.0.1:{}", kind: vllm, models: [Qwen3-1.7B]}}
  - {{name: sim-qwen3-1.7b-b, url: "http://127.0.0.1:{}", kind: vllm, models: [Qwen3-1.7B]}}
  - {{name: sim-qwen3-0.6b, url: "http://127.0.0.1:{}", kind: vllm, models: [Qwen3-0.6B]}}
{})",
                     k_common, port_a, port_b, port_small, k_models);
}

} // namespace llmgate::control
