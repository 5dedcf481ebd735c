// Redis Cluster against a real three-master cluster on loopback: our slot
// function against CLUSTER KEYSLOT, calls routed to the owners, MOVED and
// ASK followed during a live slot migration, and the limiter exact across
// replicas when a request's rules land in different slots (reserve, then
// take back what a refusal elsewhere left counted).
#include "control/config.hpp"
#include "io/io.hpp"
#include "limit/redis_limiter.hpp"
#include "limit/redis_store.hpp"
#include "limit/rule_set.hpp"
#include "observe/metrics.hpp"
#include "redis/cluster.hpp"
#include "redis/slot.hpp"
#include "redis_cluster.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <random>
#include <set>

namespace llmgate::redis {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;
using testing::run;

// One cluster for the whole suite: creating one takes a few seconds.
class redis_cluster_test : public ::testing::Test {
protected:
  static void SetUpTestSuite() { cluster_ = new testing::redis_cluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static testing::redis_cluster* cluster_;

  std::vector<std::pair<std::string, std::uint16_t>> seeds(std::size_t n = 1) const {
    std::vector<std::pair<std::string, std::uint16_t>> out;
    for (std::size_t i = 0; i < n; ++i) out.emplace_back("127.0.0.1", cluster_->ports()[i]);
    return out;
  }
};

testing::redis_cluster* redis_cluster_test::cluster_ = nullptr;

TEST_F(redis_cluster_test, our_slots_are_the_clusters_slots) {
  std::mt19937 rng(7);
  const auto port = cluster_->ports().front();
  for (int i = 0; i < 40; ++i) {
    std::string key = fmt::format("k{}-{}", i, rng());
    if (i % 3 == 0) key = fmt::format("llmgate:{{caller-{}}}:rule:meter", rng() % 1000);
    EXPECT_EQ(std::to_string(key_slot(key)), testing::redis_cluster::cli(port, "CLUSTER KEYSLOT '" + key + "'")) << key;
  }
}

TEST_F(redis_cluster_test, calls_go_to_the_master_that_owns_their_slot) {
  net::io_context ioc;
  cluster c(ioc.get_executor(), {}, seeds());
  ASSERT_TRUE(c.is_cluster());
  auto all = [&]() -> io::task<int> {
    int ok = 0;
    for (int i = 0; i < 300; ++i) {
      const auto key = fmt::format("route:{}", i);
      auto set = command({"SET", key, std::to_string(i)});
      auto r = co_await c.call(key_slot(key), std::move(set), 2s);
      if (r && r->type == reply::kind::status) ++ok;
    }
    co_return ok;
  };
  EXPECT_EQ(run(ioc, all()), 300);
  // Every master holds its share (none got everything), and each key is where its slot says.
  int total = 0;
  for (const auto port : cluster_->ports()) {
    const int n = std::stoi(testing::redis_cluster::cli(port, "DBSIZE"));
    EXPECT_GT(n, 0) << port;
    total += n;
  }
  EXPECT_EQ(total, 300);
  const auto owner = cluster_->owner(key_slot("route:7"));
  EXPECT_EQ(testing::redis_cluster::cli(owner, "GET route:7"), "7");
  c.close();
  for (const auto port : cluster_->ports()) (void)testing::redis_cluster::cli(port, "FLUSHALL");
}

TEST_F(redis_cluster_test, ask_and_moved_are_followed_while_a_slot_migrates) {
  const std::string key = "migrating-key";
  const int slot = key_slot(key);
  const auto from = cluster_->owner(slot);
  std::uint16_t to = 0;
  for (const auto p : cluster_->ports())
    if (p != from) to = p;
  const auto from_id = testing::redis_cluster::cli(from, "CLUSTER MYID");
  const auto to_id = testing::redis_cluster::cli(to, "CLUSTER MYID");

  net::io_context ioc;
  cluster c(ioc.get_executor(), {}, seeds(3));
  auto get = [&]() -> io::task<std::string> {
    auto cmd = command({"GET", key});
    auto r = co_await c.call(static_cast<std::uint16_t>(slot), std::move(cmd), 2s);
    co_return r ? r->text : "error: " + r.error().message();
  };
  auto set = command({"SET", key, "before"});
  ASSERT_TRUE(run(ioc, c.call(static_cast<std::uint16_t>(slot), std::move(set), 2s)));
  // Let the first call's slot-map refresh finish, so the client knows `from` owns the slot.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(run(ioc, get()), "before");
  const auto before = c.redirections();

  // Half-way through a migration: the key already moved, the slot not yet.
  const auto s = std::to_string(slot);
  ASSERT_EQ(testing::redis_cluster::cli(to, "CLUSTER SETSLOT " + s + " IMPORTING " + from_id), "OK");
  ASSERT_EQ(testing::redis_cluster::cli(from, "CLUSTER SETSLOT " + s + " MIGRATING " + to_id), "OK");
  ASSERT_EQ(testing::redis_cluster::cli(from, "MIGRATE 127.0.0.1 " + std::to_string(to) + " " + key + " 0 5000"), "OK");
  EXPECT_EQ(run(ioc, get()), "before") << "an ASK to the importing node, with ASKING";
  EXPECT_EQ(c.redirections(), before + 1);

  // The migration ends: the slot is the other master's.
  for (const auto p : cluster_->ports())
    ASSERT_EQ(testing::redis_cluster::cli(p, "CLUSTER SETSLOT " + s + " NODE " + to_id), "OK");
  EXPECT_EQ(run(ioc, get()), "before") << "a MOVED, followed";
  EXPECT_GE(c.redirections(), before + 2);
  const auto after_moved = c.redirections();
  EXPECT_EQ(run(ioc, get()), "before");
  EXPECT_EQ(c.redirections(), after_moved) << "the map learnt from the MOVED: no more redirections";
  c.close();
  // Give the slot back, so other tests see the cluster as created.
  ASSERT_EQ(testing::redis_cluster::cli(from, "CLUSTER SETSLOT " + s + " IMPORTING " + to_id), "OK");
  ASSERT_EQ(testing::redis_cluster::cli(to, "CLUSTER SETSLOT " + s + " MIGRATING " + from_id), "OK");
  ASSERT_EQ(testing::redis_cluster::cli(to, "MIGRATE 127.0.0.1 " + std::to_string(from) + " " + key + " 0 5000"), "OK");
  for (const auto p : cluster_->ports())
    ASSERT_EQ(testing::redis_cluster::cli(p, "CLUSTER SETSLOT " + s + " NODE " + from_id), "OK");
  cluster_->settle();
  for (const auto port : cluster_->ports()) (void)testing::redis_cluster::cli(port, "FLUSHALL");
}

// The limiter as three replicas would run it (three links), all on one loop.
class cluster_limits : public redis_cluster_test {
protected:
  std::shared_ptr<const control::config> cfg_;
  std::shared_ptr<limit::rule_set> rules_;
  observe::registry metrics_;
  std::unique_ptr<limit::redis_limiter> limiter_;
  net::io_context ioc_;
  std::vector<std::unique_ptr<limit::redis_limiter::link>> links_;

