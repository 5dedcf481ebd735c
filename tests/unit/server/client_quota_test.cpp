#include "server/client_quota.hpp"

#include <gtest/gtest.h>
#include <string>
#include <thread>
#include <vector>

namespace llmgate::server {
namespace {

TEST(client_quota, caps_each_address_separately_and_frees_on_give_back) {
  client_quota q(2);
  EXPECT_TRUE(q.take("10.0.0.1"));
  EXPECT_TRUE(q.take("10.0.0.1"));
  EXPECT_FALSE(q.take("10.0.0.1"));
  EXPECT_TRUE(q.take("10.0.0.2")); // another client is not affected
  q.give_back("10.0.0.1");
  EXPECT_TRUE(q.take("10.0.0.1"));
  EXPECT_FALSE(q.take("10.0.0.1"));
}

TEST(client_quota, forgets_an_address_when_its_last_connection_closes) {
  client_quota q(3);
  ASSERT_TRUE(q.take("a"));
  ASSERT_TRUE(q.take("b"));
  EXPECT_EQ(q.tracked(), 2u);
  q.give_back("a");
  EXPECT_EQ(q.tracked(), 1u);
  q.give_back("b");
  EXPECT_EQ(q.tracked(), 0u);
}

TEST(client_quota, a_refused_take_tracks_nothing_new) {
  client_quota q(1);
  ASSERT_TRUE(q.take("a"));
  EXPECT_FALSE(q.take("a"));
  q.give_back("a");
  EXPECT_EQ(q.tracked(), 0u);
}

TEST(client_quota, zero_means_no_cap) {
  client_quota q(0);
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(q.take("a"));
  EXPECT_EQ(q.tracked(), 0u);
}

TEST(client_quota, concurrent_takes_never_exceed_the_cap) {
  client_quota q(50);
  std::vector<std::thread> threads;
  std::vector<int> taken(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i)
        if (q.take("one")) ++taken[t];
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(taken[0] + taken[1] + taken[2] + taken[3], 50);
}

} // namespace
} // namespace llmgate::server
