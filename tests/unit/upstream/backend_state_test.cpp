#include "upstream/backend_state.hpp"

#include <gtest/gtest.h>
#include <optional>

namespace llmgate::upstream {
namespace {

using namespace std::chrono_literals;
using breaker_state = backend_state::breaker_state;

// backend_state keeps a reference to its config: every test holds the config as long as the state.
control::backend_config make_config() {
  control::backend_config c;
  c.name = "gpu-a";
  c.url = "http://127.0.0.1:8000";
  c.models = {"m"};
  c.breaker.failure_threshold = 3;
  c.breaker.recovery_timeout = 10s;
  c.health.healthy_threshold = 2;
  c.health.unhealthy_threshold = 3;
  return c;
}

call_result failed(unsigned kind) { return {kind, false, 1ms}; }
call_result succeeded() { return {0, false, 1ms}; }
call_result ignored() { return {0, true, {}}; }

// One call in the breaker's present era: admitted, then its outcome reported.
std::optional<breaker_state> tell(backend_state& s, std::chrono::nanoseconds now, const call_result& r) {
  const auto p = s.admit(now);
  return s.report(now, p.value_or(backend_state::permit{}), r);
}

TEST(backend_state, starts_healthy_and_routable) {
  const auto cfg = make_config();
  backend_state s{cfg};
  EXPECT_TRUE(s.healthy());
  EXPECT_TRUE(s.routable(0s));
  EXPECT_EQ(s.breaker(0s), breaker_state::closed);
  EXPECT_EQ(&s.config(), &cfg);
}

TEST(backend_state, unhealthy_only_after_the_threshold_of_consecutive_failed_checks) {
  const auto cfg = make_config(); // unhealthy_threshold 3
  backend_state s{cfg};
  EXPECT_EQ(s.health_result(false), std::nullopt);
  EXPECT_EQ(s.health_result(false), std::nullopt);
  EXPECT_TRUE(s.healthy());
  EXPECT_EQ(s.health_result(false), std::optional<bool>(false));
  EXPECT_FALSE(s.healthy());
  EXPECT_FALSE(s.routable(0s));
  EXPECT_EQ(s.health_result(false), std::nullopt); // no change, nothing to report
  EXPECT_FALSE(s.healthy());
}

TEST(backend_state, a_passed_check_resets_the_failure_count) {
  const auto cfg = make_config();
  backend_state s{cfg};
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(s.health_result(false), std::nullopt);
    EXPECT_EQ(s.health_result(false), std::nullopt);
    EXPECT_EQ(s.health_result(true), std::nullopt); // still healthy: no change
  }
  EXPECT_TRUE(s.healthy());
}

TEST(backend_state, healthy_again_only_after_the_threshold_of_consecutive_passes) {
  const auto cfg = make_config(); // healthy_threshold 2
  backend_state s{cfg};
  for (int i = 0; i < 3; ++i) (void)s.health_result(false);
  ASSERT_FALSE(s.healthy());

  EXPECT_EQ(s.health_result(true), std::nullopt);
  EXPECT_EQ(s.health_result(false), std::nullopt); // the pass streak starts over
  EXPECT_EQ(s.health_result(true), std::nullopt);
  EXPECT_FALSE(s.healthy());
  EXPECT_EQ(s.health_result(true), std::optional<bool>(true));
  EXPECT_TRUE(s.healthy());
  EXPECT_TRUE(s.routable(0s));
  EXPECT_EQ(s.health_result(true), std::nullopt);
}

TEST(backend_state, failures_the_breaker_does_not_count_leave_it_closed) {
  const auto cfg = make_config(); // the default failure_on has no status_429
  ASSERT_EQ(cfg.breaker.failure_on & control::failure_429, 0u);
  backend_state s{cfg};
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(tell(s, 1s, failed(control::failure_429)), std::nullopt) << i;
  }
  EXPECT_EQ(s.breaker(1s), breaker_state::closed);
  EXPECT_TRUE(s.routable(1s));
  EXPECT_EQ(s.breaker_opened_total(), 0u);
}

