#include "openai/response_rewrite.hpp"

#include <boost/json.hpp>
#include <cstdint>
#include <gtest/gtest.h>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::openai {
namespace {

namespace json = boost::json;

std::string str(const json::value& v) { return std::string(v.as_string().data(), v.as_string().size()); }

std::string chunk(json::object delta, json::value finish_reason = nullptr, std::int64_t index = 0) {
  json::object choice{{"index", index}, {"delta", std::move(delta)}, {"finish_reason", std::move(finish_reason)}};
  json::object c{{"id", "chatcmpl-1"},
                 {"object", "chat.completion.chunk"},
                 {"created", 7},
                 {"model", "Qwen3-1.7B"},
                 {"choices", json::array{std::move(choice)}}};
  return json::serialize(c);
}

std::string content_chunk(std::string_view text) { return chunk(json::object{{"content", text}}); }

const std::string k_usage_chunk =
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"Qwen3-1.7B","choices":[],)"
    R"("usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})";

// What a client assembles from the chunks it receives, per choice.
struct assembled {
  std::string reasoning_content;
  std::string reasoning;
  std::string content;
  int reasoning_content_keys = 0;
  int reasoning_keys = 0;
};

class client final {
public:
  explicit client(reasoning_options opts, endpoint kind = endpoint::chat_completions) : rw_(kind, opts) {}

  // Sends one backend chunk through the rewriter; returns whether it was rewritten.
  bool send(const std::string& data) {
    const auto out = rw_.rewrite(data);
    receive(out ? *out : data);
    return out.has_value();
  }
  void end() {
    for (const auto& data : rw_.flush()) receive(data);
  }

  assembled& choice(std::int64_t i = 0) { return choices_[i]; }
  stream_rewriter& rewriter() { return rw_; }
  std::vector<std::string> received;

private:
  void receive(const std::string& data) {
    received.push_back(data);
    const auto doc = json::parse(data);
    for (const auto& c : doc.as_object().at("choices").as_array()) {
      const auto& choice = c.as_object();
      const auto* delta = choice.if_contains("delta");
      if (!delta) continue;
      auto& a = choices_[choice.at("index").to_number<std::int64_t>()];
      const auto& d = delta->as_object();
      if (const auto* v = d.if_contains("reasoning_content")) {
        a.reasoning_content += str(*v);
        ++a.reasoning_content_keys;
      }
      if (const auto* v = d.if_contains("reasoning")) {
        a.reasoning += str(*v);
        ++a.reasoning_keys;
      }
      if (const auto* v = d.if_contains("content"); v && v->is_string()) a.content += str(*v);
    }
  }

  stream_rewriter rw_;
  std::map<std::int64_t, assembled> choices_;
};

const std::vector<std::string> k_inline_think_pieces = {"<thi", "nk>\nLet me", " think.</th", "ink>\n\nThe",
                                                        " answer."};

void send_inline_think(client& c) {
  EXPECT_FALSE(c.send(chunk(json::object{{"role", "assistant"}, {"content", ""}})));
  for (const auto& piece : k_inline_think_pieces) c.send(content_chunk(piece));
  c.send(chunk(json::object{}, "stop"));
  c.end();
}

TEST(stream_rewriter, inline_think_across_chunks_becomes_reasoning_content) {
  client c(reasoning_options{reasoning_field::reasoning_content, true});
  send_inline_think(c);
  EXPECT_EQ(c.choice().reasoning_content, "Let me think.");
  EXPECT_EQ(c.choice().content, "The answer.");
  EXPECT_EQ(c.choice().reasoning_keys, 0);
  for (const auto& data : c.received) EXPECT_EQ(data.find("think>"), std::string::npos) << data;
}

TEST(stream_rewriter, inline_think_one_character_per_chunk) {
  client c(reasoning_options{reasoning_field::reasoning_content, true});
  const std::string text = "<think>\nLet me think.</think>\n\nThe answer.";
  for (std::size_t i = 0; i < text.size(); ++i) c.send(content_chunk(text.substr(i, 1)));
  c.send(chunk(json::object{}, "stop"));
  c.end();
  EXPECT_EQ(c.choice().reasoning_content, "Let me think.");
  EXPECT_EQ(c.choice().content, "The answer.");
}

