// The admit script against a real redis-server: exact under a burst, all or
// nothing across rules, shadow rules, concurrency leases, the shaper — and
// the seed's sliding-window script on the same burst, to show what it got wrong.
#include "control/config.hpp"
#include "io/io.hpp"
#include "limit/redis_store.hpp"
#include "limit/rule_set.hpp"
#include "redis/client.hpp"
#include "redis_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <ctime>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <thread>

namespace llmgate::limit {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

using testing::run;

class redis_limits : public ::testing::Test {
protected:
  testing::redis_server server_;
  net::io_context ioc_;
  redis::client client_{ioc_.get_executor(), [this] {
                          redis::client_options o;
                          o.port = server_.port();
                          return o;
                        }()};
  std::shared_ptr<const control::config> cfg_;
  std::unique_ptr<rule_set> rules_;
  std::string sha_;
  int next_member_ = 0;

  void configure(const std::string& rules_yaml) {
    cfg_ = control::load_config("backends: [{name: a, url: \"http://127.0.0.1:1\", models: [m]}]\nlimits:\n  rules:\n" +
                                    rules_yaml,
                                "redis_limits_test.yaml");
    rules_ = std::make_unique<rule_set>(*cfg_);
    auto r = run(ioc_, client_.call(redis::command({"SCRIPT", "LOAD", admit_script()}), 5s));
    ASSERT_TRUE(r && r->type == redis::reply::kind::string) << (r ? r->text : r.error().message());
    sha_ = r->text;
  }

  request_facts facts(std::string_view ip, std::int64_t tokens = 1) {
    return {ip,    "ip:x", "default", "m", "/v1/chat/completions", [](std::string_view) { return std::string_view{}; },
            tokens};
  }

  // `n` admissions sent at once (pipelined), as a burst from many requests.
  std::vector<admission> burst(int n, const request_facts& f, nanos lease = 30s) {
    std::vector<std::optional<admission>> out(static_cast<std::size_t>(n));
    auto all = [&]() -> io::task<int> {
      int done = 0;
      for (int i = 0; i < n; ++i) {
        auto plan = rules_->plan(f);
        auto cmd = admit_command(sha_, "t:", *rules_, plan, fmt::format("req{}", next_member_++), lease);
        net::co_spawn(
            ioc_,
            [&, i, plan, cmd = std::move(cmd)]() mutable -> io::task<void> {
              auto r = co_await client_.call(std::move(cmd), 10s);
              std::optional<std::vector<decision>> v;
              if (r) v = decode_admit(*r, plan.size(), plan);
              if (v) {
                out[static_cast<std::size_t>(i)] = rules_->assemble(plan, *v);
              } else {
                ADD_FAILURE() << "unexpected reply: " << (r ? r->text : r.error().message());
              }
              ++done;
            },
            net::detached);
      }
      io::timer t(ioc_);
      while (done < n) {
        t.expires_after(1ms);
        co_await t.async_wait(io::use_task);
      }
      co_return done;
    };
    EXPECT_EQ(run(ioc_, all()), n);
    std::vector<admission> got;
    for (auto& a : out) {
      EXPECT_TRUE(a.has_value());
      if (a) got.push_back(std::move(*a));
    }
    return got;
  }

