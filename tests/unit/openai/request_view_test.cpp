#include "openai/request_view.hpp"

#include <boost/json.hpp>
#include <deque>
#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::openai {
namespace {

namespace json = boost::json;

std::string str(const json::value& v) { return std::string(v.as_string().data(), v.as_string().size()); }

// The fields of an OpenAI error body; a null param or code is nullopt.
struct refusal {
  int status = 0;
  std::string message;
  std::string type;
  std::optional<std::string> param;
  std::optional<std::string> code;
};

refusal refuse(std::string_view body, endpoint kind = endpoint::chat_completions) {
  const auto r = parse_request(body, kind);
  if (r) {
    ADD_FAILURE() << "accepted: " << body;
    return {};
  }
  const local_reply reply = r.error();
  refusal out;
  out.status = reply.status;
  const json::value doc = json::parse(reply.body);
  const auto& root = doc.as_object();
  EXPECT_EQ(root.size(), 1u) << reply.body;
  const auto& err = root.at("error").as_object();
  EXPECT_EQ(err.size(), 4u) << reply.body;
  out.message = str(err.at("message"));
  out.type = str(err.at("type"));
  if (!err.at("param").is_null()) out.param = str(err.at("param"));
  if (!err.at("code").is_null()) out.code = str(err.at("code"));
  EXPECT_EQ(out.status, 400) << reply.body;
  EXPECT_EQ(out.type, "invalid_request_error") << reply.body;
  EXPECT_FALSE(out.message.empty());
  return out;
}

// A view refers to its body's text (request_view::text), so the bodies the
// tests accept are kept for the program's life.
std::string_view kept(std::string_view body) {
  static std::deque<std::string> bodies;
  return bodies.emplace_back(body);
}

request_view accept(std::string_view body, endpoint kind = endpoint::chat_completions) {
  auto r = parse_request(kept(body), kind);
  if (!r) {
    ADD_FAILURE() << "refused: " << body << " -> " << r.error().body;
    return {};
  }
  return *r;
}

// A valid chat body with extra top-level fields spliced in.
std::string chat(std::string_view extra = {}) {
  std::string out = R"({"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}])";
  if (!extra.empty()) {
    out += ',';
    out.append(extra);
  }
  out += '}';
  return out;
}

void expect_refused(std::string_view body, std::string_view param, std::string_view code,
                    endpoint kind = endpoint::chat_completions) {
  const auto r = refuse(body, kind);
  EXPECT_EQ(r.param, std::optional<std::string>(param)) << body;
  EXPECT_EQ(r.code, std::optional<std::string>(code)) << body;
}

TEST(request_view, parses_a_valid_chat_request) {
  const auto v = accept(chat());
  EXPECT_EQ(v.kind, endpoint::chat_completions);
  EXPECT_EQ(v.model, "Qwen3-1.7B");
  EXPECT_FALSE(v.stream);
  EXPECT_FALSE(v.include_usage);
  EXPECT_FALSE(v.max_tokens.has_value());
  EXPECT_FALSE(v.enable_thinking.has_value());
  EXPECT_FALSE(v.thinking_at_top_level);
  EXPECT_TRUE(v.return_reasoning);
  EXPECT_TRUE(v.body().contains("messages"));
}

// The parsed body stays in the storage it was parsed into (the gateway's
// per-request arena): no deep copy onto the heap, in the view or its moves.
TEST(request_view, keeps_the_body_in_the_callers_storage) {
  json::monotonic_resource arena;
  const auto body = chat(R"("temperature":0.5,"stream":true)");
  for (const bool now : {true, false}) { // built by parse_request, or on first use
    auto r = parse_request(body, endpoint::chat_completions, &arena, {.body = now});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->parsed_body.has_value(), now);
    EXPECT_EQ(r->body().storage().get(), &arena);
    EXPECT_EQ(r->body().at("messages").as_array().storage().get(), &arena);
    EXPECT_EQ(json::value(r->body()), json::parse(body));
    const request_view moved = std::move(*r);
    EXPECT_EQ(moved.body().storage().get(), &arena);
    EXPECT_TRUE(moved.stream);
  }
}

