#pragma once
// How many tokens a request's prompt is: exact with the model's tokenizer
// (the chat rendered through Qwen3's template, or the completion prompt),
// else an estimate of 4 bytes a token. Pure; thread-safe.
#include "openai/request_view.hpp"
#include "tokenize/qwen_tokenizer.hpp"

#include <cstdint>
#include <string_view>

namespace llmgate::tokenize {

struct prompt_count {
  std::int64_t tokens = 0;  // all prompts together: what the backend will process (the cost)
  std::int64_t longest = 0; // the longest single prompt (what must fit the context)
  bool exact = false;
};

[[nodiscard]] prompt_count count_prompt(const openai::request_view& view, std::string_view raw_body,
                                        const qwen_tokenizer* tokenizer);

} // namespace llmgate::tokenize