  static int allowed(const std::vector<admission>& v) {
    return static_cast<int>(std::count_if(v.begin(), v.end(), [](const admission& a) { return a.allowed; }));
  }
};

TEST_F(redis_limits, a_burst_of_100_against_30_per_minute_admits_exactly_30_per_algorithm) {
  const std::pair<const char*, const char*> cases[] = {{"sliding_log", "limit: 30/minute"},
                                                       {"gcra", "limit: 30/hour, burst: 30"},
                                                       {"fixed_window", "limit: 30/hour"},
                                                       {"token_bucket", "limit: 1/minute, burst: 30"},
                                                       {"leaky_bucket", "limit: 1/minute, burst: 30"},
                                                       {"sliding_window", "limit: 30/hour"}};
  int n = 0;
  for (const auto& [algorithm, limit] : cases) {
    configure(fmt::format("    - {{name: r{}, key: client_ip, algorithm: {}, {}}}\n", n, algorithm, limit));
    EXPECT_EQ(allowed(burst(100, facts(fmt::format("10.0.0.{}", ++n)))), 30) << algorithm;
  }
}

TEST_F(redis_limits, refusals_say_when_to_come_back) {
  configure(R"(    - {name: log, key: client_ip, algorithm: sliding_log, limit: 3/minute}
)");
  const auto got = burst(4, facts("10.1.0.1"));
  ASSERT_EQ(allowed(got), 3);
  const auto& refused = *std::find_if(got.begin(), got.end(), [](const admission& a) { return !a.allowed; });
  EXPECT_EQ(refused.refused_by->name, "log");
  EXPECT_GT(refused.refusal.retry_after, 59s);
  EXPECT_LE(refused.refusal.retry_after, 60s);
  EXPECT_EQ(refused.refusal.remaining, 0);
  EXPECT_EQ(refused.refusal.limit, 3);
}

TEST_F(redis_limits, a_request_refused_by_one_rule_consumes_nothing_from_the_others) {
  configure(R"(    - {name: loose, key: client_ip, algorithm: fixed_window, limit: 100/hour}
    - {name: tight, key: global, algorithm: fixed_window, limit: 2/hour}
)");
  const auto got = burst(10, facts("10.2.0.1"));
  EXPECT_EQ(allowed(got), 2);
  // loose counted only the two admitted, not the eight refused by tight.
  auto keys = run(ioc_, client_.call(redis::command({"KEYS", "t:{10.2.0.1}:loose:*"}), 5s));
  ASSERT_TRUE(keys && keys->elements.size() == 1u);
  auto count = run(ioc_, client_.call(redis::command({"HVALS", keys->elements[0].text}), 5s)); // window → count
  ASSERT_TRUE(count && count->elements.size() == 1u);
  EXPECT_EQ(count->elements[0].text, "2");
}

TEST_F(redis_limits, shadow_rules_count_and_report_but_never_refuse) {
  configure(R"(    - {name: watch, key: client_ip, algorithm: fixed_window, limit: 2/hour, mode: shadow}
)");
  const auto got = burst(5, facts("10.3.0.1"));
  EXPECT_EQ(allowed(got), 5);
  const auto reported =
      std::count_if(got.begin(), got.end(), [](const admission& a) { return !a.shadow_refusals.empty(); });
  EXPECT_EQ(reported, 3);
}

TEST_F(redis_limits, concurrency_leases_are_released_and_expire_when_their_holder_died) {
  configure(R"(    - {name: parallel, key: client_ip, algorithm: concurrency, limit: 3}
)");
  const auto f = facts("10.4.0.1");
  auto first = burst(5, f, 1500ms);
  EXPECT_EQ(allowed(first), 3);
  // One ends: its lease is removed, a new request fits.
  const auto ended = std::find_if(first.begin(), first.end(), [](const admission& a) { return a.allowed; });
  const auto member = [&] { // the member admit_command used for it: req<n> in order of sending
    return fmt::format("req{}", std::distance(first.begin(), ended));
  }();
  auto rel = run(ioc_, client_.call(redis::command({"SCRIPT", "LOAD", release_script()}), 5s));
  ASSERT_TRUE(rel && rel->type == redis::reply::kind::string);
  auto release = release_command(rel->text, "t:", *rules_, *ended, member);
  ASSERT_FALSE(release.empty());
  auto r = run(ioc_, client_.call(std::move(release), 5s));
  ASSERT_TRUE(r && r->integer == 1);
  EXPECT_EQ(allowed(burst(2, f, 1500ms)), 1);
  // Nobody releases the rest (their replica "died"): the leases run out after 1.5 s.
  std::this_thread::sleep_for(1700ms);
  EXPECT_EQ(allowed(burst(5, f, 1500ms)), 3);
}

TEST_F(redis_limits, token_costs_are_corrected_by_the_real_usage) {
  for (const auto* rule : {"{name: tok, key: client_ip, algorithm: fixed_window, limit: 100/hour, cost: tokens}",
                           "{name: tok, key: client_ip, algorithm: sliding_window, limit: 100/hour, cost: tokens}",
                           "{name: tok, key: client_ip, algorithm: gcra, limit: 100/hour, burst: 100, cost: tokens}"}) {
    SCOPED_TRACE(rule);
    configure(std::string("    - ") + rule + "\n");
    const auto ip = fmt::format("10.7.0.{}", next_member_);
    const auto member = fmt::format("req{}", next_member_);
    auto first = burst(1, facts(ip, 50)); // estimated at 50 tokens
    ASSERT_TRUE(first[0].allowed);
    auto sha = run(ioc_, client_.call(redis::command({"SCRIPT", "LOAD", adjust_script()}), 5s));
    ASSERT_TRUE(sha && sha->type == redis::reply::kind::string);
    auto refund = adjust_command(sha->text, "t:", *rules_, first[0], member, 10); // it used 10
    ASSERT_FALSE(refund.empty());
    auto r = run(ioc_, client_.call(std::move(refund), 5s));
    ASSERT_TRUE(r && !r->is_error()) << (r ? r->text : r.error().message());
    EXPECT_EQ(allowed(burst(1, facts(ip, 90))), 1) << "10 used + 90 = the limit";
    EXPECT_EQ(allowed(burst(1, facts(ip, 1))), 0);
  }
}

TEST_F(redis_limits, a_renewed_lease_outlives_its_first_term) {
  configure(R"(    - {name: parallel, key: client_ip, algorithm: concurrency, limit: 1}
)");
  const auto f = facts("10.6.0.1");
  auto first = burst(1, f, 1s);
  ASSERT_TRUE(first[0].allowed);
  auto sha = run(ioc_, client_.call(redis::command({"SCRIPT", "LOAD", renew_script()}), 5s));
  ASSERT_TRUE(sha && sha->type == redis::reply::kind::string);
  for (int i = 0; i < 3; ++i) { // renewed every 600 ms for 1.8 s: well past its 1 s term
    std::this_thread::sleep_for(600ms);
    auto cmd = renew_command(sha->text, "t:", *rules_, first[0], "req0", 1s);
    auto r = run(ioc_, client_.call(std::move(cmd), 5s));
    ASSERT_TRUE(r && r->type == redis::reply::kind::integer) << (r ? r->text : r.error().message());
  }
  EXPECT_EQ(allowed(burst(1, f, 1s)), 0) << "the renewed lease still holds the one slot";
  std::this_thread::sleep_for(1200ms); // no more renewals: it runs out
  EXPECT_EQ(allowed(burst(1, f, 1s)), 1);
}

TEST_F(redis_limits, a_slow_shaper_remembers_its_line_between_requests) {
  // 6/minute: one unit drains in 10 s. A request 1.5 s after a conforming one
  // must be held about 8.5 s — the line's state outlives the short gap.
  configure(R"(    - {name: slow, key: client_ip, algorithm: leaky_bucket, limit: 6/minute, burst: 5, shape: true}
)");
  const auto f = facts("10.8.0.1");
  ASSERT_EQ(burst(1, f)[0].delay, 0ns);
  std::this_thread::sleep_for(1500ms);
  const auto second = burst(1, f)[0];
  ASSERT_TRUE(second.allowed);
  EXPECT_GT(second.delay, 8s);
  EXPECT_LE(second.delay, 8600ms);
}

TEST_F(redis_limits, a_meter_admits_a_cost_equal_to_its_burst_whatever_the_rounding) {
  configure(R"(    - {name: thirds, key: client_ip, algorithm: gcra, limit: 3/second, burst: 2, cost: tokens}
)");
  EXPECT_EQ(allowed(burst(1, facts("10.8.1.1", 2))), 1) << "2 units fit a burst of 2 although 1/3 s is not whole µs";
  EXPECT_EQ(allowed(burst(1, facts("10.8.1.1", 1))), 0);
}

TEST_F(redis_limits, the_shaper_holds_the_excess_instead_of_refusing_it) {
  configure(R"(    - {name: smooth, key: client_ip, algorithm: leaky_bucket, limit: 10/second, burst: 5, shape: true}
)");
  const auto got = burst(8, facts("10.5.0.1"));
  // nginx's rule: one conforming, then up to `burst` held in line at 100 ms apart; the rest refused.
  EXPECT_EQ(allowed(got), 6);
  std::vector<nanos> delays;
  for (const auto& a : got)
    if (a.allowed) delays.push_back(a.delay);
  std::sort(delays.begin(), delays.end());
  EXPECT_EQ(delays.front(), 0ns);
  EXPECT_GT(delays.back(), 400ms);
  EXPECT_LE(delays.back(), 500ms);
}

// What an admit committed, the undo script (a refusal in another Redis
// Cluster slot) takes back exactly: afterwards the key behaves as if that
// request had never come, for every algorithm.
TEST_F(redis_limits, an_undo_leaves_every_algorithm_as_if_the_request_never_came) {
  configure(R"(    - {name: fw, key: client_ip, algorithm: fixed_window, limit: 3/hour}
    - {name: sw, key: client_ip, algorithm: sliding_window, limit: 3/hour}
    - {name: log, key: client_ip, algorithm: sliding_log, limit: 3/hour}
    - {name: tb, key: client_ip, algorithm: token_bucket, limit: 3/hour}
    - {name: gcra, key: client_ip, algorithm: gcra, limit: 3/hour}
    - {name: par, key: client_ip, algorithm: concurrency, limit: 3}
)");
  auto undo = run(ioc_, client_.call(redis::command({"SCRIPT", "LOAD", undo_script()}), 5s));
  ASSERT_TRUE(undo && undo->type == redis::reply::kind::string);
  // One admit that commits, then the undo of what it committed (at the admit's time).
  auto admit_then_undo = [&](const request_facts& f) {
    const auto plan = rules_->plan(f);
    auto r = run(ioc_, client_.call(admit_command(sha_, "t:", *rules_, plan, "undone", 30s), 5s));
    ASSERT_TRUE(r && r->type == redis::reply::kind::array);
    const auto verdicts = decode_admit(*r, plan.size(), plan);
    ASSERT_TRUE(verdicts && r->elements[0].integer == 1);
    auto back = run(
        ioc_,
        client_.call(undo_command(undo->text, "t:", *rules_, plan, *verdicts, "undone", r->elements[1].integer), 5s));
    ASSERT_TRUE(back && !back->is_error()) << (back ? back->text : back.error().message());
  };
  const auto f = facts("10.6.0.1");
  admit_then_undo(f);
  admit_then_undo(f); // twice: an undo must leave nothing behind either
  EXPECT_EQ(allowed(burst(5, f)), 3) << "every rule still has its whole 3";

  configure(R"(    - {name: smooth, key: client_ip, algorithm: leaky_bucket, limit: 10/second, burst: 5, shape: true}
)");
  const auto g = facts("10.6.0.2");
  admit_then_undo(g);
  const auto after = burst(1, g);
  ASSERT_EQ(allowed(after), 1);
  EXPECT_EQ(after[0].delay, 0ns) << "the line is drained again: the next request is the conforming one";
}

// The seed's script (its section 4.2), as printed there: every request of one
// second is the same ZSET member, so a burst inside one second is one entry.
constexpr std::string_view k_seed_script =
    "redis.call('zremrangebyscore', KEYS[1], 0, ARGV[1] - ARGV[2]) "
    "local current_count = redis.call('zcard', KEYS[1]) "
    "if current_count < tonumber(ARGV[3]) then redis.call('zadd', KEYS[1], ARGV[1], ARGV[1]) "
    "redis.call('expire', KEYS[1], ARGV[2]) return 1 else return 0 end";

TEST_F(redis_limits, the_seeds_script_admits_a_whole_burst_where_ours_admits_the_limit) {
  configure(R"(    - {name: per-ip, key: client_ip, algorithm: sliding_log, limit: 30/minute}
)");
  // Wait for the start of a second, so the seed's 100 calls share one timestamp.
  const auto start = std::time(nullptr);
  while (std::time(nullptr) == start) std::this_thread::sleep_for(1ms);
  const auto now = std::to_string(std::time(nullptr));
  int seed_admitted = 0;
  for (int i = 0; i < 100; ++i) {
    auto r =
        run(ioc_, client_.call(redis::command({"EVAL", k_seed_script, "1", "seed:10.9.0.1", now, "60", "30"}), 5s));
    ASSERT_TRUE(r && r->type == redis::reply::kind::integer) << (r ? r->text : r.error().message());
    seed_admitted += static_cast<int>(r->integer);
  }
  EXPECT_EQ(seed_admitted, 100) << "the seed's bug: one member per second";
  EXPECT_EQ(allowed(burst(100, facts("10.9.0.1"))), 30);
}

} // namespace
} // namespace llmgate::limit
