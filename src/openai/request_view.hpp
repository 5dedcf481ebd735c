#pragma once
// The request read once: what every later step needs to know about a
// completion request, and the body parsed for the steps that read more of it.
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
  std::optional<double> temperature{}; // when the client set it
  // chat_template_kwargs as the client sent it: what rewrite_request decides by.
  bool kwargs_present = false;                  // the key, whatever its value
  bool kwargs_return_reasoning = false;         // an object with return_reasoning in it
  std::optional<bool> kwargs_enable_thinking{}; // its enable_thinking, when a boolean
  // When asked for (request_parse::canonical): the body in a canonical form,
  // for the response cache's key (see degrade::cache_key).
  std::string canonical{};
  // The body as the client sent it, and where its parsed form lives: both
  // must outlive the view.
  std::string_view text{};
  boost::json::storage_ptr storage{};
  // The parsed body: made by parse_request when asked (request_parse::body),
  // else on the first call. A proxied request that is not rewritten never
  // needs it, and building it was ~2,500 instructions of the ~5,800 its
  // parse took (bench/instructions_per_request.sh).
  [[nodiscard]] const boost::json::object& body() const;
  mutable std::optional<boost::json::object> parsed_body{};
};

// What parse_request makes beside the checked fields.
struct request_parse {
  bool body = false;      // the parsed body, now (the caller will read it anyway)
  bool canonical = false; // request_view::canonical
};

// A JSON number that is a whole int64 (1, 1.0, 1e12); nullopt for 1.5, 1e30,
// strings. Never boost::json's to_number<int64>, which throws on those (a
// backend's usage once did, found by fuzz_sse) — and never a cast of an
// out-of-range double, which is undefined (fuzz_request).
[[nodiscard]] std::optional<std::int64_t> whole_number(const boost::json::value& v);

// Upper bound on n (choices per request): more is refused rather than passed
// to a GPU that would generate them all.
inline constexpr std::int64_t k_max_choices = 128;

// body: the client's bytes, which the view refers to (request_view::text);
// storage: where the parsed body lives (e.g. a per-request arena that
// outlives the view); default: the heap. One pass of the JSON parser checks
// the body and reads the fields; the body itself is built only when asked.
[[nodiscard]] boost::system::result<request_view, local_reply>
parse_request(std::string_view body, endpoint kind, boost::json::storage_ptr storage = {}, request_parse make = {});

} // namespace llmgate::openai

namespace llmgate::openai {

// The start of the prompt (chat: each message's role and text in order;
// completions: the prompt), at most max_bytes: what prefix_affinity hashes,
// so requests sharing a system prompt and history land where it is cached.
[[nodiscard]] std::string prompt_prefix(const request_view& view, std::size_t max_bytes = 512);

} // namespace llmgate::openai