  void configure(const std::string& rules_yaml) {
    std::string seeds_yaml;
    for (const auto p : cluster_->ports()) seeds_yaml += fmt::format("\"127.0.0.1:{}\", ", p);
    cfg_ = control::load_config(
        "backends: [{name: a, url: \"http://127.0.0.1:1\", models: [m]}]\n"
        "redis: {cluster: [" +
            seeds_yaml + "], timeout: 2s, on_failure: deny}\nlimits:\n  store: redis\n  rules:\n" + rules_yaml,
        "cluster_limits.yaml");
    rules_ = std::make_shared<limit::rule_set>(*cfg_);
    limiter_ = std::make_unique<limit::redis_limiter>(*cfg_, metrics_);
    for (int i = 0; i < 3; ++i) links_.push_back(limiter_->connect(ioc_.get_executor()));
  }

  void TearDown() override {
    for (auto& l : links_) l->redis.close();
    for (const auto port : cluster_->ports()) (void)testing::redis_cluster::cli(port, "FLUSHALL");
  }

  static limit::request_facts facts(std::string_view ip) {
    return {ip, "ip:x", "default", "m", "/v1/chat/completions", [](std::string_view) { return std::string_view{}; }, 1};
  }

  // n admissions per caller, spread over the three links, all in flight at once; the admitted ones per caller.
  std::map<std::string, int> burst(const std::vector<std::string>& callers, int n) {
    std::map<std::string, int> admitted;
    int done = 0, unavailable = 0;
    auto all = [&]() -> io::task<int> {
      int k = 0;
      for (int i = 0; i < n; ++i)
        for (const auto& caller : callers)
          net::co_spawn(
              ioc_,
              [&, caller, link = links_[static_cast<std::size_t>(k++ % 3)].get()]() -> io::task<void> {
                auto d = co_await limiter_->admit(*link, rules_, facts(caller), 0ns);
                if (d.unavailable) ++unavailable;
                if (d.a.allowed) ++admitted[caller];
                limiter_->release(*link, d);
                ++done;
              },
              net::detached);
      io::timer t(ioc_);
      const int total = n * static_cast<int>(callers.size());
      while (done < total) {
        t.expires_after(1ms);
        co_await t.async_wait(io::use_task);
      }
      t.expires_after(100ms); // the releases and take-backs sent behind the decisions land
      co_await t.async_wait(io::use_task);
      co_return done;
    };
    run(ioc_, all());
    EXPECT_EQ(unavailable, 0) << "every decision was Redis's";
    return admitted;
  }
};

TEST_F(cluster_limits, three_replicas_admit_exactly_the_limit) {
  configure("    - {name: per-ip, key: client_ip, algorithm: sliding_log, limit: 30/hour}\n");
  const auto got = burst({"10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"}, 60);
  for (const auto& ip : {"10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"}) EXPECT_EQ(got.at(ip), 30) << ip;
}

TEST_F(cluster_limits, masters_that_lost_the_scripts_are_sent_them_again) {
  configure("    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: 5/hour}\n"
            "    - {name: global, key: global, algorithm: fixed_window, limit: 1000/hour}\n");
  EXPECT_EQ(burst({"10.7.0.1"}, 2).at("10.7.0.1"), 2);
  for (const auto port : cluster_->ports()) ASSERT_EQ(testing::redis_cluster::cli(port, "SCRIPT FLUSH"), "OK");
  // Every master answers NOSCRIPT now; EVAL carries the source to each (unavailable stays 0 in burst()).
  EXPECT_EQ(burst({"10.7.0.1"}, 5).at("10.7.0.1"), 3);
}

TEST_F(cluster_limits, a_refusal_in_one_slot_takes_back_what_the_others_counted) {
  // per-ip and global live in different slots (asserted below): each request is two calls.
  configure("    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: 10/hour}\n"
            "    - {name: global, key: global, algorithm: fixed_window, limit: 25/hour}\n"
            "    - {name: par, key: global, algorithm: concurrency, limit: 1000}\n");
  const std::vector<std::string> ips{"10.8.0.1", "10.8.0.2", "10.8.0.3"};
  for (const auto& ip : ips) ASSERT_NE(key_slot(ip), key_slot("*"));
  // Callers one after another, five requests at a time: the first two take
  // 10 each, the third the 5 left of the global 25. Without the take-back,
  // the requests per-ip refused would have used up the global limit and the
  // later callers would get nothing. (Five at a time keeps clear of the
  // window in which a reservation another slot will refuse is still
  // counted: a larger burst may be refused there, never admitted beyond.)
  int total = 0;
  for (const auto& ip : ips)
    for (int chunk = 0; chunk < 6; ++chunk) {
      const auto got = burst({ip}, 5);
      total += got.contains(ip) ? got.at(ip) : 0;
    }
  EXPECT_EQ(total, 25);
  auto& rollbacks = metrics_.counter("llmgate_redis_rollbacks_total", "", {}).with({});
  EXPECT_EQ(rollbacks.value(), 20u + 20u + 25u);
  const auto lease_key = limit::state_key(cfg_->redis.key_prefix, rules_->rule(2), "");
  EXPECT_EQ(testing::redis_cluster::cli(cluster_->owner(key_slot(lease_key)), "ZCARD '" + lease_key + "'"), "0");
}

} // namespace
} // namespace llmgate::redis
