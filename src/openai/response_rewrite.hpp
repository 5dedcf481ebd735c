#pragma once
// Rewrites backend responses so clients get reasoning the one way they asked
// for it: read from "reasoning" (vLLM >= 0.17), "reasoning_content" (SGLang,
// older vLLM) or inline "<think>…</think>" in content; sent as the configured
// field, or stripped when the client set return_reasoning=false. Also reads
// usage for accounting. Not thread-safe (one per response).
#include "openai/dialect.hpp"
#include "openai/request_view.hpp"
#include "openai/think_splitter.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::openai {

struct reasoning_options {
  reasoning_field field = reasoning_field::reasoning_content;
  bool return_reasoning = true;
};

struct usage_counts {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

class stream_rewriter final {
public:
  // drop_usage_chunk: the client did not ask for usage (the gateway did, for
  // token limits): the usage-only chunk is read and not sent.
  // remember_shape = false reads every chunk in full (the fuzzer compares the two).
  stream_rewriter(endpoint kind, reasoning_options opts, bool drop_usage_chunk = false, bool remember_shape = true)
      : kind_(kind), opts_(opts), drop_usage_chunk_(drop_usage_chunk), remember_shape_(remember_shape) {}

  // One SSE event's data (a chat.completion.chunk). Returns the data to send
  // instead, nullopt when the original bytes go out unchanged, or an empty
  // string when the event is not to be sent at all.
  [[nodiscard]] std::optional<std::string> rewrite(std::string_view data);
  // Chunks for text still held back by a think splitter when the stream ends
  // (before [DONE]); usually empty.
  [[nodiscard]] std::vector<std::string> flush();

  [[nodiscard]] const std::optional<usage_counts>& usage() const noexcept { return usage_; }
  // Events that carried generated text: a count of completion tokens for
  // backends that report no usage (vLLM sends one token per event).
  [[nodiscard]] std::int64_t chunks_with_content() const noexcept { return content_chunks_; }

private:
  think_splitter& splitter(std::size_t index);
  // A chunk of the plain shape rewritten by splicing its content (the rest
  // of its bytes kept); nullopt for any other shape, which is parsed.
  std::optional<std::optional<std::string>> splice(std::string_view data);
  // The id, model and created of a chunk, for the chunks flush() makes.
  void remember(const boost::json::object& chunk);
  // A chunk relayed unchanged by the fast path, kept as the bytes around its
  // content string; the text of a later chunk with the same bytes around
  // its content, when that text can change nothing (see rewrite()).
  void learn_shape(std::string_view data);
  [[nodiscard]] std::optional<std::string_view> same_shape(std::string_view data) const;

  endpoint kind_;
  reasoning_options opts_;
  bool drop_usage_chunk_ = false;
  bool remember_shape_ = true;
  std::vector<think_splitter> splitters_;
  std::optional<usage_counts> usage_;
  std::int64_t content_chunks_ = 0;
  std::string last_id_, last_model_;
  std::int64_t last_created_ = 0;
  std::string last_spliced_;            // the last chunk spliced after the last one parsed: its ids are read at flush()
  std::string shape_head_, shape_tail_; // learn_shape: up to the content's opening quote, from its closing one
};

// A whole (non-streamed) completion. Returns nullopt when unchanged.
[[nodiscard]] std::optional<std::string> rewrite_response(std::string_view body, endpoint kind, reasoning_options opts,
                                                          usage_counts* usage = nullptr);

// Reads "usage" from a completion or a chunk, if present.
[[nodiscard]] std::optional<usage_counts> read_usage(const boost::json::object& o);

} // namespace llmgate::openai
