// The Redis client against a real redis-server: pipelining, timeouts that
// leave the pipeline in step, reconnection, AUTH and SELECT.
#include "io/io.hpp"
#include "redis/client.hpp"
#include "redis_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <cstdlib>
#include <gtest/gtest.h>
#include <thread>

namespace llmgate::redis {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;
using result = boost::system::result<reply>;

using testing::run;

client_options at(const testing::redis_server& s) {
  client_options o;
  o.port = s.port();
  return o;
}

TEST(redis_client, commands_round_trip) {
  testing::redis_server server;
  net::io_context ioc;
  client c(ioc.get_executor(), at(server));
  auto r = run(ioc, c.call(command({"PING"}), 2s));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->text, "PONG");
  EXPECT_TRUE(run(ioc, c.call(command({"SET", "k", "v\r\nw"}), 2s)));
  r = run(ioc, c.call(command({"GET", "k"}), 2s));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->text, "v\r\nw");
  r = run(ioc, c.call(command({"NOSUCHCOMMAND"}), 2s));
  ASSERT_TRUE(r); // an error reply is a reply
  EXPECT_TRUE(r->is_error());
}

TEST(redis_client, a_thousand_concurrent_calls_are_pipelined_and_answered_in_order) {
  testing::redis_server server;
  net::io_context ioc;
  client c(ioc.get_executor(), at(server));
  std::vector<std::int64_t> got(1000, -1);
  auto all = [&]() -> io::task<int> {
    int done = 0;
    for (int i = 0; i < 1000; ++i)
      net::co_spawn(
          ioc,
          [&, i]() -> io::task<void> {
            auto incr = command({"INCR", "n"}); // built outside co_await (g++ 12, see ARCHITECTURE.md)
            auto r = co_await c.call(std::move(incr), 5s);
            if (r && r->type == reply::kind::integer) got[static_cast<std::size_t>(i)] = r->integer;
            ++done;
          },
          net::detached);
    io::timer t(ioc);
    while (done < 1000) {
      t.expires_after(1ms);
      co_await t.async_wait(io::use_task);
    }
    co_return done;
  };
  EXPECT_EQ(run(ioc, all()), 1000);
  std::vector<std::int64_t> sorted = got;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<std::size_t>(i)], i + 1);
  EXPECT_EQ(got, sorted) << "calls issued in order are answered in order";
}

TEST(redis_client, a_timed_out_call_leaves_the_pipeline_in_step) {
  testing::redis_server server({"--enable-debug-command", "yes"});
  net::io_context ioc;
  client c(ioc.get_executor(), at(server));
  ASSERT_TRUE(run(ioc, c.call(command({"SET", "k", "fresh"}), 2s)));
  auto both = [&]() -> io::task<std::pair<result, result>> {
    auto sleep = command({"DEBUG", "SLEEP", "0.3"}); // built outside co_await (g++ 12)
    auto ping = command({"PING"});
    std::optional<result> slow;
    net::co_spawn(
        ioc, [&]() -> io::task<void> { slow = co_await c.call(std::move(sleep), 5s); }, net::detached);
    io::timer t(ioc, 30ms); // the server is asleep by now
    co_await t.async_wait(io::use_task);
    auto quick = co_await c.call(std::move(ping), 20ms);
    while (!slow) {
      t.expires_after(5ms);
      co_await t.async_wait(io::use_task);
    }
    co_return std::pair{std::move(*slow), std::move(quick)};
  };
  auto [slow, quick] = run(ioc, both());
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->text, "OK");
  ASSERT_FALSE(quick);
  EXPECT_EQ(quick.error(), make_error_code(client_error::timeout));
  // The late PONG is matched to the timed-out call and dropped: the next reply is the next call's.
  auto r = run(ioc, c.call(command({"GET", "k"}), 2s));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->text, "fresh");
}