TEST(stream_rewriter, plain_content_after_think_is_relayed_unchanged) {
  client c(reasoning_options{});
  EXPECT_FALSE(c.send(chunk(json::object{{"role", "assistant"}, {"content", ""}})));
  EXPECT_TRUE(c.send(content_chunk("<think>r</think>")));
  EXPECT_TRUE(c.send(content_chunk("\n\nHello")));
  EXPECT_FALSE(c.send(content_chunk(" world")));
  EXPECT_FALSE(c.send(content_chunk(" again")));
  EXPECT_FALSE(c.send(chunk(json::object{}, "stop")));
  EXPECT_EQ(c.choice().content, "Hello world again");
  EXPECT_EQ(c.choice().reasoning_content, "r");
}

TEST(stream_rewriter, stream_without_think_is_never_rewritten) {
  client c(reasoning_options{});
  EXPECT_FALSE(c.send(chunk(json::object{{"role", "assistant"}, {"content", ""}})));
  EXPECT_FALSE(c.send(content_chunk("Hello")));
  EXPECT_FALSE(c.send(content_chunk(" 1 < 2")));
  EXPECT_FALSE(c.send(content_chunk(" world")));
  EXPECT_FALSE(c.send(chunk(json::object{}, "stop")));
  c.end();
  EXPECT_EQ(c.choice().content, "Hello 1 < 2 world");
  EXPECT_GE(c.rewriter().chunks_with_content(), 3);
}

// Chunks whose bytes around the content are those of the chunk before, with
// texts that the remembered shape must not vouch for: a quote (it could open
// keys), a trailing backslash (it would escape the closing quote), a '<'
// (another choice's think tag), usage and a reasoning key after it, a second
// choice. A rewriter remembering shapes says what one reading each in full says.
TEST(stream_rewriter, a_remembered_shape_says_what_reading_the_chunk_says) {
  const std::string head =
      R"({"id":"c","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":")";
  const std::string tail = R"("},"logprobs":null,"finish_reason":null}]})";
  const std::vector<std::string> texts = {
      "", // the role chunk's empty content before: no text
      "Hello",
      " world",
      "",
      R"(a\"b)",
      R"(ends\\)",
      R"(x\)",
      "1 < 2",
      R"(x"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":5,"completion_tokens":9},"z":[{"a":{"b":"y)",
      R"(x","reasoning":"thought)",
      R"(x"}},{"index":1,"delta":{"content":"<think>hidden)",
      " done"};
  for (const auto field : {reasoning_field::reasoning_content, reasoning_field::reasoning, reasoning_field::both})
    for (const bool keep : {true, false}) {
      const reasoning_options opts{field, keep};
      stream_rewriter remembering(endpoint::chat_completions, opts);
      stream_rewriter reading(endpoint::chat_completions, opts, false, false);
      const std::string role = chunk(json::object{{"role", "assistant"}, {"content", ""}});
      EXPECT_EQ(remembering.rewrite(role), reading.rewrite(role));
      for (const auto& text : texts) {
        const auto data = head + text + tail;
        EXPECT_EQ(remembering.rewrite(data), reading.rewrite(data)) << text;
        EXPECT_EQ(remembering.chunks_with_content(), reading.chunks_with_content()) << text;
      }
      EXPECT_EQ(remembering.flush(), reading.flush());
      ASSERT_TRUE(remembering.usage().has_value());
      EXPECT_EQ(remembering.usage()->completion_tokens, 9);
      EXPECT_EQ(reading.usage()->completion_tokens, 9);
    }
  // A shape whose content is a second choice's, before that choice has a
  // splitter: its "<think>" must still be split out.
  const std::string two = R"({"choices":[{"index":0,"delta":{}},{"index":1,"delta":{"content":")";
  const std::string two_tail = R"("}}]})";
  for (const bool remember : {true, false}) {
    stream_rewriter rw(endpoint::chat_completions, {}, false, remember);
    (void)rw.rewrite(chunk(json::object{{"role", "assistant"}, {"content", ""}}));
    (void)rw.rewrite(content_chunk("Hi"));
    EXPECT_FALSE(rw.rewrite(two + "plain" + two_tail).has_value());
    const auto split = rw.rewrite(two + "<think>why" + two_tail);
    ASSERT_TRUE(split.has_value()) << remember;
    EXPECT_NE(split->find(R"("reasoning_content":"why")"), std::string::npos) << *split;
  }
  // Chunks of one shape in a row (the case the shape is kept for): the
  // plain texts are counted, the empty ones not, and none is rewritten.
  stream_rewriter rw(endpoint::chat_completions, {});
  (void)rw.rewrite(chunk(json::object{{"role", "assistant"}, {"content", ""}}));
  for (const auto* text : {"Hello", "", " world", "", "!"}) EXPECT_FALSE(rw.rewrite(head + text + tail).has_value());
  EXPECT_EQ(rw.chunks_with_content(), 3);
}

