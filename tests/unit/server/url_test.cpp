#include "server/url.hpp"

#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::server {
namespace {

TEST(parse_target, splits_path_and_query) {
  auto t = parse_target("/v1/models?x=1&y=2");
  EXPECT_EQ(t.path, "/v1/models");
  EXPECT_EQ(t.query, "x=1&y=2");

  t = parse_target("/v1/chat/completions");
  EXPECT_EQ(t.path, "/v1/chat/completions");
  EXPECT_EQ(t.query, "");

  t = parse_target("/p?");
  EXPECT_EQ(t.path, "/p");
  EXPECT_EQ(t.query, "");

  t = parse_target("/p?a=b?c"); // only the first '?' separates
  EXPECT_EQ(t.path, "/p");
  EXPECT_EQ(t.query, "a=b?c");
}

TEST(query_param, finds_and_decodes_values) {
  const std::string_view q = "a=1&b=hello%20world&c=x+y&d=%2B%2b&e=&flag";
  EXPECT_EQ(query_param(q, "a"), "1");
  EXPECT_EQ(query_param(q, "b"), "hello world");
  EXPECT_EQ(query_param(q, "c"), "x y"); // '+' is a space, as in HTML forms
  EXPECT_EQ(query_param(q, "d"), "++");  // an encoded '+' stays a '+'; hex in either case
  EXPECT_EQ(query_param(q, "e"), "");
  EXPECT_EQ(query_param(q, "flag"), "");
  EXPECT_EQ(query_param(q, "missing"), std::nullopt);
}

TEST(query_param, matches_whole_names_only) {
  EXPECT_EQ(query_param("ab=1&b=2", "a"), std::nullopt);
  EXPECT_EQ(query_param("ab=1&b=2", "b"), "2");
  EXPECT_EQ(query_param("", "a"), std::nullopt);
}

TEST(query_param, first_occurrence_wins) { EXPECT_EQ(query_param("a=1&a=2", "a"), "1"); }

TEST(query_param, bad_escapes_are_nullopt) {
  for (const std::string_view q : {"a=%zz", "a=%4", "a=%", "a=abc%", "a=%g1", "a=%1g"})
    EXPECT_EQ(query_param(q, "a"), std::nullopt) << q;
}

TEST(percent_decode, decodes_utf8_bytes) {
  EXPECT_EQ(percent_decode("%E2%82%AC"), "\xE2\x82\xAC");
  EXPECT_EQ(percent_decode("%41%62c"), "Abc");
  EXPECT_EQ(percent_decode("plain"), "plain");
  EXPECT_EQ(percent_decode(""), "");
}

} // namespace
} // namespace llmgate::server
