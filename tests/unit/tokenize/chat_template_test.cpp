#include "tokenize/chat_template.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace llmgate::tokenize {
namespace {

boost::json::object body(std::string_view text) { return boost::json::parse(text).as_object(); }

TEST(qwen3_chat, frames_system_and_user_and_asks_the_assistant) {
  const auto b =
      body(R"({"messages":[{"role":"system","content":"You are Qwen."},{"role":"user","content":"你是谁?"}]})");
  EXPECT_EQ(
      render_qwen3_chat(b, std::nullopt),
      "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\n你是谁?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_qwen3_chat(b, false),
            "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\n你是谁?<|im_end|>\n<|im_start|>assistant\n"
            "<think>\n\n</think>\n\n");
}

TEST(qwen3_chat, drops_reasoning_before_the_last_query) {
  const auto b = body(R"({"messages":[{"role":"user","content":"hi"},
    {"role":"assistant","content":"<think>\nx\n</think>\n\nhello"},{"role":"user","content":"again"}]})");
  EXPECT_EQ(
      render_qwen3_chat(b, std::nullopt),
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nagain<|im_end|>\n"
      "<|im_start|>assistant\n");
}

TEST(qwen3_chat, writes_tools_calls_and_responses) {
  const auto b =
      body(R"({"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
    "messages":[{"role":"user","content":"weather?"},
      {"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"北京\"}"}}]},
      {"role":"tool","content":"sunny"}]})");
  EXPECT_EQ(
      render_qwen3_chat(b, std::nullopt),
      "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "
      "provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
      "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}\n"
      "</tools>\n\nFor each function call, return a json object with function name and arguments within "
      "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
      "<args-json-object>}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\nweather?<|im_end|>\n"
      "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"北京\"}}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST(python_json, matches_json_dumps_with_ensure_ascii_false) {
  EXPECT_EQ(python_json(boost::json::parse(R"({"a":[1,2.5,"x\"y\n"],"b":null,"c":"中"})")),
            "{\"a\": [1, 2.5, \"x\\\"y\\n\"], \"b\": null, \"c\": \"中\"}");
}

TEST(python_json, escapes_every_control_character_as_json_dumps_does) {
  // What python3 -c 'import json; print(json.dumps({"s": "q\"b\\s/\n\r\t\b\f\x00\x01\x1f\x7f 通义"},
  // ensure_ascii=False))' prints: short forms where JSON has them, \u00xx in
  // lower case for the other control characters, DEL and UTF-8 as they are.
  boost::json::object o;
  o["s"] = std::string("q\"b\\s/\n\r\t\b\f") + '\0' + "\x01\x1f\x7f 通义";
  EXPECT_EQ(python_json(o), std::string(R"({"s": "q\"b\\s/\n\r\t\b\f\u0000\u0001\u001f)") + "\x7f 通义\"}");
}

} // namespace
} // namespace llmgate::tokenize
