#pragma once
// Qwen3's chat template, written by hand (there is no C++ Jinja in Debian):
// the text the model sees for a chat request — system and tool blocks,
// <|im_start|>role ... <|im_end|> framing, reasoning kept only after the last
// user query, tool calls and responses, the generation prompt, and the empty
// think block when thinking is off. Pure; thread-safe.
#include <boost/json/object.hpp>
#include <optional>
#include <string>

namespace llmgate::tokenize {

// body: an OpenAI chat request (messages, tools). enable_thinking: nullopt
// means the template's default (thinking on).
[[nodiscard]] std::string render_qwen3_chat(const boost::json::object& body, std::optional<bool> enable_thinking);

// Python's json.dumps(value, ensure_ascii=False): what the template's tojson writes.
[[nodiscard]] std::string python_json(const boost::json::value& v);

} // namespace llmgate::tokenize