TEST(request_view, parses_a_valid_completions_request) {
  auto v = accept(R"({"model":"m","prompt":"Once upon"})", endpoint::completions);
  EXPECT_EQ(v.kind, endpoint::completions);
  EXPECT_EQ(v.model, "m");
  v = accept(R"({"model":"m","prompt":[1,2,3]})", endpoint::completions);
  EXPECT_EQ(v.model, "m");
  v = accept(R"({"model":"m","prompt":["a","b"]})", endpoint::completions);
  EXPECT_EQ(v.model, "m");
}

TEST(request_view, refuses_invalid_json) {
  auto r = refuse(R"({"model":"m",)");
  EXPECT_EQ(r.code, "invalid_json");
  EXPECT_FALSE(r.param.has_value());
  r = refuse("");
  EXPECT_EQ(r.code, "invalid_json");
}

TEST(request_view, refuses_a_body_that_is_not_an_object) {
  for (const std::string_view body : {"[1,2]", "\"text\"", "42", "null"}) {
    const auto r = refuse(body);
    EXPECT_EQ(r.code, "invalid_json") << body;
    EXPECT_FALSE(r.param.has_value()) << body;
  }
}

TEST(request_view, refuses_invalid_utf8) {
  const std::string body = std::string(R"({"model":"m)") + "\xff" + R"(","messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(refuse(body).code, "invalid_json");
  const std::string in_content =
      std::string(R"({"model":"m","messages":[{"role":"user","content":"a)") + "\xc3" + R"("}]})";
  EXPECT_EQ(refuse(in_content).code, "invalid_json");
}

TEST(request_view, model_must_be_a_non_empty_string) {
  expect_refused(R"({"messages":[{"role":"user","content":"hi"}]})", "model", "missing_required_parameter");
  expect_refused(R"({"model":"","messages":[{"role":"user","content":"hi"}]})", "model", "invalid_value");
  const auto r = refuse(R"({"model":42,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(r.param, "model");
  EXPECT_EQ(r.code, "invalid_type");
  EXPECT_NE(r.message.find("integer"), std::string::npos) << r.message;
  expect_refused(R"({"model":null,"messages":[{"role":"user","content":"hi"}]})", "model", "invalid_type");
}

TEST(request_view, messages_must_be_a_non_empty_array) {
  expect_refused(R"({"model":"m"})", "messages", "missing_required_parameter");
  expect_refused(R"({"model":"m","messages":[]})", "messages", "empty_array");
  expect_refused(R"({"model":"m","messages":"hi"})", "messages", "invalid_type");
  expect_refused(R"({"model":"m","messages":{"role":"user"}})", "messages", "invalid_type");
}

TEST(request_view, each_message_is_checked) {
  expect_refused(R"({"model":"m","messages":["hi"]})", "messages[0]", "invalid_type");
  expect_refused(R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role", "missing_required_parameter");
  expect_refused(R"({"model":"m","messages":[{"role":"user","content":"a"},{"content":"b"}]})", "messages[1].role",
                 "missing_required_parameter");
  expect_refused(R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role", "invalid_value");
  expect_refused(R"({"model":"m","messages":[{"role":7,"content":"x"}]})", "messages[0].role", "invalid_type");
  expect_refused(R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content", "invalid_type");
  expect_refused(R"({"model":"m","messages":[{"role":"user","content":{"text":"x"}}]})", "messages[0].content",
                 "invalid_type");
}

TEST(request_view, accepts_every_role_and_content_shape) {
  (void)accept(R"({"model":"m","messages":[
      {"role":"system","content":"s"},{"role":"developer","content":"d"},
      {"role":"user","content":[{"type":"text","text":"u"}]},
      {"role":"assistant","content":null,"tool_calls":[]},
      {"role":"tool","content":"t","tool_call_id":"1"},{"role":"function","content":"f","name":"x"}]})");
}

TEST(request_view, completions_need_a_prompt) {
  expect_refused(R"({"model":"m"})", "prompt", "missing_required_parameter", endpoint::completions);
  expect_refused(R"({"model":"m","prompt":[]})", "prompt", "empty_array", endpoint::completions);
  expect_refused(R"({"model":"m","prompt":{"a":1}})", "prompt", "invalid_type", endpoint::completions);
  expect_refused(R"({"model":"m","prompt":[true]})", "prompt[]", "invalid_type", endpoint::completions);
  // Completions do not look at messages; chat does not look at prompt.
  (void)accept(R"({"model":"m","prompt":"p","messages":"ignored"})", endpoint::completions);
  (void)accept(R"({"model":"m","prompt":["p"],"messages":[]})", endpoint::completions);
  (void)accept(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"prompt":true})");
  (void)accept(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"prompt":[5.5]})");
  expect_refused(R"({"model":"m","prompt":"p"})", "messages", "missing_required_parameter");
}

TEST(request_view, stream_must_be_a_boolean) {
  expect_refused(chat(R"("stream":"yes")"), "stream", "invalid_type");
  expect_refused(chat(R"("stream":1)"), "stream", "invalid_type");
  EXPECT_TRUE(accept(chat(R"("stream":true)")).stream);
  EXPECT_FALSE(accept(chat(R"("stream":null)")).stream);
}

TEST(request_view, include_usage_from_stream_options) {
  EXPECT_TRUE(accept(chat(R"("stream":true,"stream_options":{"include_usage":true})")).include_usage);
  EXPECT_FALSE(accept(chat(R"("stream":true,"stream_options":{"include_usage":false})")).include_usage);
  EXPECT_FALSE(accept(chat(R"("stream":true,"stream_options":{})")).include_usage);
  EXPECT_FALSE(accept(chat(R"("stream_options":null)")).include_usage);
  expect_refused(chat(R"("stream_options":"x")"), "stream_options", "invalid_type");
  expect_refused(chat(R"("stream_options":{"include_usage":"yes"})"), "stream_options.include_usage", "invalid_type");
}

TEST(request_view, max_tokens_must_be_a_positive_integer) {
  expect_refused(chat(R"("max_tokens":0)"), "max_tokens", "invalid_value");
  expect_refused(chat(R"("max_tokens":-5)"), "max_tokens", "invalid_value");
  expect_refused(chat(R"("max_tokens":"100")"), "max_tokens", "invalid_type");
  expect_refused(chat(R"("max_tokens":1.5)"), "max_tokens", "invalid_type");
  expect_refused(chat(R"("max_tokens":18446744073709551615)"), "max_tokens", "invalid_value");
  // Doubles beyond int64: refused without converting them (undefined; fuzz_request found 2e62; make test's
  // sanitizer build checks float-cast-overflow).
  expect_refused(chat(R"("max_tokens":2e62)"), "max_tokens", "invalid_type");
  expect_refused(chat(R"("max_tokens":-1e300)"), "max_tokens", "invalid_type");
  EXPECT_EQ(accept(chat(R"("max_tokens":100)")).max_tokens, 100);
  EXPECT_EQ(accept(chat(R"("max_tokens":100.0)")).max_tokens, 100); // JS clients send integral doubles
  EXPECT_EQ(accept(chat(R"("max_tokens":1e12)")).max_tokens, 1'000'000'000'000);
  EXPECT_FALSE(accept(chat(R"("max_tokens":null)")).max_tokens.has_value());
}

TEST(request_view, numbers_beyond_a_double_are_refused_wherever_they_are) {
  // Boost.JSON reads them as infinity and would write `Infinity` upstream, which is not JSON.
  // Also under a key given again later: the body as sent, with the first
  // value in it, is what goes upstream when nothing in it is rewritten.
  for (const auto* extra : {R"("x_big":1e400)", R"("seed":-2e308)", R"("x":{"deep":[1,[2.5e999]]})",
                            R"("temperature":1e999,"temperature":1)"}) {
    const auto r = refuse(chat(extra), endpoint::chat_completions);
    EXPECT_EQ(r.code, std::optional<std::string>("invalid_value")) << extra;
    EXPECT_NE(r.message.find("beyond the range of a double"), std::string::npos) << r.message;
  }
  EXPECT_EQ(accept(chat(R"("x_small":1e-400,"x_max":1.7e308)")).model, "Qwen3-1.7B"); // underflow is 0: fine
}

TEST(request_view, max_completion_tokens_is_read_too) {
  EXPECT_EQ(accept(chat(R"("max_completion_tokens":7)")).max_tokens, 7);
  expect_refused(chat(R"("max_completion_tokens":0)"), "max_completion_tokens", "invalid_value");
  expect_refused(chat(R"("max_completion_tokens":true)"), "max_completion_tokens", "invalid_type");
  // The newer name wins when both are sent.
  EXPECT_EQ(accept(chat(R"("max_tokens":5,"max_completion_tokens":9)")).max_tokens, 9);
}

TEST(request_view, n_is_bounded) {
  expect_refused(chat(R"("n":0)"), "n", "invalid_value");
  expect_refused(chat(R"("n":1000)"), "n", "invalid_value");
  expect_refused(chat(R"("n":"2")"), "n", "invalid_type");
  (void)accept(chat(R"("n":1)"));
  (void)accept(chat(R"("n":128)"));
  expect_refused(chat(R"("n":129)"), "n", "invalid_value");
}

TEST(request_view, sampling_parameters_are_range_checked) {
  expect_refused(chat(R"("temperature":3)"), "temperature", "invalid_value");
  expect_refused(chat(R"("temperature":-0.1)"), "temperature", "invalid_value");
  expect_refused(chat(R"("temperature":"hot")"), "temperature", "invalid_type");
  (void)accept(chat(R"("temperature":2)"));
  (void)accept(chat(R"("temperature":0)"));
  expect_refused(chat(R"("top_p":1.5)"), "top_p", "invalid_value");
  (void)accept(chat(R"("top_p":0.9)"));
  expect_refused(chat(R"("tools":"x")"), "tools", "invalid_type");
}

TEST(request_view, enable_thinking_at_top_level) {
  auto v = accept(chat(R"("enable_thinking":false)"));
  EXPECT_EQ(v.enable_thinking, false);
  EXPECT_TRUE(v.thinking_at_top_level);
  v = accept(chat(R"("enable_thinking":true)"));
  EXPECT_EQ(v.enable_thinking, true);
  expect_refused(chat(R"("enable_thinking":"no")"), "enable_thinking", "invalid_type");
}

TEST(request_view, enable_thinking_in_chat_template_kwargs) {
  auto v = accept(chat(R"("chat_template_kwargs":{"enable_thinking":false})"));
  EXPECT_EQ(v.enable_thinking, false);
  EXPECT_FALSE(v.thinking_at_top_level);
  // The top level wins over chat_template_kwargs.
  v = accept(chat(R"("enable_thinking":true,"chat_template_kwargs":{"enable_thinking":false})"));
  EXPECT_EQ(v.enable_thinking, true);
  expect_refused(chat(R"("chat_template_kwargs":{"enable_thinking":0})"), "chat_template_kwargs.enable_thinking",
                 "invalid_type");
  expect_refused(chat(R"("chat_template_kwargs":5)"), "chat_template_kwargs", "invalid_type");
}

TEST(request_view, return_reasoning_defaults_to_true) {
  EXPECT_TRUE(accept(chat()).return_reasoning);
  auto v = accept(chat(R"("return_reasoning":false)"));
  EXPECT_FALSE(v.return_reasoning);
  EXPECT_TRUE(v.thinking_at_top_level);
  EXPECT_FALSE(accept(chat(R"("chat_template_kwargs":{"return_reasoning":false})")).return_reasoning);
  EXPECT_TRUE(
      accept(chat(R"("return_reasoning":true,"chat_template_kwargs":{"return_reasoning":false})")).return_reasoning);
  expect_refused(chat(R"("return_reasoning":"no")"), "return_reasoning", "invalid_type");
}

TEST(request_view, body_is_kept_for_later_steps) {
  const auto v = accept(chat(R"("temperature":0.5,"user":"u1")"));
  ASSERT_TRUE(v.body().contains("user"));
  EXPECT_EQ(str(v.body().at("user")), "u1");
  EXPECT_EQ(str(v.body().at("model")), "Qwen3-1.7B");
}

// A field given twice counts once, as its last value, as boost::json::object
// keeps it: the checks read what the body says after it is parsed.
TEST(request_view, a_field_given_twice_is_its_last_value) {
  EXPECT_EQ(accept(R"({"model":"a","messages":[{"role":"user","content":"hi"}],"model":"b"})").model, "b");
  (void)accept(R"({"model":"m","messages":"hi","messages":[{"role":"user","content":"hi"}]})");
  expect_refused(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"messages":[{"role":1}]})",
                 "messages[0].role", "invalid_type");
  (void)accept(R"({"model":"m","messages":[{"role":1,"content":"hi","role":"user"}]})");
  expect_refused(R"({"model":"m","messages":[{"role":"user","content":"hi","role":"wizard"}]})", "messages[0].role",
                 "invalid_value");
  EXPECT_TRUE(
      accept(chat(R"("stream_options":5,"stream":true,"stream_options":{"include_usage":true})")).include_usage);
  EXPECT_FALSE(accept(chat(R"("chat_template_kwargs":{"enable_thinking":true},"chat_template_kwargs":{})"))
                   .enable_thinking.has_value());
}