TEST(stream_rewriter, backend_reasoning_field_is_renamed) {
  client c(reasoning_options{reasoning_field::reasoning_content, true});
  EXPECT_TRUE(c.send(chunk(json::object{{"reasoning", "Let me"}})));
  EXPECT_TRUE(c.send(chunk(json::object{{"reasoning", " think."}})));
  c.send(content_chunk("Answer."));
  c.end();
  EXPECT_EQ(c.choice().reasoning_content, "Let me think.");
  EXPECT_EQ(c.choice().reasoning_keys, 0);
  EXPECT_EQ(c.choice().content, "Answer.");
}

TEST(stream_rewriter, reasoning_content_becomes_reasoning_when_configured) {
  client c(reasoning_options{reasoning_field::reasoning, true});
  EXPECT_TRUE(c.send(chunk(json::object{{"reasoning_content", "sglang thinks"}})));
  c.send(content_chunk("Answer."));
  EXPECT_EQ(c.choice().reasoning, "sglang thinks");
  EXPECT_EQ(c.choice().reasoning_content_keys, 0);
  EXPECT_EQ(c.choice().content, "Answer.");

  client d(reasoning_options{reasoning_field::reasoning, true});
  d.send(content_chunk("<think>inline</think>x"));
  EXPECT_EQ(d.choice().reasoning, "inline");
  EXPECT_EQ(d.choice().reasoning_content_keys, 0);
  EXPECT_EQ(d.choice().content, "x");
}

TEST(stream_rewriter, both_fields_when_configured) {
  client c(reasoning_options{reasoning_field::both, true});
  c.send(chunk(json::object{{"reasoning", "r1"}}));
  c.send(content_chunk("Answer."));
  EXPECT_EQ(c.choice().reasoning, "r1");
  EXPECT_EQ(c.choice().reasoning_content, "r1");

  client d(reasoning_options{reasoning_field::both, true});
  send_inline_think(d);
  EXPECT_EQ(d.choice().reasoning, "Let me think.");
  EXPECT_EQ(d.choice().reasoning_content, "Let me think.");
  EXPECT_EQ(d.choice().content, "The answer.");
}

TEST(stream_rewriter, return_reasoning_false_strips_reasoning_everywhere) {
  for (const auto field : {reasoning_field::reasoning_content, reasoning_field::reasoning, reasoning_field::both}) {
    client c(reasoning_options{field, false});
    EXPECT_TRUE(c.send(chunk(json::object{{"reasoning", "backend thought"}})));
    EXPECT_TRUE(c.send(chunk(json::object{{"reasoning_content", "other thought"}})));
    send_inline_think(c);
    EXPECT_EQ(c.choice().reasoning_content_keys, 0);
    EXPECT_EQ(c.choice().reasoning_keys, 0);
    EXPECT_EQ(c.choice().content, "The answer.");
    for (const auto& data : c.received) EXPECT_EQ(data.find("thought"), std::string::npos) << data;
    for (const auto& data : c.received) EXPECT_EQ(data.find("Let me"), std::string::npos) << data;
  }
}

