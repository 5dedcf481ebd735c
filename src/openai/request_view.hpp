#pragma once
// The request parsed once: what every later step needs to know about a
// completion request, plus the parsed body for the steps that rewrite it.
// Validation happens here so a bad request never reaches a backend.
#include "openai/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/system/result.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::openai {

enum class endpoint { chat_completions, completions };

struct request_view {
  endpoint kind = endpoint::chat_completions;
  std::string model{};
  bool stream = false;
  bool include_usage = false;               // stream_options.include_usage
  std::optional<std::int64_t> max_tokens{}; // max_tokens or max_completion_tokens
  std::optional<bool> enable_thinking{};    // top level (extra_body) or chat_template_kwargs
  bool thinking_at_top_level = false;       // enable_thinking/return_reasoning sit at the top level
  bool return_reasoning = true;
  boost::json::object body;
};

// A JSON number that is a whole int64 (1, 1.0, 1e12); nullopt for 1.5, 1e30,
// strings. Never boost::json's to_number<int64>, which throws on those (a
// backend's usage once did, found by fuzz_sse) — and never a cast of an
// out-of-range double, which is undefined (fuzz_request).
[[nodiscard]] std::optional<std::int64_t> whole_number(const boost::json::value& v);

// Upper bound on n (choices per request): more is refused rather than passed
// to a GPU that would generate them all.
inline constexpr std::int64_t k_max_choices = 128;

// storage: where the parsed body lives (e.g. a per-request arena that
// outlives the view); default: the heap.
[[nodiscard]] boost::system::result<request_view, local_reply> parse_request(std::string_view body, endpoint kind,
                                                                             boost::json::storage_ptr storage = {});

} // namespace llmgate::openai

namespace llmgate::openai {

// The start of the prompt (chat: each message's role and text in order;
// completions: the prompt), at most max_bytes: what prefix_affinity hashes,
// so requests sharing a system prompt and history land where it is cached.
[[nodiscard]] std::string prompt_prefix(const request_view& view, std::size_t max_bytes = 512);

} // namespace llmgate::openai
