#pragma once
// Splits Qwen3's inline thinking out of generated text, for backends that send
// it as "<think>…</think>answer" in the content. Fed text in arbitrary pieces
// (a tag may be cut anywhere); holds back only what could still be part of a
// tag. A "<think>" counts only at the start of the output (after whitespace),
// as Qwen3 emits it; later ones are content. Not thread-safe (one per choice).
#include <string>
#include <string_view>

namespace llmgate::openai {

class think_splitter final {
public:
  struct parts {
    std::string reasoning;
    std::string content;
  };

  // Text generated next; returns what can be classified so far.
  parts feed(std::string_view text);
  // End of output: releases anything held back.
  parts finish();
  // True once every further piece is plain content passed through unchanged.
  [[nodiscard]] bool passthrough() const noexcept { return state_ == state::content && !skip_newlines_; }

private:
  enum class state { start, thinking, content };
  void feed_thinking(std::string_view text, parts& out);
  void feed_content(std::string_view text, parts& out);

  state state_ = state::start;
  bool skip_newlines_ = false; // right after a tag, Qwen3 puts newlines that belong to neither part
  std::string held_;
};

} // namespace llmgate::openai
