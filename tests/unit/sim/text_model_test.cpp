#include "sim/text_model.hpp"

#include "openai/think_splitter.hpp"

#include <gtest/gtest.h>
#include <string>
#include <string_view>

namespace llmgate::sim {
namespace {

std::string join(const generation& g, std::size_t from = 0, std::size_t to = std::string::npos) {
  std::string out;
  for (std::size_t i = from; i < g.tokens.size() && i < to; ++i) out += g.tokens[i];
  return out;
}

generation_request request(std::string_view prompt, bool thinking) {
  generation_request r;
  r.prompt = prompt;
  r.thinking = thinking;
  return r;
}

TEST(text_model, deterministic_for_the_same_prompt) {
  const auto a = generate(request("What is a token bucket?", true));
  const auto b = generate(request("What is a token bucket?", true));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.reasoning_tokens, b.reasoning_tokens);
}

TEST(text_model, different_for_different_prompts) {
  const auto a = generate(request("What is a token bucket?", false));
  const auto b = generate(request("What is a circuit breaker?", false));
  EXPECT_NE(join(a), join(b));
}

TEST(text_model, without_thinking_there_is_no_think_block) {
  const auto g = generate(request("hello", false));
  EXPECT_EQ(g.reasoning_tokens, 0u);
  EXPECT_FALSE(g.truncated);
  EXPECT_GE(g.tokens.size(), 16u); // 16..48 chosen from the prompt
  EXPECT_LE(g.tokens.size(), 48u);
  const auto text = join(g);
  EXPECT_EQ(text.find("<think>"), std::string::npos);
  EXPECT_TRUE(text.ends_with("."));
}

TEST(text_model, thinking_adds_a_think_block_before_the_answer) {
  auto r = request("hello", true);
  r.thinking_tokens = 5;
  r.answer_tokens = 10;
  const auto g = generate(r);
  ASSERT_GT(g.reasoning_tokens, 5u);
  EXPECT_EQ(g.tokens.size() - g.reasoning_tokens, 10u);
  EXPECT_FALSE(g.truncated);

  const auto think = join(g, 0, g.reasoning_tokens);
  EXPECT_TRUE(think.starts_with("<think>")) << think;
  EXPECT_NE(think.find("</think>"), std::string::npos) << think;
  const auto answer = join(g, g.reasoning_tokens);
  EXPECT_EQ(answer.find("think>"), std::string::npos) << answer;

  // The gateway's splitter sees exactly this answer as content.
  openai::think_splitter splitter;
  auto parts = splitter.feed(join(g));
  const auto rest = splitter.finish();
  parts.reasoning += rest.reasoning;
  parts.content += rest.content;
  EXPECT_FALSE(parts.reasoning.empty());
  EXPECT_EQ(parts.content, answer);
}

TEST(text_model, answer_tokens_are_honoured_without_thinking) {
  auto r = request("hello", false);
  r.answer_tokens = 7;
  EXPECT_EQ(generate(r).tokens.size(), 7u);
}

TEST(text_model, max_tokens_truncates) {
  auto r = request("a long answer please", false);
  r.answer_tokens = 30;
  const auto full = generate(r);
  r.max_tokens = 10;
  const auto cut = generate(r);
  EXPECT_TRUE(cut.truncated);
  ASSERT_EQ(cut.tokens.size(), 10u);
  for (std::size_t i = 0; i < cut.tokens.size(); ++i) EXPECT_EQ(cut.tokens[i], full.tokens[i]) << i;

  r.max_tokens = 30; // exactly enough
  EXPECT_FALSE(generate(r).truncated);
  r.max_tokens = 100;
  EXPECT_FALSE(generate(r).truncated);
}

// Only the tokens within max_tokens are made: at every cut, in and after the
// think block, they are the same as the uncut answer's, and the final "." is
// the uncut answer's own.
TEST(text_model, every_cut_is_a_prefix_of_the_whole_answer) {
  for (const bool thinking : {false, true}) {
    auto r = request("cut me anywhere", thinking);
    r.thinking_tokens = 4;
    r.answer_tokens = 12;
    const auto full = generate(r);
    ASSERT_EQ(full.tokens.size(), thinking ? 21u : 12u);
    for (std::size_t max = 1; max <= full.tokens.size() + 2; ++max) {
      r.max_tokens = static_cast<std::int64_t>(max);
      const auto cut = generate(r);
      ASSERT_EQ(cut.tokens.size(), std::min(max, full.tokens.size())) << thinking << " " << max;
      EXPECT_EQ(cut.truncated, max < full.tokens.size()) << thinking << " " << max;
      EXPECT_EQ(cut.reasoning_tokens, std::min(full.reasoning_tokens, cut.tokens.size())) << thinking << " " << max;
      for (std::size_t i = 0; i < cut.tokens.size(); ++i) EXPECT_EQ(cut.tokens[i], full.tokens[i]) << max << " " << i;
    }
  }
}

TEST(text_model, max_tokens_inside_the_think_block) {
  auto r = request("think hard", true);
  r.thinking_tokens = 8;
  r.max_tokens = 3;
  const auto g = generate(r);
  EXPECT_TRUE(g.truncated);
  EXPECT_EQ(g.tokens.size(), 3u);
  EXPECT_EQ(g.reasoning_tokens, 3u);
}

TEST(text_model, ignore_eos_generates_exactly_max_tokens) {
  for (const bool thinking : {false, true})
    for (const std::int64_t max : {1, 7, 300}) {
      auto r = request("short", thinking);
      r.max_tokens = max;
      r.ignore_eos = true;
      EXPECT_EQ(generate(r).tokens.size(), static_cast<std::size_t>(max)) << thinking << " " << max;
    }
  auto r = request("short", false);
  r.max_tokens = 300; // without ignore_eos the answer ends on its own, well before
  EXPECT_LT(generate(r).tokens.size(), 300u);
}

TEST(text_model, estimate_tokens_is_about_four_bytes_a_token) {
  EXPECT_EQ(estimate_tokens(""), 1);
  EXPECT_EQ(estimate_tokens(std::string(400, 'x')), 101);
}

} // namespace
} // namespace llmgate::sim