TEST(backend_state, consecutive_counted_failures_open_the_breaker) {
  const auto cfg = make_config(); // failure_threshold 3, recovery_timeout 10s
  backend_state s{cfg};
  EXPECT_EQ(tell(s, 1s, failed(control::failure_connect)), std::nullopt);
  EXPECT_EQ(tell(s, 1s, failed(control::failure_timeout)), std::nullopt);
  EXPECT_EQ(tell(s, 2s, failed(control::failure_5xx)), std::optional<breaker_state>(breaker_state::open));
  EXPECT_EQ(s.breaker(2s), breaker_state::open);
  EXPECT_FALSE(s.routable(3s));
  EXPECT_FALSE(s.admit(3s));
  EXPECT_EQ(s.breaker_retry_after(5s), 7s);
  EXPECT_EQ(s.breaker_opened_total(), 1u);
  EXPECT_TRUE(s.healthy()); // the breaker and the health checks are separate verdicts
}

TEST(backend_state, a_success_between_failures_keeps_it_closed) {
  auto cfg = make_config();
  cfg.breaker.failure_rate_threshold = 1.0; // off: only the consecutive count is under test
  backend_state s{cfg};
  for (int round = 0; round < 5; ++round) {
    (void)tell(s, 1s, failed(control::failure_connect));
    (void)tell(s, 1s, failed(control::failure_interrupted));
    EXPECT_EQ(tell(s, 1s, succeeded()), std::nullopt);
  }
  EXPECT_EQ(s.breaker(1s), breaker_state::closed);
}

TEST(backend_state, after_the_recovery_timeout_one_probe_goes_and_ignored_gives_it_back) {
  const auto cfg = make_config(); // half_open_probes 1
  backend_state s{cfg};
  for (int i = 0; i < 3; ++i) (void)tell(s, 0s, failed(control::failure_connect));
  ASSERT_EQ(s.breaker(0s), breaker_state::open);
  EXPECT_FALSE(s.admit(9s));

  EXPECT_EQ(s.breaker(10s), breaker_state::half_open);
  EXPECT_TRUE(s.routable(10s));
  const auto probe = s.admit(10s);
  ASSERT_TRUE(probe);
  EXPECT_TRUE(probe->probe);
  EXPECT_FALSE(s.admit(10s)); // no second one while it runs

  // The client left mid-probe: no verdict, the probe slot is free again, the breaker stays half-open.
  EXPECT_EQ(s.report(11s, *probe, ignored()), std::nullopt);
  EXPECT_EQ(s.breaker(11s), breaker_state::half_open);
  const auto second = s.admit(11s);
  ASSERT_TRUE(second);

  EXPECT_EQ(s.report(12s, *second, succeeded()), std::optional<breaker_state>(breaker_state::closed));
  EXPECT_TRUE(s.routable(12s)); // closed again: routable without the breaker's lock
  EXPECT_TRUE(s.admit(12s));
  EXPECT_TRUE(s.admit(12s)); // closed: no probe limit
  EXPECT_EQ(s.breaker_opened_total(), 1u);
}

TEST(backend_state, a_failed_probe_opens_it_again) {
  const auto cfg = make_config();
  backend_state s{cfg};
  for (int i = 0; i < 3; ++i) (void)tell(s, 0s, failed(control::failure_connect));
  const auto probe = s.admit(10s);
  ASSERT_TRUE(probe);
  EXPECT_EQ(s.report(10s, *probe, failed(control::failure_timeout)), std::optional<breaker_state>(breaker_state::open));
  EXPECT_FALSE(s.routable(15s));
  EXPECT_EQ(s.breaker_retry_after(15s), 5s);
  EXPECT_EQ(s.breaker_opened_total(), 2u);
}

TEST(backend_state, failure_on_decides_what_counts) {
  auto cfg = make_config();
  cfg.breaker.failure_on = control::failure_429;
  backend_state s{cfg};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(tell(s, 1s, failed(control::failure_connect)), std::nullopt);
  EXPECT_EQ(s.breaker(1s), breaker_state::closed);
  (void)tell(s, 1s, failed(control::failure_429));
  (void)tell(s, 1s, failed(control::failure_429));
  EXPECT_EQ(tell(s, 1s, failed(control::failure_429)), std::optional<breaker_state>(breaker_state::open));
}

TEST(backend_state, a_disabled_breaker_never_opens) {
  auto cfg = make_config();
  cfg.breaker.enabled = false;
  backend_state s{cfg};
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(tell(s, 1s, failed(control::failure_connect)), std::nullopt);
  }
  EXPECT_EQ(s.breaker(1s), breaker_state::closed);
  EXPECT_TRUE(s.routable(1s));
  EXPECT_TRUE(s.admit(2s));
  EXPECT_EQ(s.breaker_opened_total(), 0u);
}