TEST(stream_rewriter, usage_is_read_from_the_usage_chunk) {
  client c(reasoning_options{});
  c.send(content_chunk("Hello"));
  EXPECT_FALSE(c.rewriter().usage().has_value());
  // vLLM sends "usage": null on every chunk.
  const std::string null_usage =
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"Qwen3-1.7B",)"
      R"("choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}],"usage":null})";
  EXPECT_FALSE(c.send(null_usage));
  EXPECT_FALSE(c.rewriter().usage().has_value());
  EXPECT_FALSE(c.send(k_usage_chunk)); // read, but relayed unchanged
  ASSERT_TRUE(c.rewriter().usage().has_value());
  EXPECT_EQ(c.rewriter().usage()->prompt_tokens, 12);
  EXPECT_EQ(c.rewriter().usage()->completion_tokens, 34);
}

TEST(stream_rewriter, completions_endpoint_is_untouched) {
  stream_rewriter rw(endpoint::completions, {});
  const std::string text_chunk = R"({"id":"cmpl-1","object":"text_completion","created":7,"model":"m",)"
                                 R"("choices":[{"index":0,"text":"<think>x</think>y","reasoning":"r",)"
                                 R"("finish_reason":null}]})";
  EXPECT_FALSE(rw.rewrite(text_chunk).has_value());
  EXPECT_FALSE(rw.rewrite(k_usage_chunk).has_value());
  ASSERT_TRUE(rw.usage().has_value());
  EXPECT_EQ(rw.usage()->completion_tokens, 34);
  EXPECT_TRUE(rw.flush().empty());
}

TEST(stream_rewriter, numbers_that_are_not_whole_are_ignored_not_thrown) {
  // A backend's "created": 1.5 or a usage of 1e30 once threw out of the relay (found by fuzz_sse).
  stream_rewriter rw(endpoint::chat_completions, {});
  const std::string odd = R"({"id":"c","object":"chat.completion.chunk","created":1.5,"model":"m","choices":[],)"
                          R"("usage":{"prompt_tokens":2.5,"completion_tokens":1e30}})";
  EXPECT_NO_THROW((void)rw.rewrite(odd));
  ASSERT_TRUE(rw.usage().has_value());
  EXPECT_EQ(rw.usage()->completion_tokens, 0); // not a count: left as unknown
  EXPECT_EQ(rw.usage()->prompt_tokens, 0);
  EXPECT_NO_THROW((void)rw.rewrite(k_usage_chunk));
  EXPECT_EQ(rw.usage()->completion_tokens, 34);
}

TEST(stream_rewriter, flush_emits_held_reasoning) {
  client c(reasoning_options{});
  c.send(content_chunk("<think>\nabc"));
  c.send(content_chunk(" </thi"));
  EXPECT_EQ(c.choice().reasoning_content, "abc ");
  const auto flushed = c.rewriter().flush();
  ASSERT_EQ(flushed.size(), 1u);
  const auto doc = json::parse(flushed[0]).as_object();
  EXPECT_EQ(str(doc.at("id")), "chatcmpl-1");
  EXPECT_EQ(str(doc.at("model")), "Qwen3-1.7B");
  EXPECT_EQ(str(doc.at("object")), "chat.completion.chunk");
  EXPECT_EQ(doc.at("created").to_number<std::int64_t>(), 7);
  const auto& choice = doc.at("choices").as_array().at(0).as_object();
  EXPECT_EQ(choice.at("index").to_number<std::int64_t>(), 0);
  EXPECT_EQ(str(choice.at("delta").as_object().at("reasoning_content")), "</thi");
  EXPECT_TRUE(c.rewriter().flush().empty()); // released once
}

TEST(stream_rewriter, flush_emits_held_content) {
  client c(reasoning_options{});
  c.send(content_chunk("<th"));
  EXPECT_EQ(c.choice().content, "");
  c.end();
  EXPECT_EQ(c.choice().content, "<th");
}

TEST(stream_rewriter, finish_reason_releases_held_text) {
  client c(reasoning_options{});
  c.send(content_chunk("<think>abc"));
  c.send(chunk(json::object{{"content", "</thi"}}, "length"));
  EXPECT_EQ(c.choice().reasoning_content, "abc</thi");
  EXPECT_TRUE(c.rewriter().flush().empty());
}

