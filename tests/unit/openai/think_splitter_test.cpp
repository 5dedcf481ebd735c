#include "openai/think_splitter.hpp"

#include <gtest/gtest.h>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::openai {
namespace {

struct split_text {
  std::string reasoning;
  std::string content;
};

void add(split_text& out, const think_splitter::parts& p) {
  out.reasoning += p.reasoning;
  out.content += p.content;
}

split_text run(const std::vector<std::string_view>& pieces) {
  think_splitter s;
  split_text out;
  for (const auto piece : pieces) add(out, s.feed(piece));
  add(out, s.finish());
  return out;
}

split_text whole(std::string_view text) { return run({text}); }

split_text by_char(std::string_view text) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < text.size(); ++i) pieces.push_back(text.substr(i, 1));
  return run(pieces);
}

// Texts chosen to put tags, partial tags and newlines at awkward places.
const std::vector<std::string_view> k_samples = {
    "<think>\nLet me think about </thin and <think> tags.\n</think>\n\nThe answer is 42.",
    "  \n<think></think>\n\nEmpty reasoning.",
    "No thinking here, just <b>html</b> and </think>.",
    "<think>\nunterminated reasoning </thi",
    "<thinking>not a tag</thinking>",
    "\n\n<think>\n\n</think>\n\n",
    "<think>a</think></think>b",
    "<thi",
    "",
};

TEST(think_splitter, splits_whole_text) {
  const auto r = whole("<think>\nLet me think.</think>\n\nThe answer.");
  EXPECT_EQ(r.reasoning, "Let me think.");
  EXPECT_EQ(r.content, "The answer.");
}

TEST(think_splitter, open_tag_may_follow_whitespace) {
  const auto r = whole(" \n\t<think>abc</think>answer");
  EXPECT_EQ(r.reasoning, "abc");
  EXPECT_EQ(r.content, "answer");
}

TEST(think_splitter, text_without_think_passes_through) {
  const std::string_view text = "Hello <b>world</b>, 1 < 2.";
  EXPECT_EQ(whole(text).content, text);
  EXPECT_EQ(whole(text).reasoning, "");
  EXPECT_EQ(by_char(text).content, text);
}

TEST(think_splitter, think_after_content_is_content) {
  const std::string_view text = "Answer: <think>not reasoning</think> done";
  const auto r = whole(text);
  EXPECT_EQ(r.reasoning, "");
  EXPECT_EQ(r.content, text);
}

TEST(think_splitter, second_close_tag_is_content) {
  const auto r = whole("<think>a</think></think>b");
  EXPECT_EQ(r.reasoning, "a");
  EXPECT_EQ(r.content, "</think>b");
}

TEST(think_splitter, unterminated_think_is_reasoning_at_finish) {
  auto r = whole("<think>\nstill going");
  EXPECT_EQ(r.reasoning, "still going");
  EXPECT_EQ(r.content, "");

  // Even a held-back partial close tag is reasoning when the output ends.
  r = whole("<think>abc</thi");
  EXPECT_EQ(r.reasoning, "abc</thi");
  EXPECT_EQ(r.content, "");
}

TEST(think_splitter, partial_open_tag_is_held_then_classified) {
  think_splitter s;
  auto p = s.feed("<thi");
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "");
  p = s.feed("nk>r");
  EXPECT_EQ(p.reasoning, "r");
  EXPECT_EQ(p.content, "");
  p = s.feed("</th");
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "");
  p = s.feed("ink>ok");
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "ok");
  p = s.finish();
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "");
}

TEST(think_splitter, partial_open_tag_that_turns_out_to_be_text) {
  EXPECT_EQ(run({"<thi", "s is html"}).content, "<this is html");
  EXPECT_EQ(run({"<thi"}).content, "<thi"); // released by finish()
  EXPECT_EQ(run({"<think", "ing>"}).content, "<thinking>");
}