TEST(backend_state, slots_follow_the_configured_cap_and_line) {
  auto cfg = make_config();
  cfg.max_in_flight = 2;
  cfg.queue_max = 1;
  backend_state s{cfg};
  EXPECT_TRUE(s.slots.capped());
  EXPECT_TRUE(s.slots.try_acquire());
  EXPECT_TRUE(s.slots.try_acquire());
  EXPECT_FALSE(s.slots.try_acquire());
  auto w1 = std::make_shared<bulkhead::waiter>();
  auto w2 = std::make_shared<bulkhead::waiter>();
  EXPECT_EQ(s.slots.acquire(w1), bulkhead::outcome::queued);
  EXPECT_EQ(s.slots.acquire(w2), bulkhead::outcome::full);
  EXPECT_FALSE(s.slots.leave(w1));
}

TEST(backend_state, scraped_figures_round_trip_and_clear) {
  const auto cfg = make_config();
  backend_state s{cfg};
  EXPECT_FALSE(s.engine().waiting.has_value()); // nothing scraped yet

  s.set_engine({3.0, 5.0, 0.4});
  auto e = s.engine();
  EXPECT_EQ(e.waiting, 3.0);
  EXPECT_EQ(e.running, 5.0);
  EXPECT_EQ(e.kv_usage, 0.4);

  observe::gpu_figures g;
  g.util_percent = 55.0;
  g.temperature_c = 70.0;
  s.set_gpu(g);

  s.clear_engine(); // a failed scrape: stale figures must not steer traffic
  e = s.engine();
  EXPECT_FALSE(e.waiting.has_value());
  EXPECT_FALSE(e.running.has_value());
  EXPECT_FALSE(e.kv_usage.has_value());
  EXPECT_EQ(s.gpu().util_percent, 55.0); // the GPU figures are kept
  EXPECT_EQ(s.gpu().temperature_c, 70.0);
  EXPECT_FALSE(s.gpu().memory_used_mib.has_value());
}

} // namespace
} // namespace llmgate::upstream

namespace llmgate::upstream {
namespace {

TEST(backend_state, an_outcome_from_before_the_breaker_changed_state_is_ignored) {
  const auto cfg = make_config(); // failure_threshold 3, recovery_timeout 10s, one probe
  backend_state s{cfg};
  const auto old_call = s.admit(0s); // a long stream admitted while closed
  ASSERT_TRUE(old_call);
  for (int i = 0; i < 3; ++i) (void)tell(s, 1s, failed(control::failure_connect));
  ASSERT_EQ(s.breaker(1s), breaker_state::open);
  const auto probe = s.admit(11s);
  ASSERT_TRUE(probe);
  // The old stream ends well after the outage: it neither closes the breaker nor frees the probe's place.
  EXPECT_EQ(s.report(12s, *old_call, succeeded()), std::nullopt);
  EXPECT_EQ(s.breaker(12s), breaker_state::half_open);
  EXPECT_FALSE(s.admit(12s));
  EXPECT_EQ(s.report(13s, *old_call, failed(control::failure_5xx)), std::nullopt);
  EXPECT_EQ(s.breaker(13s), breaker_state::half_open);
  EXPECT_EQ(s.report(14s, *probe, succeeded()), std::optional<breaker_state>(breaker_state::closed));
}

TEST(backend_state, admit_says_when_it_moved_the_breaker_to_half_open) {
  const auto cfg = make_config();
  backend_state s{cfg};
  for (int i = 0; i < 3; ++i) (void)tell(s, 0s, failed(control::failure_connect));
  bool half_opened = true;
  EXPECT_FALSE(s.admit(5s, &half_opened));
  EXPECT_FALSE(half_opened);
  const auto probe = s.admit(10s, &half_opened);
  ASSERT_TRUE(probe);
  EXPECT_TRUE(half_opened);
  (void)s.report(10s, *probe, ignored());
  EXPECT_TRUE(s.admit(11s, &half_opened));
  EXPECT_FALSE(half_opened) << "already half-open";
}

} // namespace
} // namespace llmgate::upstream