TEST(stream_rewriter, choices_are_split_independently) {
  client c(reasoning_options{});
  json::object first{
      {"index", 0}, {"delta", json::object{{"content", "<think>a</think>b"}}}, {"finish_reason", nullptr}};
  json::object second{{"index", 1}, {"delta", json::object{{"content", "plain"}}}, {"finish_reason", nullptr}};
  json::object data{{"id", "chatcmpl-1"},
                    {"object", "chat.completion.chunk"},
                    {"created", 7},
                    {"model", "m"},
                    {"choices", json::array{std::move(first), std::move(second)}}};
  c.send(json::serialize(data));
  c.end();
  EXPECT_EQ(c.choice(0).reasoning_content, "a");
  EXPECT_EQ(c.choice(0).content, "b");
  EXPECT_EQ(c.choice(1).reasoning_content, "");
  EXPECT_EQ(c.choice(1).content, "plain");
}

TEST(stream_rewriter, a_spliced_chunk_equals_the_parsed_one) {
  // A chunk of the plain shape (one delta, its content a string directly in
  // it, finish_reason null) is rewritten by splicing the content; an object
  // nested before the content sends the same text through the parse. Both
  // must give the same deltas chunk by chunk, whatever the options.
  const std::vector<std::string> pieces = {"<thi",
                                           "nk>\nwhy \"so\" \\ \u00e9 {} []",
                                           " more</th",
                                           "ink>\n\nthe answer: \"quoted\"",
                                           " <b>bold</b>",
                                           " tab\there\x01",
                                           ""};
  for (const reasoning_options opts :
       {reasoning_options{reasoning_field::reasoning_content, true},
        reasoning_options{reasoning_field::reasoning, true}, reasoning_options{reasoning_field::both, true},
        reasoning_options{reasoning_field::both, false}}) {
    client plain(opts), nested(opts);
    for (const auto& piece : pieces) {
      const bool a = plain.send(content_chunk(piece));
      const bool b = nested.send(chunk(json::object{{"extra", json::object{{"k", 1}}}, {"content", piece}}));
      EXPECT_EQ(a, b) << piece;
      auto da = json::parse(plain.received.back()).as_object()["choices"].as_array()[0].as_object()["delta"];
      auto db = json::parse(nested.received.back()).as_object()["choices"].as_array()[0].as_object()["delta"];
      db.as_object().erase("extra");
      EXPECT_EQ(da, db) << plain.received.back() << "\n" << nested.received.back();
    }
    plain.end();
    nested.end();
    EXPECT_EQ(plain.choice().content, "the answer: \"quoted\" <b>bold</b> tab\there\x01");
    EXPECT_EQ(plain.choice().content, nested.choice().content);
    EXPECT_EQ(plain.choice().reasoning_content, nested.choice().reasoning_content);
    EXPECT_EQ(plain.choice().reasoning, nested.choice().reasoning);
    if (opts.return_reasoning) {
      EXPECT_EQ(opts.field == reasoning_field::reasoning ? plain.choice().reasoning : plain.choice().reasoning_content,
                "why \"so\" \\ \xc3\xa9 {} [] more");
    }
    EXPECT_EQ(plain.rewriter().chunks_with_content(), nested.rewriter().chunks_with_content());
  }
}

TEST(stream_rewriter, a_spliced_chunk_keeps_the_rest_of_its_bytes) {
  // Spliced, not re-serialized: an escaped slash in the id stays escaped and
  // the spacing after the content stays (a serializer writes neither).
  stream_rewriter rw(endpoint::chat_completions, reasoning_options{});
  const std::string data = R"({"id":"chat\/1","choices":[{"index":0,"delta":{"content":"<think>r"} , )"
                           R"("logprobs":null,"finish_reason":null}]})";
  const auto out = rw.rewrite(data);
  ASSERT_TRUE(out && !out->empty());
  EXPECT_EQ(*out, R"({"id":"chat\/1","choices":[{"index":0,"delta":{"content":"","reasoning_content":"r"} , )"
                  R"("logprobs":null,"finish_reason":null}]})");
}

