#include "upstream/router.hpp"

#include <gtest/gtest.h>
#include <map>
#include <string>
#include <vector>

namespace llmgate::upstream {
namespace {

using namespace std::chrono_literals;
using choice = router::choice;

std::chrono::nanoseconds at(std::chrono::nanoseconds t) { return t; }

// Backends 0, 1, 2 serve "big"; 1 and 3 serve "small".
const std::string k_config = R"(breaker: {failure_threshold: 2, recovery_timeout: 10s}
health: {unhealthy_threshold: 1, healthy_threshold: 1}
backends:
  - {name: a, url: "http://127.0.0.1:8001", models: [big], max_in_flight: 1, queue: {max: 1}}
  - {name: b, url: "http://127.0.0.1:8002", models: [big, small], max_in_flight: 1, queue: {max: 2}}
  - {name: c, url: "http://127.0.0.1:8003", models: [big], max_in_flight: 1, queue: {max: 0}}
  - {name: d, url: "http://127.0.0.1:8004", models: [small]}
models:
  - {name: big, aliases: [big-alias]}
  - {name: small, balance: least_busy}
)";

class router_test : public ::testing::Test {
protected:
  std::shared_ptr<const control::config> cfg_ = control::load_config(k_config, "router_test.yaml");
  std::vector<std::unique_ptr<backend_state>> states_ = [this] {
    std::vector<std::unique_ptr<backend_state>> out;
    for (const auto& b : cfg_->backends) out.push_back(std::make_unique<backend_state>(b));
    return out;
  }();
  router router_{*cfg_, states_};
  std::vector<std::size_t> none_;

  void finish(const choice& c) { states_[c.backend]->slots.release(); }
  void fail(std::size_t backend, std::chrono::nanoseconds now) {
    const auto p = states_[backend]->admit(now);
    ASSERT_TRUE(p);
    (void)states_[backend]->report(now, *p, {control::failure_connect, false, {}});
  }
};

TEST_F(router_test, pools_by_model) {
  EXPECT_EQ(router_.pool(0), (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(router_.pool(1), (std::vector<std::size_t>{1, 3}));
}

TEST_F(router_test, round_robin_over_backends_with_a_free_slot) {
  std::map<std::size_t, int> seen;
  for (int i = 0; i < 6; ++i) {
    const auto c = router_.choose(0, {}, none_, at(1s));
    ASSERT_EQ(c.kind, choice::slot);
    ++seen[c.backend];
    finish(c);
  }
  EXPECT_EQ(seen, (std::map<std::size_t, int>{{0, 2}, {1, 2}, {2, 2}}));
}

TEST_F(router_test, a_retry_goes_to_a_backend_not_yet_tried) {
  std::vector<std::size_t> tried;
  for (int i = 0; i < 3; ++i) {
    const auto c = router_.choose(0, {}, tried, at(1s));
    ASSERT_EQ(c.kind, choice::slot);
    EXPECT_EQ(std::count(tried.begin(), tried.end(), c.backend), 0);
    tried.push_back(c.backend);
    finish(c);
  }
  // All tried: none is asked twice.
  EXPECT_EQ(router_.choose(0, {}, tried, at(1s)).kind, choice::down);
}

TEST_F(router_test, unhealthy_and_open_backends_are_skipped_until_none_is_left) {
  (void)states_[0]->health_result(false); // unhealthy_threshold 1
  fail(1, at(1s));
  fail(1, at(1s)); // failure_threshold 2: open
  for (int i = 0; i < 4; ++i) {
    const auto c = router_.choose(0, {}, none_, at(2s));
    ASSERT_EQ(c.kind, choice::slot);
    EXPECT_EQ(c.backend, 2u);
    finish(c);
  }
  fail(2, at(2s));
  fail(2, at(2s));
  EXPECT_EQ(router_.choose(0, {}, none_, at(3s)).kind, choice::down);
  // Recovery: b's breaker goes half-open after 10 s and lets one probe through.
  const auto probe = router_.choose(0, {}, none_, at(11s + 1ms));
  ASSERT_EQ(probe.kind, choice::slot);
  EXPECT_EQ(probe.backend, 1u);
  // c stays open until 12 s; b's one probe is out: nothing is available (not "full").
  EXPECT_EQ(router_.choose(0, {}, none_, at(11s + 2ms)).kind, choice::down);
  finish(probe);
  EXPECT_TRUE(probe.half_opened);
  EXPECT_EQ(states_[1]->report(at(11s + 3ms), probe.permit, {0, false, 1ms}), backend_state::breaker_state::closed);
  const auto after = router_.choose(0, {}, none_, at(11s + 4ms));
  EXPECT_EQ(after.kind, choice::slot);
  EXPECT_EQ(after.backend, 1u);
  finish(after);
}

TEST_F(router_test, full_slots_send_requests_to_the_shortest_line_then_refuse) {
  std::vector<choice> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(router_.choose(0, {}, none_, at(1s)));
    ASSERT_EQ(held.back().kind, choice::slot);
  }
  // Every slot taken: lines. c has none; a holds 1, b holds 2.
  std::vector<std::shared_ptr<bulkhead::waiter>> waiters;
  std::map<std::size_t, int> lined;
  for (int i = 0; i < 3; ++i) {
    const auto c = router_.choose(0, {}, none_, at(1s));
    ASSERT_EQ(c.kind, choice::line);
    ++lined[c.backend];
    waiters.push_back(std::make_shared<bulkhead::waiter>());
    ASSERT_EQ(states_[c.backend]->slots.acquire(waiters.back()), bulkhead::outcome::queued);
  }
  EXPECT_EQ(lined, (std::map<std::size_t, int>{{0, 1}, {1, 2}}));
  EXPECT_EQ(router_.choose(0, {}, none_, at(1s)).kind, choice::busy);
}

TEST_F(router_test, least_busy_follows_the_scraped_engine_queue) {
  states_[1]->set_engine({5.0, 10.0, 0.5});
  states_[3]->set_engine({0.0, 10.0, 0.9});
  for (int i = 0; i < 3; ++i) {
    const auto c = router_.choose(1, {}, none_, at(1s));
    ASSERT_EQ(c.kind, choice::slot);
    EXPECT_EQ(c.backend, 3u);
    finish(c);
  }
  states_[3]->set_engine({7.0, 10.0, 0.9});
  const auto c = router_.choose(1, {}, none_, at(1s));
  EXPECT_EQ(c.backend, 1u);
  finish(c);
}

} // namespace
} // namespace llmgate::upstream
