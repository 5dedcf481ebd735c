#include "openai/body_rewrite.hpp"

#include <boost/json.hpp>
#include <deque>
#include <gtest/gtest.h>
#include <string>
#include <string_view>

namespace llmgate::openai {
namespace {

namespace json = boost::json;

std::string str(const json::value& v) { return std::string(v.as_string().data(), v.as_string().size()); }

// A view refers to its body's text (request_view::text), so the bodies are
// kept for the program's life.
request_view view_of(std::string_view body, endpoint kind = endpoint::chat_completions) {
  static std::deque<std::string> bodies;
  auto r = parse_request(bodies.emplace_back(body), kind);
  if (!r) {
    ADD_FAILURE() << "refused: " << body << " -> " << r.error().body;
    return {};
  }
  return *r;
}

// Rewrites for `kind` with the client's model name kept, and parses the result.
json::object rewritten(std::string_view body, backend_kind kind, std::string_view upstream_model = "m",
                       endpoint ep = endpoint::chat_completions) {
  const auto out = rewrite_request(view_of(body, ep), upstream_model, kind);
  return json::parse(out.value_or(std::string(body))).as_object();
}

const json::value& last_user_content(const json::object& body) {
  const auto& messages = body.at("messages").as_array();
  for (auto it = messages.rbegin(); it != messages.rend(); ++it)
    if (it->as_object().at("role").as_string() == "user") return it->as_object().at("content");
  ADD_FAILURE() << "no user message";
  return body.at("messages");
}

constexpr backend_kind k_kwargs_kinds[] = {backend_kind::vllm, backend_kind::sglang, backend_kind::llamacpp};
constexpr backend_kind k_soft_switch_kinds[] = {backend_kind::ollama, backend_kind::openai};
constexpr backend_kind k_all_kinds[] = {backend_kind::vllm, backend_kind::sglang, backend_kind::llamacpp,
                                        backend_kind::ollama, backend_kind::openai};

TEST(body_rewrite, unchanged_bytes_when_nothing_to_change) {
  const std::string body =
      R"({ "model" : "m",  "messages":[{"role":"user","content":"hi"}] , "temperature": 0.70, "stream":true })";
  for (const auto kind : k_all_kinds)
    EXPECT_EQ(rewrite_request(view_of(body), "m", kind), std::nullopt) << to_string(kind);
}

TEST(body_rewrite, unchanged_when_kwargs_already_say_it) {
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false}})";
  for (const auto kind : k_kwargs_kinds) {
    const auto view = view_of(body);
    EXPECT_EQ(rewrite_request(view, "m", kind), std::nullopt);
    // Decided from what the parse noted: the body was not built to decide it.
    EXPECT_FALSE(view.parsed_body.has_value()) << to_string(kind);
  }
}

TEST(body_rewrite, alias_becomes_the_canonical_name) {
  const auto out = rewritten(R"({"model":"qwen3","messages":[{"role":"user","content":"hi"}],"temperature":0.5})",
                             backend_kind::vllm, "Qwen3-1.7B");
  EXPECT_EQ(str(out.at("model")), "Qwen3-1.7B");
  EXPECT_EQ(out.at("temperature").as_double(), 0.5);
  EXPECT_EQ(str(last_user_content(out)), "hi");
  EXPECT_FALSE(out.contains("chat_template_kwargs"));
}

TEST(body_rewrite, top_level_switch_moves_into_chat_template_kwargs) {
  for (const auto kind : k_kwargs_kinds) {
    const auto out =
        rewritten(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"enable_thinking":false})", kind);
    EXPECT_FALSE(out.contains("enable_thinking")) << to_string(kind);
    ASSERT_TRUE(out.contains("chat_template_kwargs")) << to_string(kind);
    EXPECT_EQ(out.at("chat_template_kwargs").as_object().at("enable_thinking"), json::value(false));
    EXPECT_EQ(str(last_user_content(out)), "hi") << to_string(kind); // no soft switch for these kinds
  }
}

