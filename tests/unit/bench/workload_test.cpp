#include "bench/workload.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace llmgate::bench {
namespace {

length_dist parsed(std::string_view spec) {
  std::string error;
  const auto d = parse_length(spec, error);
  EXPECT_TRUE(d) << spec << ": " << error;
  return d.value_or(length_dist{});
}

TEST(workload, parses_every_form) {
  EXPECT_EQ(parsed("256").kind, length_dist::shape::fixed);
  EXPECT_EQ(parsed("256").a, 256);
  const auto u = parsed("128..512");
  EXPECT_EQ(u.kind, length_dist::shape::uniform);
  EXPECT_EQ(u.a, 128);
  EXPECT_EQ(u.b, 512);
  const auto n = parsed("normal:256,64");
  EXPECT_EQ(n.kind, length_dist::shape::normal);
  EXPECT_EQ(n.b, 64);
  EXPECT_EQ(parsed("exp:100").kind, length_dist::shape::exponential);
  EXPECT_EQ(describe(parsed("normal:256,64")), "normal:256,64");
  EXPECT_EQ(describe(parsed("128..512")), "128..512");
}

TEST(workload, refuses_nonsense) {
  for (const auto* bad : {"", "0", "-5", "abc", "5..2", "normal:10", "normal:0,1", "exp:0", "1e9", "nan", "10..x"}) {
    std::string error;
    EXPECT_FALSE(parse_length(bad, error)) << bad;
    EXPECT_NE(error.find("length"), std::string::npos) << bad;
  }
}

TEST(workload, draws_stay_in_shape) {
  std::mt19937_64 rng(7);
  const auto u = parsed("10..20");
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const auto v = draw(u, rng);
    ASSERT_GE(v, 10);
    ASSERT_LE(v, 20);
    sum += static_cast<double>(v);
  }
  EXPECT_NEAR(sum / 10000, 15, 0.3);
  const auto e = parsed("exp:100");
  sum = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto v = draw(e, rng);
    ASSERT_GE(v, 1); // never zero tokens
    sum += static_cast<double>(v);
  }
  EXPECT_NEAR(sum / 20000, 100, 5);
  EXPECT_EQ(draw(parsed("42"), rng), 42);
  for (int i = 0; i < 1000; ++i) ASSERT_GE(draw(parsed("normal:2,50"), rng), 1);
}

TEST(workload, prompts_have_their_length_and_differ) {
  const auto a = prompt_text(256, 1);
  const auto b = prompt_text(256, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, prompt_text(256, 1));                      // the same salt, the same prompt
  EXPECT_NEAR(static_cast<double>(a.size()) / 4, 256, 4); // 4 bytes a token, as the simulator counts
  EXPECT_NE(a.substr(0, 16), b.substr(0, 16));            // different from the first bytes
}

TEST(workload, body_asks_for_exactly_what_was_chosen) {
  request_shape shape;
  shape.model = "Qwen3-0.6B";
  const auto v = boost::json::parse(chat_body(shape, "hello", 77)).as_object();
  EXPECT_EQ(v.at("model").as_string(), "Qwen3-0.6B");
  EXPECT_EQ(v.at("max_tokens").as_int64(), 77);
  EXPECT_TRUE(v.at("ignore_eos").as_bool());
  EXPECT_TRUE(v.at("stream").as_bool());
  EXPECT_TRUE(v.at("stream_options").at("include_usage").as_bool());
  EXPECT_FALSE(v.at("chat_template_kwargs").at("enable_thinking").as_bool());
  EXPECT_EQ(v.at("messages").as_array()[0].at("content").as_string(), "hello");
  shape.stream = false;
  shape.thinking = true;
  shape.ignore_eos = false;
  const auto w = boost::json::parse(chat_body(shape, "hi", 5)).as_object();
  EXPECT_FALSE(w.contains("stream"));
  EXPECT_FALSE(w.contains("chat_template_kwargs"));
  EXPECT_FALSE(w.contains("ignore_eos"));
}

} // namespace
} // namespace llmgate::bench