// What the parse reads as it goes agrees with the body built from the same
// bytes, and the body is the same built at once or on first use.
TEST(request_view, what_is_read_agrees_with_the_body) {
  for (const std::string_view body : {
           R"({"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}],"max_tokens":16,
               "chat_template_kwargs":{"enable_thinking":false}})",
           R"({"model":"x\u0041","messages":[{"content":[{"type":"text","text":"a"}],"role":"system"}],
               "temperature":0,"chat_template_kwargs":{"return_reasoning":false,"enable_thinking":null}})",
           R"({"chat_template_kwargs":null,"model":"m","messages":[{"role":"tool","content":null}],"top_p":1})",
           R"({"model":"m","messages":[{"role":"user","content":"a"}],"temperature":1.5e0,"n":2})",
       }) {
    const auto v = accept(body);
    const auto& b = v.body();
    EXPECT_EQ(json::value(b), json::parse(body)) << body;
    EXPECT_EQ(v.model, str(b.at("model"))) << body;
    const auto* kw = b.if_contains("chat_template_kwargs");
    EXPECT_EQ(v.kwargs_present, kw != nullptr) << body;
    const auto* kwo = kw ? kw->if_object() : nullptr;
    EXPECT_EQ(v.kwargs_return_reasoning, kwo && kwo->contains("return_reasoning")) << body;
    const auto* on = kwo ? kwo->if_contains("enable_thinking") : nullptr;
    EXPECT_EQ(v.kwargs_enable_thinking, on && on->is_bool() ? std::optional<bool>(on->get_bool()) : std::nullopt)
        << body;
    const auto* t = b.if_contains("temperature");
    EXPECT_EQ(v.temperature, t ? std::optional<double>(t->to_number<double>()) : std::nullopt) << body;
    const auto eager = parse_request(kept(body), endpoint::chat_completions, {}, {.body = true});
    ASSERT_TRUE(eager && eager->parsed_body) << body;
    EXPECT_EQ(*eager->parsed_body, b) << body;
  }
}

