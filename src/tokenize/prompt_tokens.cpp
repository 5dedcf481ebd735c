#include "tokenize/prompt_tokens.hpp"

#include "tokenize/chat_template.hpp"

namespace llmgate::tokenize {

prompt_count count_prompt(const openai::request_view& view, std::string_view raw_body,
                          const qwen_tokenizer* tokenizer) {
  if (!tokenizer) {
    const auto estimate = static_cast<std::int64_t>(raw_body.size() / 4);
    return {estimate, estimate, false};
  }
  if (view.kind == openai::endpoint::chat_completions) {
    const auto n = static_cast<std::int64_t>(tokenizer->count(render_qwen3_chat(view.body(), view.enable_thinking)));
    return {n, n, true};
  }
  // Completions: a string, an array of strings, token ids, or arrays of them. A
  // batch costs the sum; each prompt alone must fit the context.
  const auto& prompt = view.body().at("prompt");
  if (prompt.is_string()) {
    const auto n = static_cast<std::int64_t>(tokenizer->count(prompt.get_string()));
    return {n, n, true};
  }
  prompt_count out{0, 0, true};
  if (prompt.is_array()) {
    const auto& items = prompt.get_array();
    if (!items.empty() && (items[0].is_int64() || items[0].is_uint64())) {
      const auto n = static_cast<std::int64_t>(items.size());
      return {n, n, true};
    }
    for (const auto& p : items) {
      std::int64_t n = 0;
      if (p.is_string())
        n = static_cast<std::int64_t>(tokenizer->count(p.get_string()));
      else if (p.is_array())
        n = static_cast<std::int64_t>(p.get_array().size());
      out.tokens += n;
      out.longest = std::max(out.longest, n);
    }
  }
  return out;
}

} // namespace llmgate::tokenize
