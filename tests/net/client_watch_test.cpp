// server::late_watch and its watch_roster between two real sockets on
// loopback: a watch ended before the roster's `after` never starts, so ending
// it leaves nothing for the loop to run (no cancelled peek's completion); one
// that lives longer starts then, and a client that closed before or after
// that is noticed; the roster's timer stops when its line is empty. Waits are
// bounded and generous against `after`, so a loaded machine cannot turn a pass
// into a failure or the reverse.
#include "server/http_session.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <chrono>
#include <gtest/gtest.h>
#include <memory>
#include <optional>

namespace llmgate::server {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

struct connection {
  explicit connection(net::io_context& ioc) : gateway(ioc.get_executor()), client(ioc.get_executor()) {
    io::acceptor acceptor(ioc.get_executor(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    gateway = acceptor.accept();
  }
  io::socket gateway; // the end the watch is on
  io::socket client;
};

// Runs the loop until pred holds or 5 s pass.
template <class Pred> bool run_until(net::io_context& ioc, Pred pred) {
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (!pred() && std::chrono::steady_clock::now() < end) {
    ioc.restart();
    ioc.run_one_for(10ms);
  }
  return pred();
}

TEST(late_watch, one_ended_before_its_time_never_starts_and_leaves_nothing_to_run) {
  net::io_context ioc;
  connection c(ioc);
  watch_roster roster(ioc.get_executor(), 200ms);
  bool gone = false;
  {
    late_watch w(roster, c.gateway, [&] { gone = true; });
    EXPECT_EQ(roster.waiting(), 1u);
    ioc.poll();
    EXPECT_FALSE(w.armed());
  }
  EXPECT_EQ(roster.waiting(), 0u);
  ioc.restart();
  EXPECT_EQ(ioc.poll(), 0u) << "nothing to run: no cancelled operation's completion";
  c.client.close(); // after the watch: not its business
  // The roster's timer fires once, finds the line empty and stops: the loop runs out of work.
  ioc.restart();
  ioc.run_for(3s);
  EXPECT_TRUE(ioc.stopped());
  EXPECT_FALSE(gone);
}

TEST(late_watch, an_armed_watch_notices_a_client_that_leaves_and_its_end_is_a_cancel) {
  net::io_context ioc;
  connection c(ioc);
  watch_roster roster(ioc.get_executor(), 20ms);
  bool gone = false;
  auto w = std::make_unique<late_watch>(roster, c.gateway, [&] { gone = true; });
  ASSERT_TRUE(run_until(ioc, [&] { return w->armed(); }));
  EXPECT_EQ(roster.waiting(), 0u);
  EXPECT_FALSE(gone);
  c.client.close();
  EXPECT_TRUE(run_until(ioc, [&] { return gone; }));

  // A second watch on another connection, armed and then ended: its peek is cancelled.
  connection d(ioc);
  bool gone2 = false;
  auto w2 = std::make_unique<late_watch>(roster, d.gateway, [&] { gone2 = true; });
  ASSERT_TRUE(run_until(ioc, [&] { return w2->armed(); }));
  w2.reset();
  ioc.restart();
  EXPECT_GE(ioc.poll(), 1u) << "the cancelled peek's completion";
  d.client.close();
  ioc.restart();
  ioc.run_for(100ms);
  EXPECT_FALSE(gone2) << "a watch that ended says nothing";
}

TEST(late_watch, a_client_gone_before_the_watch_starts_is_noticed_when_it_does) {
  net::io_context ioc;
  connection c(ioc);
  watch_roster roster(ioc.get_executor(), 100ms);
  bool gone = false;
  const auto start = std::chrono::steady_clock::now();
  late_watch w(roster, c.gateway, [&] { gone = true; });
  c.client.close();
  ASSERT_TRUE(run_until(ioc, [&] { return gone; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms) << "not before its time";
  EXPECT_TRUE(w.armed());
}

TEST(late_watch, watches_start_oldest_first_and_those_ended_early_leave_the_line) {
  net::io_context ioc;
  watch_roster roster(ioc.get_executor(), 50ms);
  std::vector<std::unique_ptr<connection>> cs;
  std::vector<std::unique_ptr<late_watch>> ws;
  std::vector<int> gone(4, 0);
  for (int i = 0; i < 4; ++i) {
    cs.push_back(std::make_unique<connection>(ioc));
    ws.push_back(std::make_unique<late_watch>(roster, cs.back()->gateway, [&gone, i] { ++gone[i]; }));
    if (i == 1) { // the later two are due well after the first two
      ioc.restart();
      ioc.run_for(30ms);
    }
  }
  ws[0].reset(); // the oldest ends before its time; the roster's timer was set for it
  EXPECT_EQ(roster.waiting(), 3u);
  ASSERT_TRUE(run_until(ioc, [&] { return ws[1]->armed(); }));
  ASSERT_TRUE(run_until(ioc, [&] { return ws[2]->armed() && ws[3]->armed(); }));
  EXPECT_EQ(roster.waiting(), 0u);
  for (auto& c : cs) c->client.close();
  EXPECT_TRUE(run_until(ioc, [&] { return gone[1] && gone[2] && gone[3]; }));
  EXPECT_EQ(gone[0], 0);
  EXPECT_EQ(gone[1] + gone[2] + gone[3], 3) << "each once";
}

TEST(late_watch, a_request_that_lasts_gives_back_the_sessions_idle_read_buffer_and_a_short_one_keeps_it) {
  net::io_context ioc;
  connection c(ioc);
  watch_roster roster(ioc.get_executor(), 50ms);
  beast::flat_buffer idle, pipelined;
  idle.prepare(4096);
  pipelined.commit(net::buffer_copy(pipelined.prepare(5), net::buffer("next!", 5)));
  {
    late_watch w(
        roster, c.gateway, [] {}, &idle);
    ioc.poll();
    EXPECT_GE(idle.capacity(), 4096u) << "ended before its time: the next request reads into the same room";
  }
  {
    late_watch a(
        roster, c.gateway, [] {}, &idle);
    late_watch b(
        roster, c.gateway, [] {}, &pipelined);
    ASSERT_TRUE(run_until(ioc, [&] { return a.armed() && b.armed(); }));
    EXPECT_EQ(idle.capacity(), 0u) << "a request that lasts holds no read room";
    EXPECT_EQ(beast::buffers_to_string(pipelined.data()), "next!") << "bytes of the next request stay";
  }
  ioc.restart();
  ioc.poll(); // the cancelled peeks' completions
}

} // namespace
} // namespace llmgate::server
