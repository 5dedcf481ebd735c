#include "upstream/router.hpp"

#include <gtest/gtest.h>
#include <set>
#include <string>
#include <vector>

namespace llmgate::upstream {
namespace {

// Backends 0, 1, 2 serve "big"; 1 and 3 serve "small".
const std::string k_config = R"(backends:
  - {name: a, url: "http://127.0.0.1:8001", models: [big]}
  - {name: b, url: "http://127.0.0.1:8002", models: [big, small]}
  - {name: c, url: "http://127.0.0.1:8003", models: [big]}
  - {name: d, url: "http://127.0.0.1:8004", models: [small]}
models:
  - {name: big, aliases: [big-alias]}
  - small
)";

class router_test : public ::testing::Test {
protected:
  std::shared_ptr<const control::config> cfg_ = control::load_config(k_config, "router_test.yaml");
  router router_{*cfg_};
};

TEST_F(router_test, pools_by_model) {
  EXPECT_EQ(router_.pool("big"), (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(router_.pool("small"), (std::vector<std::size_t>{1, 3}));
  EXPECT_EQ(router_.pool("big-alias"), (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_TRUE(router_.pool("unknown").empty());
}

TEST_F(router_test, round_robin_across_requests) {
  std::vector<std::size_t> picked;
  for (int request = 0; request < 6; ++request) {
    std::size_t cursor = 0;
    picked.push_back(router_.pick("big", 0, cursor));
  }
  EXPECT_EQ(picked, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
}

TEST_F(router_test, retries_go_to_the_next_backends) {
  std::size_t first_cursor = 0;
  (void)router_.pick("big", 0, first_cursor); // request 1 starts at backend 0

  std::size_t cursor = 0;
  const auto first = router_.pick("big", 0, cursor); // request 2 starts at backend 1
  const auto second = router_.pick("big", 1, cursor);
  const auto third = router_.pick("big", 2, cursor);
  EXPECT_EQ(first, 1u);
  EXPECT_EQ(second, 2u);
  EXPECT_EQ(third, 0u);
  EXPECT_EQ(router_.pick("big", 3, cursor), 1u); // wraps around the pool

  // Retries do not move the round robin: the next request starts at backend 2.
  std::size_t next = 0;
  EXPECT_EQ(router_.pick("big", 0, next), 2u);
}

TEST_F(router_test, every_attempt_of_a_request_tries_a_different_backend) {
  for (int request = 0; request < 5; ++request) {
    std::size_t cursor = 0;
    std::set<std::size_t> tried;
    for (std::size_t attempt = 0; attempt < 3; ++attempt) tried.insert(router_.pick("big", attempt, cursor));
    EXPECT_EQ(tried, (std::set<std::size_t>{0, 1, 2})) << "request " << request;
  }
}

TEST_F(router_test, models_have_their_own_positions) {
  std::size_t cursor = 0;
  EXPECT_EQ(router_.pick("big", 0, cursor), 0u);
  EXPECT_EQ(router_.pick("small", 0, cursor), 1u);
  EXPECT_EQ(router_.pick("small", 0, cursor), 3u);
  EXPECT_EQ(router_.pick("big", 0, cursor), 1u); // not moved by the "small" requests
  EXPECT_EQ(router_.pick("small", 0, cursor), 1u);
}

} // namespace
} // namespace llmgate::upstream
