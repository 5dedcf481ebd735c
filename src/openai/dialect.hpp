#pragma once
// How each kind of backend speaks OpenAI's API, and how clients want reasoning.
#include <optional>
#include <string_view>

namespace llmgate::openai {

// vllm, sglang and llamacpp take Qwen3's thinking switch in
// chat_template_kwargs; ollama and openai-compatible servers get the
// "/no_think" soft switch that Qwen3's chat template understands.
enum class backend_kind { vllm, sglang, llamacpp, ollama, openai };

// The field reasoning is sent to clients under.
enum class reasoning_field { reasoning_content, reasoning, both };

[[nodiscard]] std::optional<backend_kind> parse_backend_kind(std::string_view s);
[[nodiscard]] std::optional<reasoning_field> parse_reasoning_field(std::string_view s);
[[nodiscard]] std::string_view to_string(backend_kind k);
[[nodiscard]] inline bool takes_template_kwargs(backend_kind k) {
  return k == backend_kind::vllm || k == backend_kind::sglang || k == backend_kind::llamacpp;
}

} // namespace llmgate::openai
