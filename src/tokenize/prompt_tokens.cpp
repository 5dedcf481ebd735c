#include "tokenize/prompt_tokens.hpp"

#include "tokenize/chat_template.hpp"

namespace llmgate::tokenize {

prompt_count count_prompt(const openai::request_view& view, std::string_view raw_body,
                          const qwen_tokenizer* tokenizer) {
  if (!tokenizer) return {static_cast<std::int64_t>(raw_body.size() / 4), false};
  if (view.kind == openai::endpoint::chat_completions)
    return {static_cast<std::int64_t>(tokenizer->count(render_qwen3_chat(view.body, view.enable_thinking))), true};
  // Completions: a string, an array of strings (the largest counts), token ids, or arrays of them.
  const auto& prompt = view.body.at("prompt");
  if (prompt.is_string()) return {static_cast<std::int64_t>(tokenizer->count(prompt.get_string())), true};
  std::int64_t most = 0;
  if (prompt.is_array()) {
    const auto& items = prompt.get_array();
    if (!items.empty() && (items[0].is_int64() || items[0].is_uint64()))
      return {static_cast<std::int64_t>(items.size()), true};
    for (const auto& p : items) {
      if (p.is_string())
        most = std::max<std::int64_t>(most, static_cast<std::int64_t>(tokenizer->count(p.get_string())));
      else if (p.is_array())
        most = std::max<std::int64_t>(most, static_cast<std::int64_t>(p.get_array().size()));
    }
  }
  return {most, true};
}

} // namespace llmgate::tokenize