TEST(redis_client, reconnects_after_the_server_comes_back) {
  testing::redis_server server;
  net::io_context ioc;
  client c(ioc.get_executor(), at(server));
  ASSERT_TRUE(run(ioc, c.call(command({"PING"}), 2s)));
  server.kill();
  auto down = run(ioc, c.call(command({"PING"}), 2s));
  EXPECT_FALSE(down) << "a dead server fails calls at once, it does not hang them";
  server.restart();
  // Reconnection backs off: within a few attempts it is back.
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    auto r = run(ioc, c.call(command({"PING"}), 500ms));
    back = r && r->text == "PONG";
    if (!back) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(back);
  EXPECT_TRUE(c.connected());
}

TEST(redis_client, auth_and_select_on_connect) {
  testing::redis_server server({"--requirepass", "s3cret"});
  net::io_context ioc;
  auto o = at(server);
  o.password = "s3cret";
  o.database = 3;
  client c(ioc.get_executor(), o);
  ASSERT_TRUE(run(ioc, c.call(command({"SET", "where", "db3"}), 2s)));
  auto o0 = o;
  o0.database = 0;
  client other(ioc.get_executor(), o0);
  auto r = run(ioc, other.call(command({"GET", "where"}), 2s));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->is_nil()) << "the key went to database 3, not 0";

  auto wrong = o;
  wrong.password = "nope";
  client bad(ioc.get_executor(), wrong);
  auto refused = run(ioc, bad.call(command({"GET", "where"}), 2s));
  EXPECT_TRUE(!refused || refused->is_error()) << "a wrong password never reads data";
}

} // namespace
} // namespace llmgate::redis

#include <fstream>

namespace llmgate::redis {
namespace {

TEST(redis_client, follows_a_sentinel_failover_to_the_new_master) {
  testing::redis_server master({"--repl-diskless-sync-delay", "0"}); // the replica syncs at once
  testing::redis_server replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  const auto conf = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/llmgate-sentinel-" +
                    std::to_string(::getpid()) + ".conf";
  {
    std::ofstream f(conf);
    f << "sentinel monitor mymaster 127.0.0.1 " << master.port() << " 1\n"
      << "sentinel down-after-milliseconds mymaster 500\n"
      << "sentinel failover-timeout mymaster 3000\n";
  }
  testing::redis_server sentinel({"--sentinel"}, conf);
  net::io_context ioc;
  client_options o;
  o.host = "127.0.0.1";
  o.port = 1; // a wrong guess: the sentinel's answer is what counts
  o.sentinels = {{"127.0.0.1", sentinel.port()}};
  o.master_name = "mymaster";
  client c(ioc.get_executor(), o);
  // The replica must have synced before the master can die without losing the key.
  bool synced = false;
  for (int i = 0; i < 200 && !synced; ++i) {
    auto r = run(ioc, c.call(command({"SET", "before", "1"}), 2s));
    synced = r && !r->is_error();
    if (!synced) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(synced) << "no master through the sentinel";
  auto wait = run(ioc, c.call(command({"WAIT", "1", "8000"}), 10s));
  ASSERT_TRUE(wait && wait->integer == 1) << "the replica did not acknowledge";

  master.kill();
  bool moved = false;
  for (int i = 0; i < 300 && !moved; ++i) { // failover within 15 s
    auto r = run(ioc, c.call(command({"SET", "after", "2"}), 1s));
    moved = r && r->type == reply::kind::status;
    if (!moved) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(moved) << "the client did not follow the failover";
  client_options direct;
  direct.port = replica.port();
  client promoted(ioc.get_executor(), direct);
  auto v = run(ioc, promoted.call(command({"GET", "after"}), 2s));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->text, "2") << "the write went to the promoted replica";
  EXPECT_EQ(run(ioc, promoted.call(command({"GET", "before"}), 2s))->text, "1");
  std::remove(conf.c_str());
}

} // namespace
} // namespace llmgate::redis
