#include "openai/error.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <string>
#include <tuple>
#include <vector>

namespace llmgate::openai {
namespace {

TEST(QuoteInput, ShortValidTextIsKeptAsIs) {
  EXPECT_EQ(quote_input("Qwen3-1.7B"), "Qwen3-1.7B");
  EXPECT_EQ(quote_input("通义千问"), "通义千问");
  EXPECT_EQ(quote_input(""), "");
}

TEST(QuoteInput, LongInputIsCutWithAnEllipsis) {
  const std::string long_name(10240, 'm');
  const auto q = quote_input(long_name);
  EXPECT_EQ(q, std::string(128, 'm') + "\xE2\x80\xA6");
  EXPECT_EQ(quote_input("abcdef", 3), "abc\xE2\x80\xA6");
}

TEST(QuoteInput, CutsOnlyAtCharacterBoundaries) {
  // Each 问 is 3 bytes: 4 bytes of room hold one, not one and a third.
  EXPECT_EQ(quote_input("问问问", 4), "问\xE2\x80\xA6");
  EXPECT_EQ(quote_input("问问问", 6), "问问\xE2\x80\xA6");
  EXPECT_EQ(quote_input("问问", 6), "问问");
}

TEST(QuoteInput, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(quote_input("a\xff"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(quote_input("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");                 // overlong '/'
  EXPECT_EQ(quote_input("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // a surrogate
  EXPECT_EQ(quote_input("\xf4\x90\x80\x80").substr(0, 3), "\xEF\xBF\xBD");        // past U+10FFFF
  EXPECT_EQ(quote_input("x\xe4\xb8"), "x\xEF\xBF\xBD\xEF\xBF\xBD");               // truncated sequence
  EXPECT_EQ(quote_input("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");                 // an emoji is valid
}

TEST(ErrorReplies, QuoteClientInputShortAndValid) {
  const auto r = model_not_found(std::string(10240, 'm') + "\xff");
  EXPECT_EQ(r.status, 404);
  EXPECT_LT(r.body.size(), 400u);
  const auto j = boost::json::parse(r.body); // valid UTF-8, valid JSON
  EXPECT_EQ(j.at("error").at("code").as_string(), "model_not_found");
  const auto m = not_found(std::string("/v1/\xff\xfe") + std::string(5000, 'p'));
  EXPECT_LT(m.body.size(), 400u);
  EXPECT_NO_THROW(boost::json::parse(m.body));
  EXPECT_LT(method_not_allowed(std::string(1000, 'B')).body.size(), 250u);
}

TEST(ErrorBody, IsWhatBoostJsonWouldWriteForAnyText) {
  // error_body writes the JSON by hand: byte for byte what building the
  // object and serializing it gives, for text that needs every escape.
  const std::string nasty = std::string("q\"b\\s/\n\r\t\b\f") + '\0' + "\x01\x1f\x7f 通义 \xff end";
  for (const auto& [message, param, code] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"plain", "", ""}, {nasty, "messages[0]", nasty}, {"", nasty, ""}, {"m", "", "c"}}) {
    boost::json::object err;
    err["message"] = message;
    err["type"] = "invalid_request_error";
    err["param"] = param.empty() ? boost::json::value(nullptr) : boost::json::value(param);
    err["code"] = code.empty() ? boost::json::value(nullptr) : boost::json::value(code);
    const auto expected = boost::json::serialize(boost::json::object{{"error", err}});
    EXPECT_EQ(error_body(message, "invalid_request_error", param, code), expected);
  }
}

TEST(ErrorBody, EscapesAreFoundWhereverTheyFallInAWord) {
  // append_json_string tests eight bytes at a time: every character to escape,
  // and some that must not be, at every place in and around a word.
  std::string specials = "\"\\\x7f\x80\xff !#[]{}";
  for (int c = 0; c < 0x20; ++c) specials += static_cast<char>(c);
  for (const char special : specials)
    for (std::size_t size = 1; size <= 20; ++size)
      for (std::size_t at = 0; at < size; ++at) {
        std::string text(size, 'a');
        text[at] = special;
        std::string out;
        append_json_string(out, text);
        ASSERT_EQ(out, boost::json::serialize(boost::json::value(text)))
            << "byte " << static_cast<int>(static_cast<unsigned char>(special)) << " at " << at << " of " << size;
      }
}

} // namespace
} // namespace llmgate::openai
