#pragma once
// The configuration `llmgate serve` runs with when no file is given: listen on
// 127.0.0.1:8080 and serve Qwen3-1.7B from a real server on 127.0.0.1:8000, or,
// when none answers there, from built-in simulators.
#include <cstdint>
#include <string>

namespace llmgate::control {

inline constexpr std::uint16_t k_default_backend_port = 8000;

// Qwen3-1.7B on http://127.0.0.1:8000 (kind vllm).
[[nodiscard]] std::string default_config_yaml();

// Qwen3-1.7B on two simulators and Qwen3-0.6B (its fallback) on a third,
// at the given loopback ports.
[[nodiscard]] std::string simulated_config_yaml(std::uint16_t port_a, std::uint16_t port_b, std::uint16_t port_small);

} // namespace llmgate::control