TEST(body_rewrite, top_level_switch_on_is_forwarded_too) {
  const auto out = rewritten(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"enable_thinking":true})",
                             backend_kind::vllm);
  EXPECT_FALSE(out.contains("enable_thinking"));
  EXPECT_EQ(out.at("chat_template_kwargs").as_object().at("enable_thinking"), json::value(true));
}

TEST(body_rewrite, switch_merges_with_other_template_kwargs) {
  const auto out = rewritten(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"enable_thinking":false,"chat_template_kwargs":{"foo":1}})",
      backend_kind::sglang);
  const auto& kw = out.at("chat_template_kwargs").as_object();
  EXPECT_EQ(kw.at("foo"), json::value(1));
  EXPECT_EQ(kw.at("enable_thinking"), json::value(false));
}

TEST(body_rewrite, return_reasoning_is_removed) {
  for (const auto kind : k_all_kinds) {
    auto out = rewritten(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"return_reasoning":false})", kind);
    EXPECT_FALSE(out.contains("return_reasoning")) << to_string(kind);
    EXPECT_FALSE(out.contains("chat_template_kwargs")) << to_string(kind);

    out = rewritten(
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"return_reasoning":false}})",
        kind);
    EXPECT_FALSE(out.contains("return_reasoning")) << to_string(kind);
    EXPECT_FALSE(out.contains("chat_template_kwargs")) << to_string(kind); // it was the only key
  }
}

TEST(body_rewrite, soft_switch_appended_to_last_user_message) {
  for (const auto kind : k_soft_switch_kinds) {
    const auto out = rewritten(R"({"model":"m","messages":[
        {"role":"system","content":"be brief"},{"role":"user","content":"first"},
        {"role":"assistant","content":"ok"},{"role":"user","content":"second"}],"enable_thinking":false})",
                               kind);
    EXPECT_FALSE(out.contains("enable_thinking")) << to_string(kind);
    EXPECT_FALSE(out.contains("chat_template_kwargs")) << to_string(kind);
    const auto& messages = out.at("messages").as_array();
    ASSERT_EQ(messages.size(), 4u);
    EXPECT_EQ(str(messages[0].as_object().at("content")), "be brief");
    EXPECT_EQ(str(messages[1].as_object().at("content")), "first");
    EXPECT_EQ(str(messages[2].as_object().at("content")), "ok");
    EXPECT_EQ(str(messages[3].as_object().at("content")), "second /no_think");
  }
}

TEST(body_rewrite, soft_switch_appended_to_array_content) {
  const auto out = rewritten(
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"enable_thinking":false})",
      backend_kind::ollama);
  const auto& parts = last_user_content(out).as_array();
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(str(parts[0].as_object().at("text")), "hi");
  EXPECT_EQ(str(parts[1].as_object().at("type")), "text");
  EXPECT_EQ(str(parts[1].as_object().at("text")), "/no_think");
}

TEST(body_rewrite, template_kwargs_become_a_soft_switch_for_ollama_and_openai) {
  for (const auto kind : k_soft_switch_kinds) {
    const auto out = rewritten(
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false}})",
        kind);
    EXPECT_FALSE(out.contains("chat_template_kwargs")) << to_string(kind);
    EXPECT_EQ(str(last_user_content(out)), "hi /no_think") << to_string(kind);
  }
}

TEST(body_rewrite, existing_soft_switch_is_not_doubled) {
  const auto out =
      rewritten(R"({"model":"m","messages":[{"role":"user","content":"hi /no_think"}],"enable_thinking":false})",
                backend_kind::ollama);
  EXPECT_EQ(str(last_user_content(out)), "hi /no_think");
  EXPECT_FALSE(out.contains("enable_thinking"));
}

TEST(body_rewrite, thinking_on_needs_no_soft_switch) {
  const auto out = rewritten(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"enable_thinking":true})",
                             backend_kind::openai);
  EXPECT_EQ(str(last_user_content(out)), "hi");
  EXPECT_FALSE(out.contains("enable_thinking"));
  EXPECT_FALSE(out.contains("chat_template_kwargs"));
}

