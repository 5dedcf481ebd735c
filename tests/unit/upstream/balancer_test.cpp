#include "upstream/balancer.hpp"

#include <gtest/gtest.h>
#include <map>
#include <string>

namespace llmgate::upstream {
namespace {

TEST(balancer, round_robin_skips_unavailable_backends) {
  balancer b(balance_strategy::round_robin);
  std::vector<backend_load> pool(3);
  pool[1].available = false;
  std::vector<std::size_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(*b.pick(pool));
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 2, 0, 2}));
  for (auto& p : pool) p.available = false;
  EXPECT_FALSE(b.pick(pool));
}

TEST(balancer, weighted_is_smooth_and_exact) {
  balancer b(balance_strategy::weighted);
  std::vector<backend_load> pool(3);
  pool[0].weight = 5;
  std::string order;
  for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + *b.pick(pool));
  EXPECT_EQ(order, "aabacaa"); // nginx's example for 5:1:1
  std::map<std::size_t, int> count;
  for (int i = 0; i < 700; ++i) ++count[*b.pick(pool)];
  EXPECT_EQ(count[0], 500);
  EXPECT_EQ(count[1], 100);
  EXPECT_EQ(count[2], 100);
}

TEST(balancer, least_outstanding_avoids_the_busy_backend) {
  balancer b(balance_strategy::least_outstanding, 7);
  std::vector<backend_load> pool(2);
  pool[0].outstanding = 10;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(*b.pick(pool), 1u); // of any two, the idle one wins
  std::vector<backend_load> three(3);
  three[2].outstanding = 100;
  int to_busy = 0;
  for (int i = 0; i < 3000; ++i) to_busy += *b.pick(three) == 2;
  EXPECT_EQ(to_busy, 0); // the busiest never wins a pair
}

TEST(balancer, least_busy_reads_the_backends_queue_then_kv_cache) {
  balancer b(balance_strategy::least_busy);
  std::vector<backend_load> pool(3);
  pool[0].waiting = 4;
  pool[1].waiting = 1;
  pool[1].kv_usage = 0.9;
  pool[2].waiting = 1;
  pool[2].kv_usage = 0.2;
  EXPECT_EQ(*b.pick(pool), 2u);
}

TEST(balancer, prefix_affinity_keeps_prompts_on_their_backend_and_moves_few_when_one_leaves) {
  balancer b(balance_strategy::prefix_affinity);
  std::vector<backend_load> pool(4);
  std::map<std::string, std::size_t> home;
  for (int i = 0; i < 400; ++i) {
    const auto key = "system prompt #" + std::to_string(i);
    home[key] = *b.pick(pool, key);
    EXPECT_EQ(*b.pick(pool, key), home[key]); // stable
  }
  pool[1].available = false;
  int moved = 0;
  for (const auto& [key, where] : home) {
    const auto now = *b.pick(pool, key);
    if (where != 1)
      moved += now != where;
    else
      EXPECT_NE(now, 1u);
  }
  EXPECT_EQ(moved, 0); // only the departed backend's prompts move
}

TEST(balancer, prefix_affinity_bounds_the_load_of_a_hot_prefix) {
  balancer b(balance_strategy::prefix_affinity);
  std::vector<backend_load> pool(4);
  const auto home = *b.pick(pool, "hot");
  pool[home].outstanding = 20; // far above the mean of the others
  EXPECT_NE(*b.pick(pool, "hot"), home);
}

} // namespace
} // namespace llmgate::upstream