std::string canonical(std::string_view body) {
  auto v = parse_request(body, endpoint::chat_completions, {}, {.canonical = true});
  if (!v) {
    ADD_FAILURE() << "refused: " << body;
    return {};
  }
  return v->canonical;
}

// The same value with every object's members in the opposite order.
json::value reversed(const json::value& v) {
  if (const auto* o = v.if_object()) {
    json::object out;
    for (auto it = o->end(); it != o->begin();) {
      --it;
      out[it->key()] = reversed(it->value());
    }
    return out;
  }
  if (const auto* a = v.if_array()) {
    json::array out;
    for (const auto& e : *a) out.push_back(reversed(e));
    return out;
  }
  return v;
}

TEST(request_view, the_canonical_form_is_the_same_for_the_same_request_written_differently) {
  const std::string body =
      R"({"model":"m","user":"u1","messages":[{"role":"user","content":"hi","name":"n"},
          {"role":"assistant","content":[{"type":"text","text":"yo"}]}],"max_tokens":16,"temperature":0.5,
          "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","b":{},"a":[]}}}],
          "chat_template_kwargs":{"enable_thinking":false},"stream":false,"seed":null})";
  const auto c = canonical(body);
  EXPECT_EQ(c, canonical(json::serialize(reversed(json::parse(body))))) << "members in any order, at every level";
  EXPECT_EQ(c, canonical(json::serialize(json::parse(body)))) << "without the whitespace";
  EXPECT_EQ(canonical(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})"),
            canonical(R"({"model":"other","messages":[{"content":"h\u0069","role":"user"}],"user":"u2"})"))
      << "the model's name, the user and escapes do not matter";
  EXPECT_EQ(canonical(chat(R"("temperature":1,"temperature":0.5)")), canonical(chat(R"("temperature":0.5)")))
      << "a key given twice is its last value";
  EXPECT_EQ(canonical(R"({"model":"m","messages":[{"role":"user","content":"a"}],"x":1,
                          "messages":[{"role":"user","content":"hi"}],"c":2})"),
            canonical(R"({"model":"m","x":1,"messages":[{"role":"user","content":"hi"}],"c":2})"))
      << "and so when members before it move (the fuzzer's find)";
  EXPECT_EQ(canonical(chat(R"("temperature":0.5)")), canonical(chat(R"("temperature":5e-1)")));

  for (const auto& other : {
           chat(R"("temperature":0.25)"),
           chat(R"("top_p":0.5)"),
           std::string(R"({"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0.5})"),
           std::string(R"({"model":"m","messages":[{"role":"user","content":"hi","user":"u"}],"temperature":0.5})"),
       })
    EXPECT_NE(canonical(chat(R"("temperature":0.5)")), canonical(other)) << other;
  EXPECT_NE(canonical(chat(R"("max_tokens":16)")), canonical(chat(R"("max_tokens":16.0)")))
      << "an integer is not a double";
  EXPECT_NE(canonical(chat(R"("seed":1)")), canonical(chat(R"("seed":"1")"))) << "a number is not a string";
  EXPECT_NE(canonical(chat(R"("stop":["a","b"])")), canonical(chat(R"("stop":["b","a"])"))) << "arrays keep order";
  EXPECT_NE(canonical(chat(R"("a":"b","c":"d")")), canonical(chat(R"("a":"b\",\"c\":\"d")")))
      << "a string's length keeps it apart from what it might look like";
}

TEST(prompt_prefix, chat_is_each_role_and_text_in_order) {
  const auto v = accept(R"({"model":"m","messages":[
      {"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]})");
  EXPECT_EQ(prompt_prefix(v), "system\nBe brief.\nuser\nhi\n");
}

TEST(prompt_prefix, content_parts_give_their_text) {
  const auto v = accept(R"({"model":"m","messages":[
      {"role":"user","content":[{"type":"text","text":"look at "},
                                {"type":"image_url","image_url":{"url":"http://img/x.png"}},
                                {"type":"text","text":"this"}]},
      {"role":"assistant","content":null,"tool_calls":[]}]})");
  EXPECT_EQ(prompt_prefix(v), "user\nlook at this\nassistant\n\n");
}

