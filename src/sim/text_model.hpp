#pragma once
// The simulator's "model": deterministic Qwen3-like output seeded by the
// prompt, one string per token, with an inline <think> block when thinking is
// on. Pure; thread-safe (no state).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::sim {

struct generation {
  std::vector<std::string> tokens;  // in order; the <think> block's tokens first when thinking
  std::size_t reasoning_tokens = 0; // how many leading tokens belong to the think block (tags included)
  bool truncated = false;           // stopped by max_tokens
};

struct generation_request {
  std::string_view prompt;     // the text the output is seeded by
  std::int64_t max_tokens = 0; // 0: no cap
  bool thinking = true;
  std::size_t answer_tokens = 0; // 0: chosen from the prompt (16..48)
  std::size_t thinking_tokens = 0;
  bool ignore_eos = false; // vLLM's extension: with max_tokens, exactly that many tokens
};

[[nodiscard]] generation generate(const generation_request& req);

// A rough token count for a prompt (about 4 bytes a token, as for English and code).
[[nodiscard]] std::int64_t estimate_tokens(std::string_view text);

[[nodiscard]] std::uint64_t fnv1a(std::string_view text, std::uint64_t seed = 1469598103934665603ull);

} // namespace llmgate::sim