TEST(stream_rewriter, flush_takes_the_ids_of_the_last_chunk_spliced_or_parsed) {
  client c(reasoning_options{});
  c.send(
      R"({"id":"parsed","created":1,"model":"m1","choices":[{"index":0,"delta":{"extra":{},"content":"<think>a"},"finish_reason":null}]})");
  c.send(
      R"({"id":"spliced","created":2,"model":"m2","choices":[{"index":0,"delta":{"content":" b </th"},"finish_reason":null}]})");
  auto flushed = c.rewriter().flush();
  ASSERT_EQ(flushed.size(), 1u);
  auto doc = json::parse(flushed[0]).as_object();
  EXPECT_EQ(str(doc.at("id")), "spliced");
  EXPECT_EQ(str(doc.at("model")), "m2");
  EXPECT_EQ(doc.at("created").to_number<std::int64_t>(), 2);

  client d(reasoning_options{});
  d.send(
      R"({"id":"spliced","created":2,"model":"m2","choices":[{"index":0,"delta":{"content":"<think>a"},"finish_reason":null}]})");
  d.send(
      R"({"id":"parsed","created":3,"model":"m3","choices":[{"index":0,"delta":{"extra":{},"content":" b </th"},"finish_reason":null}]})");
  flushed = d.rewriter().flush();
  ASSERT_EQ(flushed.size(), 1u);
  doc = json::parse(flushed[0]).as_object();
  EXPECT_EQ(str(doc.at("id")), "parsed");
  EXPECT_EQ(doc.at("created").to_number<std::int64_t>(), 3);
}

TEST(stream_rewriter, a_chunk_with_tool_call_indexes_is_split_by_its_choice_index) {
  // Two "index" keys (the choice's and a tool call's): not the plain shape,
  // so the choice index is read by the parse, not guessed by a scan.
  client c(reasoning_options{});
  c.send(
      R"({"id":"x","choices":[{"index":1,"delta":{"content":"<think>a</think>b","tool_calls":[{"index":0}]},"finish_reason":null}]})");
  c.end();
  EXPECT_EQ(c.choice(1).reasoning_content, "a");
  EXPECT_EQ(c.choice(1).content, "b");
  EXPECT_EQ(c.choice(0).content, "");
}

std::string completion(std::string_view message_json) {
  return std::string(R"({"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m",)"
                     R"("choices":[{"index":0,"message":)") +
         std::string(message_json) +
         R"(,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}})";
}

json::object message_of(const std::string& body) {
  return json::parse(body).as_object().at("choices").as_array().at(0).as_object().at("message").as_object();
}

TEST(rewrite_response, inline_think_is_split) {
  usage_counts usage;
  const auto out = rewrite_response(completion(R"({"role":"assistant","content":"<think>\nr</think>\n\nanswer"})"),
                                    endpoint::chat_completions, {}, &usage);
  ASSERT_TRUE(out.has_value());
  const auto m = message_of(*out);
  EXPECT_EQ(str(m.at("content")), "answer");
  EXPECT_EQ(str(m.at("reasoning_content")), "r");
  EXPECT_FALSE(m.contains("reasoning"));
  EXPECT_EQ(usage.prompt_tokens, 3);
  EXPECT_EQ(usage.completion_tokens, 9);
}

TEST(rewrite_response, reasoning_field_is_renamed) {
  auto out = rewrite_response(completion(R"({"role":"assistant","content":"answer","reasoning":"r"})"),
                              endpoint::chat_completions, {});
  ASSERT_TRUE(out.has_value());
  auto m = message_of(*out);
  EXPECT_EQ(str(m.at("reasoning_content")), "r");
  EXPECT_FALSE(m.contains("reasoning"));
  EXPECT_EQ(str(m.at("content")), "answer");

  out = rewrite_response(completion(R"({"role":"assistant","content":"answer","reasoning_content":"r"})"),
                         endpoint::chat_completions, {reasoning_field::both, true});
  ASSERT_TRUE(out.has_value());
  m = message_of(*out);
  EXPECT_EQ(str(m.at("reasoning_content")), "r");
  EXPECT_EQ(str(m.at("reasoning")), "r");
}