TEST(think_splitter, close_tag_cut_at_every_position) {
  const std::string close = "</think>";
  for (std::size_t k = 1; k < close.size(); ++k) {
    const std::string first = "<think>abc" + close.substr(0, k);
    const std::string second = close.substr(k) + "done";
    const auto r = run({first, second});
    EXPECT_EQ(r.reasoning, "abc") << "cut after " << k;
    EXPECT_EQ(r.content, "done") << "cut after " << k;
  }
}

TEST(think_splitter, newlines_after_tags_are_skipped) {
  auto r = whole("<think>\n\n\nr</think>\n\n\nc");
  EXPECT_EQ(r.reasoning, "r");
  EXPECT_EQ(r.content, "c");

  r = run({"<think>", "\n", "\n", "r", "</think>", "\n", "\n", "c"});
  EXPECT_EQ(r.reasoning, "r");
  EXPECT_EQ(r.content, "c");

  // Newlines inside the text are kept.
  r = whole("<think>a\nb</think>c\nd");
  EXPECT_EQ(r.reasoning, "a\nb");
  EXPECT_EQ(r.content, "c\nd");
}

TEST(think_splitter, same_result_for_any_two_piece_split) {
  for (const auto text : k_samples) {
    const auto expected = whole(text);
    for (std::size_t i = 0; i <= text.size(); ++i) {
      const auto r = run({text.substr(0, i), text.substr(i)});
      EXPECT_EQ(r.reasoning, expected.reasoning) << "text '" << text << "' split at " << i;
      EXPECT_EQ(r.content, expected.content) << "text '" << text << "' split at " << i;
    }
  }
}

TEST(think_splitter, same_result_fed_one_char_at_a_time) {
  for (const auto text : k_samples) {
    const auto expected = whole(text);
    const auto r = by_char(text);
    EXPECT_EQ(r.reasoning, expected.reasoning) << "text '" << text << "'";
    EXPECT_EQ(r.content, expected.content) << "text '" << text << "'";
  }
}

TEST(think_splitter, same_result_for_any_three_piece_split) {
  const std::string_view text = k_samples[0];
  const auto expected = whole(text);
  for (std::size_t i = 0; i <= text.size(); ++i)
    for (std::size_t j = i; j <= text.size(); ++j) {
      const auto r = run({text.substr(0, i), text.substr(i, j - i), text.substr(j)});
      ASSERT_EQ(r.reasoning, expected.reasoning) << "split at " << i << " and " << j;
      ASSERT_EQ(r.content, expected.content) << "split at " << i << " and " << j;
    }
}

TEST(think_splitter, sample_expectations) {
  // Pins the whole-text results the invariance tests compare against.
  EXPECT_EQ(whole(k_samples[0]).reasoning, "Let me think about </thin and <think> tags.\n");
  EXPECT_EQ(whole(k_samples[0]).content, "The answer is 42.");
  EXPECT_EQ(whole(k_samples[1]).reasoning, "");
  EXPECT_EQ(whole(k_samples[1]).content, "Empty reasoning.");
  EXPECT_EQ(whole(k_samples[4]).content, "<thinking>not a tag</thinking>");
  EXPECT_EQ(whole(k_samples[5]).reasoning, "");
  EXPECT_EQ(whole(k_samples[5]).content, "");
}

TEST(think_splitter, passthrough_once_content_starts) {
  think_splitter plain;
  EXPECT_FALSE(plain.passthrough());
  (void)plain.feed("Hello");
  EXPECT_TRUE(plain.passthrough());

  think_splitter thinking;
  (void)thinking.feed("\n");
  EXPECT_FALSE(thinking.passthrough()); // may still become "<think>"
  (void)thinking.feed("<think>x");
  EXPECT_FALSE(thinking.passthrough());
  (void)thinking.feed("</think>");
  EXPECT_FALSE(thinking.passthrough()); // newlines after the tag are still to be skipped
  (void)thinking.feed("\n\nHi");
  EXPECT_TRUE(thinking.passthrough());
  EXPECT_EQ(thinking.feed(" there").content, " there");
}

} // namespace
} // namespace llmgate::openai
