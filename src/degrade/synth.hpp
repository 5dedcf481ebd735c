#pragma once
// Answers the ladder makes itself. L1 asks the backend without streaming; a
// client that asked for a stream still gets valid SSE, in this order: one
// chunk with the role, content, reasoning and tool calls; one with the
// finish_reason; the usage chunk if stream_options.include_usage was set;
// `data: [DONE]`. L4 answers with the configured static reply, shaped as a
// completion of the model (or as that stream). Pure.
#include "openai/request_view.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace llmgate::degrade {

// A whole chat.completion / text_completion as the SSE a streaming client
// expects; nullopt when `completion` is not one.
[[nodiscard]] std::optional<std::string> completion_to_sse(std::string_view completion, openai::endpoint kind,
                                                           bool include_usage);

// The static reply as a completion of `model` (as SSE when `stream`).
[[nodiscard]] std::string static_completion(std::string_view text, std::string_view model, openai::endpoint kind,
                                            bool stream, bool include_usage, std::string_view id);

} // namespace llmgate::degrade