TEST(prompt_prefix, is_capped_at_max_bytes) {
  const auto v = accept(R"({"model":"m","messages":[
      {"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"hello there"}]})");
  const auto full = prompt_prefix(v);
  ASSERT_GT(full.size(), 20u);
  EXPECT_EQ(prompt_prefix(v, 20), full.substr(0, 20));
  EXPECT_EQ(prompt_prefix(v, 0), "");

  const std::string long_text(2000, 'x');
  const auto big = accept(R"({"model":"m","messages":[{"role":"user","content":")" + long_text + R"("}]})");
  const auto capped = prompt_prefix(big);
  EXPECT_EQ(capped.size(), 512u); // the default
  EXPECT_EQ(capped, ("user\n" + long_text).substr(0, 512));
  EXPECT_EQ(prompt_prefix(big, 4096).size(), 5 + long_text.size() + 1);
}

TEST(prompt_prefix, completions_use_the_prompt) {
  auto v = accept(R"({"model":"m","prompt":"Once upon a time"})", endpoint::completions);
  EXPECT_EQ(prompt_prefix(v), "Once upon a time");
  EXPECT_EQ(prompt_prefix(v, 4), "Once");
  // A batch of prompts: the first one speaks for the request.
  v = accept(R"({"model":"m","prompt":["first prompt","second prompt"]})", endpoint::completions);
  EXPECT_EQ(prompt_prefix(v), "first prompt");
  // Token ids (one list, or a batch of lists) hash by their ids, not all alike.
  const auto ids = accept(R"({"model":"m","prompt":[151644,872,198]})", endpoint::completions);
  EXPECT_EQ(prompt_prefix(ids), "151644 872 198 ");
  const auto batch = accept(R"({"model":"m","prompt":[[1,2],[3]]})", endpoint::completions);
  EXPECT_EQ(prompt_prefix(batch), "1 2 ");
}

TEST(prompt_prefix, a_shared_system_prompt_and_first_message_give_the_same_prefix) {
  const std::string system_prompt(300, 's');
  auto body = [&](std::string_view later, std::string_view extra) {
    return R"({"model":"m",)" + std::string(extra) + R"("messages":[{"role":"system","content":")" + system_prompt +
           R"("},{"role":"user","content":"What is the capital of France?"},{"role":"assistant","content":"Paris."},)" +
           R"({"role":"user","content":")" + std::string(later) + R"("}]})";
  };
  const auto a = accept(body("And of Spain?", R"("temperature":0.2,)"));
  const auto b = accept(body("And of Italy?", R"("max_tokens":50,"stream":true,)"));
  // Capped inside the shared part: the same key, so both land where the prefix is cached.
  const std::size_t shared = std::string("system\n").size() + system_prompt.size() + 1 + std::string("user\n").size();
  EXPECT_EQ(prompt_prefix(a, shared), prompt_prefix(b, shared));
  EXPECT_EQ(prompt_prefix(a, shared).size(), shared);
  // Long enough to reach the later message, they differ.
  EXPECT_NE(prompt_prefix(a, 4096), prompt_prefix(b, 4096));

  const auto other_system = accept(R"({"model":"m","messages":[{"role":"system","content":"Be terse."},)"
                                   R"({"role":"user","content":"What is the capital of France?"}]})");
  EXPECT_NE(prompt_prefix(other_system, shared), prompt_prefix(a, shared));
}

} // namespace
} // namespace llmgate::openai
