#pragma once
// The request body as a backend must receive it: the model's canonical name,
// Qwen3's thinking switch in the backend's dialect, and llmgate's own fields
// (return_reasoning) removed.
#include "openai/dialect.hpp"
#include "openai/request_view.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace llmgate::openai {

struct rewrite_options {
  // A streamed request gets stream_options.include_usage even if the client
  // did not ask (token limits need the real usage); the relay then drops the
  // usage chunk the client did not ask for.
  bool want_usage = false;
  bool stream_off = false;   // the ladder's L1: asked with stream: false (the gateway makes the SSE)
  bool thinking_off = false; // the ladder's L2: enable_thinking false, whatever the client asked
};

// nullopt: nothing to change, the client's bytes go as they are (no copy of
// a body that may hold a long conversation).
[[nodiscard]] std::optional<std::string> rewrite_request(const request_view& view, std::string_view upstream_model,
                                                         backend_kind kind, const rewrite_options& opts = {});

// True when the last user message already carries a "/think" or "/no_think" soft switch.
[[nodiscard]] bool has_soft_switch(const boost::json::object& body, bool* thinking_on = nullptr);

} // namespace llmgate::openai
