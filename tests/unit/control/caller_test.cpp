#include "control/caller.hpp"

#include <gtest/gtest.h>

namespace llmgate::control {
namespace {

config base() {
  config c;
  c.tiers = {{"free", 1}, {"gold", 3}};
  c.default_tier = "free";
  c.keys = {{"sk-team-a", "team-a", "gold"}, {"sk-team-b", "team-b", ""}};
  return c;
}

TEST(identify, known_keys_get_their_name_and_tier) {
  const auto c = base();
  auto a = identify(c, "Bearer sk-team-a", "1.2.3.4");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->name, "team-a");
  EXPECT_EQ(a->tier, "gold");
  EXPECT_FALSE(a->anonymous);
  EXPECT_EQ(identify(c, "Bearer sk-team-b", "1.2.3.4")->tier, "free");
}

TEST(identify, no_key_EMPTY_and_unknown_keys_are_anonymous_and_keyed_by_address) {
  const auto c = base();
  for (const char* auth : {"", "Bearer EMPTY", "Bearer sk-random-123", "Bearer "}) {
    auto who = identify(c, auth, "1.2.3.4");
    ASSERT_TRUE(who) << auth;
    EXPECT_TRUE(who->anonymous);
    EXPECT_EQ(who->name, "ip:1.2.3.4");
    EXPECT_EQ(who->tier, "free");
  }
}

TEST(identify, auth_required_refuses_unknown_and_missing_keys) {
  auto c = base();
  c.auth_required = true;
  EXPECT_FALSE(identify(c, "Bearer sk-random", "1.2.3.4"));
  EXPECT_FALSE(identify(c, "", "1.2.3.4"));
  EXPECT_FALSE(identify(c, "Bearer EMPTY", "1.2.3.4"));
  EXPECT_TRUE(identify(c, "Bearer sk-team-a", "1.2.3.4"));
}

TEST(client_address, forwarded_for_is_read_only_from_trusted_proxies) {
  auto c = base();
  EXPECT_EQ(client_address(c, "127.0.0.1", "9.9.9.9"), "127.0.0.1"); // nobody trusted
  c.trusted_proxies = {*parse_cidr("127.0.0.1"), *parse_cidr("10.0.0.0/8")};
  EXPECT_EQ(client_address(c, "127.0.0.1", "9.9.9.9"), "9.9.9.9");
  EXPECT_EQ(client_address(c, "127.0.0.1", "6.6.6.6, 9.9.9.9, 10.1.2.3"), "9.9.9.9"); // nearest untrusted hop
  EXPECT_EQ(client_address(c, "8.8.8.8", "9.9.9.9"), "8.8.8.8");                      // untrusted peer: ignored
  EXPECT_EQ(client_address(c, "127.0.0.1", "garbage"), "127.0.0.1");
}

TEST(parse_cidr, reads_v4_v6_and_prefixes) {
  const auto net = *parse_cidr("10.0.0.0/8");
  EXPECT_TRUE(net.contains(*parse_address("10.200.3.4")));
  EXPECT_FALSE(net.contains(*parse_address("11.0.0.1")));
  EXPECT_TRUE(parse_cidr("::1")->contains(*parse_address("::1")));
  EXPECT_TRUE(parse_cidr("fd00::/8")->contains(*parse_address("fd12::5")));
  EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
  EXPECT_FALSE(parse_cidr("not-an-address"));
}

TEST(constant_time_equal, compares_contents) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

} // namespace
} // namespace llmgate::control