TEST(rewrite_response, return_reasoning_false_strips_it) {
  for (const std::string_view message : {R"({"role":"assistant","content":"answer","reasoning":"r"})",
                                         R"({"role":"assistant","content":"<think>r</think>answer"})"}) {
    const auto out = rewrite_response(completion(message), endpoint::chat_completions, {reasoning_field::both, false});
    ASSERT_TRUE(out.has_value()) << message;
    const auto m = message_of(*out);
    EXPECT_FALSE(m.contains("reasoning_content")) << message;
    EXPECT_FALSE(m.contains("reasoning")) << message;
    EXPECT_EQ(str(m.at("content")), "answer") << message;
  }
}

TEST(rewrite_response, unchanged_body_gives_nullopt) {
  usage_counts usage;
  EXPECT_FALSE(rewrite_response(completion(R"({"role":"assistant","content":"plain answer"})"),
                                endpoint::chat_completions, {}, &usage)
                   .has_value());
  EXPECT_EQ(usage.completion_tokens, 9); // usage is read even when nothing changes
  EXPECT_FALSE(rewrite_response("not json", endpoint::chat_completions, {}).has_value());
}

TEST(rewrite_response, completions_are_untouched) {
  usage_counts usage;
  const std::string body = R"({"id":"cmpl-1","object":"text_completion","choices":[{"index":0,)"
                           R"("text":"<think>x</think>y","finish_reason":"stop"}],)"
                           R"("usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})";
  EXPECT_FALSE(rewrite_response(body, endpoint::completions, {}, &usage).has_value());
  EXPECT_EQ(usage.prompt_tokens, 1);
  EXPECT_EQ(usage.completion_tokens, 2);
}

TEST(read_usage, absent_or_null_usage_is_nullopt) {
  EXPECT_FALSE(read_usage(json::parse(R"({"id":"x"})").as_object()).has_value());
  EXPECT_FALSE(read_usage(json::parse(R"({"usage":null})").as_object()).has_value());
  const auto u = read_usage(json::parse(R"({"usage":{"prompt_tokens":4,"completion_tokens":5}})").as_object());
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 4);
  EXPECT_EQ(u->completion_tokens, 5);
}

} // namespace
TEST(stream_rewriter, reasoning_already_in_the_clients_field_is_relayed_unchanged) {
  stream_rewriter rw(endpoint::chat_completions, {reasoning_field::reasoning_content, true});
  (void)rw.rewrite(chunk(json::object{{"role", "assistant"}, {"content", ""}}));
  EXPECT_FALSE(rw.rewrite(chunk(json::object{{"reasoning_content", "step one"}})).has_value());
  EXPECT_FALSE(rw.rewrite(content_chunk("The answer.")).has_value());
  // The same field under the other name is renamed.
  auto renamed = rw.rewrite(chunk(json::object{{"reasoning", "step two"}}));
  ASSERT_TRUE(renamed.has_value());
  EXPECT_NE(renamed->find("\"reasoning_content\":\"step two\""), std::string::npos);
  EXPECT_EQ(renamed->find("\"reasoning\":"), std::string::npos);
}

TEST(rewrite_response, fast_path_keeps_the_bytes_and_still_reads_usage) {
  const std::string body =
      R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",)"
      R"("content":"say \"usage\": {\"prompt_tokens\": 999}","reasoning_content":"why"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":1}}})";
  usage_counts usage;
  EXPECT_FALSE(rewrite_response(body, endpoint::chat_completions, {reasoning_field::reasoning_content, true}, &usage));
  EXPECT_EQ(usage.prompt_tokens, 5);
  EXPECT_EQ(usage.completion_tokens, 7);
  // Key order is not fixed: counts after a nested object are found too.
  usage_counts reordered;
  EXPECT_FALSE(rewrite_response(
      R"({"choices":[],"usage":{"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens":9,"completion_tokens":4}})",
      endpoint::chat_completions, {reasoning_field::reasoning_content, true}, &reordered));
  EXPECT_EQ(reordered.prompt_tokens, 9);
  EXPECT_EQ(reordered.completion_tokens, 4);
  // Asked for the other field name, the same body is rewritten.
  auto other = rewrite_response(body, endpoint::chat_completions, {reasoning_field::reasoning, true});
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(other->find("\"reasoning\":\"why\""), std::string::npos);
}

