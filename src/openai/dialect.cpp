#include "openai/dialect.hpp"

namespace llmgate::openai {

std::optional<backend_kind> parse_backend_kind(std::string_view s) {
  if (s == "vllm") return backend_kind::vllm;
  if (s == "sglang") return backend_kind::sglang;
  if (s == "llamacpp") return backend_kind::llamacpp;
  if (s == "ollama") return backend_kind::ollama;
  if (s == "openai") return backend_kind::openai;
  return std::nullopt;
}

std::optional<reasoning_field> parse_reasoning_field(std::string_view s) {
  if (s == "reasoning_content") return reasoning_field::reasoning_content;
  if (s == "reasoning") return reasoning_field::reasoning;
  if (s == "both") return reasoning_field::both;
  return std::nullopt;
}

std::string_view to_string(backend_kind k) {
  switch (k) {
  case backend_kind::vllm: return "vllm";
  case backend_kind::sglang: return "sglang";
  case backend_kind::llamacpp: return "llamacpp";
  case backend_kind::ollama: return "ollama";
  case backend_kind::openai: return "openai";
  }
  return "openai";
}

} // namespace llmgate::openai
