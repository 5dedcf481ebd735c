#include "degrade/synth.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace llmgate::degrade {
namespace {

namespace json = boost::json;

// The data lines of an SSE body, in order.
std::vector<std::string> events(const std::string& sse) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = sse.find("data: ", at)) != std::string::npos) {
    const auto end = sse.find("\n\n", at);
    out.push_back(sse.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

TEST(synth, a_whole_chat_answer_becomes_the_stream_sequence) {
  const std::string answer =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"Qwen3-1.7B",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello","reasoning_content":"hmm",)"
      R"("tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},)"
      R"("finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})";
  const auto sse = completion_to_sse(answer, openai::endpoint::chat_completions, true);
  ASSERT_TRUE(sse);
  const auto e = events(*sse);
  ASSERT_EQ(e.size(), 4u);
  const auto first = json::parse(e[0]).as_object();
  EXPECT_EQ(first.at("object"), "chat.completion.chunk");
  EXPECT_EQ(first.at("id"), "chatcmpl-1");
  EXPECT_EQ(first.at("model"), "Qwen3-1.7B");
  const auto& d = first.at("choices").at(0).at("delta").as_object();
  EXPECT_EQ(d.at("role"), "assistant");
  EXPECT_EQ(d.at("content"), "Hello");
  EXPECT_EQ(d.at("reasoning_content"), "hmm");
  EXPECT_EQ(d.at("tool_calls").at(0).at("index"), 0) << "a streamed tool call carries its index";
  EXPECT_EQ(d.at("tool_calls").at(0).at("function").at("name"), "f");
  EXPECT_TRUE(first.at("choices").at(0).at("finish_reason").is_null());
  const auto second = json::parse(e[1]).as_object();
  EXPECT_EQ(second.at("choices").at(0).at("finish_reason"), "tool_calls");
  EXPECT_TRUE(second.at("choices").at(0).at("delta").as_object().empty());
  const auto usage = json::parse(e[2]).as_object();
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  EXPECT_EQ(usage.at("usage").at("total_tokens"), 5);
  EXPECT_EQ(e[3], "[DONE]");

  const auto no_usage = completion_to_sse(answer, openai::endpoint::chat_completions, false);
  EXPECT_EQ(events(*no_usage).size(), 3u) << "no usage chunk unless asked";
  EXPECT_FALSE(completion_to_sse("not json", openai::endpoint::chat_completions, false));
  EXPECT_FALSE(completion_to_sse(R"({"error":{"message":"x"}})", openai::endpoint::chat_completions, false));
}

TEST(synth, text_completions_stream_their_text) {
  const std::string answer = R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m",)"
                             R"("choices":[{"index":0,"text":"abc","finish_reason":"length"}]})";
  const auto e = events(*completion_to_sse(answer, openai::endpoint::completions, false));
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(json::parse(e[0]).at("choices").at(0).at("text"), "abc");
  EXPECT_EQ(json::parse(e[1]).at("choices").at(0).at("finish_reason"), "length");
}

TEST(synth, the_static_reply_is_a_completion_of_the_model) {
  const auto whole = json::parse(static_completion("busy, try later", "Qwen3-1.7B", openai::endpoint::chat_completions,
                                                   false, false, "abc"))
                         .as_object();
  EXPECT_EQ(whole.at("object"), "chat.completion");
  EXPECT_EQ(whole.at("model"), "Qwen3-1.7B");
  EXPECT_EQ(whole.at("choices").at(0).at("message").at("content"), "busy, try later");
  EXPECT_EQ(whole.at("choices").at(0).at("finish_reason"), "stop");
  const auto streamed =
      events(static_completion("服务繁忙", "m", openai::endpoint::chat_completions, true, true, "abc"));
  ASSERT_EQ(streamed.size(), 4u);
  EXPECT_EQ(json::parse(streamed[0]).at("choices").at(0).at("delta").at("content"), "服务繁忙");
}

} // namespace
} // namespace llmgate::degrade