TEST(body_rewrite, completions_get_no_chat_template_switch) {
  for (const auto kind : k_all_kinds) {
    const auto out =
        rewritten(R"({"model":"m","prompt":"hello","enable_thinking":false})", kind, "m", endpoint::completions);
    EXPECT_EQ(str(out.at("prompt")), "hello") << to_string(kind);
    EXPECT_FALSE(out.contains("enable_thinking")) << to_string(kind);
    EXPECT_FALSE(out.contains("chat_template_kwargs")) << to_string(kind);
    EXPECT_FALSE(out.contains("messages")) << to_string(kind);
  }
}

json::object body_with_last_user(std::string_view content_json) {
  std::string text = R"({"model":"m","messages":[{"role":"user","content":"earlier /no_think"},)"
                     R"({"role":"assistant","content":"ok"},{"role":"user","content":)";
  text.append(content_json);
  text += "}]}";
  return json::parse(text).as_object();
}

TEST(has_soft_switch, reads_the_last_user_message) {
  bool on = false;
  EXPECT_FALSE(has_soft_switch(body_with_last_user(R"("plain")"), &on)); // an earlier turn's switch does not count

  EXPECT_TRUE(has_soft_switch(body_with_last_user(R"("hello /no_think")"), &on));
  EXPECT_FALSE(on);
  EXPECT_TRUE(has_soft_switch(body_with_last_user(R"("hello /think")"), &on));
  EXPECT_TRUE(on);
  // Qwen3 obeys the last switch in the turn.
  EXPECT_TRUE(has_soft_switch(body_with_last_user(R"("/no_think then /think")"), &on));
  EXPECT_TRUE(on);
  EXPECT_TRUE(has_soft_switch(body_with_last_user(R"("/think then /no_think")"), &on));
  EXPECT_FALSE(on);
  EXPECT_TRUE(has_soft_switch(body_with_last_user(R"([{"type":"text","text":"hi /no_think"}])"), &on));
  EXPECT_FALSE(on);
  EXPECT_TRUE(has_soft_switch(body_with_last_user(R"("hi /think")"))); // thinking_on may be null
}

TEST(has_soft_switch, false_without_a_user_message) {
  EXPECT_FALSE(has_soft_switch(
      json::parse(R"({"model":"m","messages":[{"role":"system","content":"/no_think"}]})").as_object()));
  EXPECT_FALSE(has_soft_switch(json::parse(R"({"model":"m","prompt":"/no_think"})").as_object()));
}

TEST(body_rewrite, the_ladder_turns_streaming_and_thinking_off) {
  const std::string body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true},)"
                           R"("messages":[{"role":"user","content":"hi /think"}]})";
  for (const auto kind : k_all_kinds) {
    const auto out = json::parse(rewrite_request(view_of(body), "m", kind, {false, true, true}).value()).as_object();
    EXPECT_EQ(out.at("stream"), json::value(false)) << to_string(kind);
    EXPECT_FALSE(out.contains("stream_options")) << "a non-streamed request has no stream options";
    if (takes_template_kwargs(kind)) {
      EXPECT_EQ(out.at("chat_template_kwargs").at("enable_thinking"), json::value(false)); // the hard switch
    } else {
      // The client's "/think" is overruled by a "/no_think" after it (Qwen3 obeys the last).
      EXPECT_TRUE(str(last_user_content(out)).ends_with("/think /no_think")) << str(last_user_content(out));
    }
  }
  // Streaming off alone leaves thinking as the client asked; off for a non-streamed request changes nothing.
  const auto plain = json::parse(rewrite_request(view_of(body), "m", backend_kind::vllm, {false, true, false}).value());
  EXPECT_FALSE(plain.as_object().contains("chat_template_kwargs"));
  const std::string quiet = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(rewrite_request(view_of(quiet), "m", backend_kind::vllm, {false, true, false}), std::nullopt);
}

} // namespace
} // namespace llmgate::openai