TEST(rewrite_response, the_scans_find_usage_and_reasoning_at_either_end_of_the_body) {
  // usage first in the object: the backwards scan reaches the body's start.
  usage_counts first;
  EXPECT_FALSE(rewrite_response(R"({"usage":{"prompt_tokens":2,"completion_tokens":3},"choices":[]})",
                                endpoint::chat_completions, {reasoning_field::reasoning_content, true}, &first));
  EXPECT_EQ(first.prompt_tokens, 2);
  EXPECT_EQ(first.completion_tokens, 3);
  // Escaped quotes and backslashes in a string inside usage: the braces in it do not end the object.
  usage_counts escaped;
  EXPECT_FALSE(rewrite_response(
      R"({"choices":[],"usage":{"note":"a \"}\" b\\","x":"\\","prompt_tokens":4,"completion_tokens":6}})",
      endpoint::chat_completions, {reasoning_field::reasoning_content, true}, &escaped));
  EXPECT_EQ(escaped.prompt_tokens, 4);
  EXPECT_EQ(escaped.completion_tokens, 6);
  // The word in the text only (and "usag" cut short at the end): nothing to rename, no usage.
  usage_counts none{-1, -1};
  EXPECT_FALSE(rewrite_response(R"({"choices":[{"message":{"content":"reasoning"}}],"usag")",
                                endpoint::chat_completions, {reasoning_field::reasoning, true}, &none));
  EXPECT_EQ(none.prompt_tokens, -1);
  // The field as the body's last key: found, and renamed.
  const auto renamed = rewrite_response(R"({"choices":[{"message":{"content":"a","reasoning_content":"r"}}]})",
                                        endpoint::chat_completions, {reasoning_field::reasoning, true});
  ASSERT_TRUE(renamed);
  EXPECT_NE(renamed->find(R"("reasoning":"r")"), std::string::npos);
}

TEST(rewrite_response, a_spliced_answer_equals_the_parsed_one) {
  // The plain shape (one message, one string content) is rewritten by
  // splicing the content; other shapes by parsing the whole answer. The
  // first message below is spliced; adding a nested object before the
  // content, or a second choice, sends the same content through the parse.
  // Both must give the same message, whatever the options.
  const std::string content = R"("<think>\nwhy \"so\" \\ \u00e9</think>\n\nthe answer: {} [] \"quoted\"")";
  const std::string plain = completion(R"({"role":"assistant","content":)" + content + "}");
  const std::string nested = completion(R"({"role":"assistant","extra":{"k":1},"content":)" + content + "}");
  const std::string two = std::string(R"({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":)") +
                          content + R"(}},{"index":1,"message":{"role":"assistant","content":null}}]})";
  for (const reasoning_options opts :
       {reasoning_options{reasoning_field::reasoning_content, true},
        reasoning_options{reasoning_field::reasoning, true}, reasoning_options{reasoning_field::both, true},
        reasoning_options{reasoning_field::both, false}}) {
    const auto spliced = rewrite_response(plain, endpoint::chat_completions, opts);
    const auto parsed = rewrite_response(nested, endpoint::chat_completions, opts);
    const auto parsed_two = rewrite_response(two, endpoint::chat_completions, opts);
    ASSERT_TRUE(spliced && parsed && parsed_two);
    auto a = message_of(*spliced);
    auto b = message_of(*parsed);
    b.erase("extra");
    EXPECT_EQ(a, b) << *spliced << "\n" << *parsed;
    EXPECT_EQ(a, message_of(*parsed_two)) << *parsed_two;
    EXPECT_EQ(str(a.at("content")), "the answer: {} [] \"quoted\"");
    if (opts.return_reasoning) {
      const auto* r = a.if_contains(opts.field == reasoning_field::reasoning ? "reasoning" : "reasoning_content");
      ASSERT_TRUE(r);
      EXPECT_EQ(str(*r), "why \"so\" \\ \xc3\xa9");
    }
    // The rest of the answer is kept: every other field, and the usage.
    const auto whole = json::parse(*spliced).as_object();
    EXPECT_EQ(whole.at("id"), json::parse(plain).as_object().at("id"));
    EXPECT_EQ(whole.at("usage"), json::parse(plain).as_object().at("usage"));
  }
}

} // namespace llmgate::openai
