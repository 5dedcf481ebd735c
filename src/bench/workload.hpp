#pragma once
// What `llmgate bench` sends: prompt and output lengths drawn from a
// distribution, a prompt of about that many Qwen3 tokens, and the chat
// request body. Pure; thread-safe (no shared state: each caller owns its rng).
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace llmgate::bench {

// A length in tokens: "256" (fixed), "128..512" (uniform), "normal:256,64",
// "exp:256" (exponential with that mean). Draws are at least 1.
struct length_dist {
  enum class shape { fixed, uniform, normal, exponential };
  shape kind = shape::fixed;
  double a = 1; // the value, the low end, the mean
  double b = 0; // the high end, the standard deviation
};

[[nodiscard]] std::optional<length_dist> parse_length(std::string_view spec, std::string& error);
[[nodiscard]] std::int64_t draw(const length_dist& d, std::mt19937_64& rng);
[[nodiscard]] std::string describe(const length_dist& d);

// About `tokens` Qwen3 tokens of English (common short words, one token each
// with their leading space; 4 bytes a token, as the simulator counts). `salt`
// makes prompts differ, so no cache or prefix answers for another.
[[nodiscard]] std::string prompt_text(std::int64_t tokens, std::uint64_t salt);

struct request_shape {
  std::string model = "Qwen3-1.7B";
  bool stream = true;
  bool thinking = false;  // false: chat_template_kwargs.enable_thinking=false
  bool ignore_eos = true; // vLLM's extension: generate exactly max_tokens
};

// The JSON body of one chat completion (usage asked for in streams).
[[nodiscard]] std::string chat_body(const request_shape& shape, std::string_view prompt, std::int64_t max_tokens);

} // namespace llmgate::bench
