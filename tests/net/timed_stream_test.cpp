// io::tcp_stream's deadlines between two real sockets on loopback: a read or
// write still pending when its deadline passes ends with beast::error::timeout
// and closes the socket; a deadline that passed while nothing was pending fails
// the next operation unless a new one is set first; a deadline moved later
// does not fire at the earlier time, one moved earlier fires at the earlier
// time, and expires_never() removes it. The deadlines are short and the
// data's arrival far from them (seconds), so a loaded machine cannot turn a
// pass into a failure or the reverse.
#include "io/beast.hpp"
#include "redis_server.hpp"

#include <array>
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <string>
#include <tuple>
#include <vector>

// Every recv of this test binary, counted: the real one is called through.
// Asio's reads and io/drained_read.hpp's both call ::recv, so a test can
// tell a read that tried the socket from one that waited for epoll.
namespace {
std::atomic<int> g_recv_calls{0};
}
extern "C" ssize_t recv(int fd, void* buf, size_t n, int flags) {
  using real_recv = ssize_t (*)(int, void*, size_t, int);
  static const auto real = reinterpret_cast<real_recv>(dlsym(RTLD_NEXT, "recv"));
  g_recv_calls.fetch_add(1, std::memory_order_relaxed);
  return real(fd, buf, n, flags);
}

namespace llmgate::io {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using testing::run;

struct pair {
  io::socket server;
  tcp_stream client;
};

io::task<std::unique_ptr<pair>> connect() {
  auto ex = co_await net::this_coro::executor;
  io::acceptor acceptor(ex, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  io::socket raw(ex);
  co_await raw.async_connect(acceptor.local_endpoint(), use_task);
  auto server = co_await acceptor.async_accept(use_task);
  co_return std::unique_ptr<pair>(new pair{std::move(server), tcp_stream(std::move(raw))});
}

io::task<void> sleep(std::chrono::milliseconds d) {
  timer t(co_await net::this_coro::executor, d);
  co_await t.async_wait(k_tuple);
}

// The server end sends `text` after `delay` (if it is still open then).
void send_later(io::socket& s, std::chrono::milliseconds delay, std::string text) {
  net::co_spawn(
      s.get_executor(),
      [&s, delay, text = std::move(text)]() -> task<void> {
        co_await sleep(delay);
        co_await net::async_write(s, net::buffer(text), k_tuple);
      },
      net::detached);
}

// One read from the client end: its error, and what it got.
io::task<std::pair<boost::system::error_code, std::string>> read_once(tcp_stream& s) {
  char buf[64];
  auto [ec, n] = co_await s.async_read_some(net::buffer(buf), k_tuple);
  co_return std::pair{ec, std::string(buf, n)};
}

TEST(timed_stream, a_read_pending_at_the_deadline_times_out_and_closes_the_socket) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(50ms);
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_FALSE(p->client.socket().is_open());
}

TEST(timed_stream, a_read_that_finishes_in_time_keeps_the_connection) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(10s);
  send_later(p->server, 20ms, "hello");
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "hello");
  EXPECT_TRUE(p->client.socket().is_open());
}

TEST(timed_stream, a_deadline_moved_later_does_not_fire_at_the_earlier_time) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(30ms); // the timer is armed for this
  p->client.expires_after(10s);  // and wakes early, re-arming for this
  send_later(p->server, 300ms, "late");
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "late");
}

TEST(timed_stream, a_deadline_moved_earlier_fires_at_the_earlier_time) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(20s);
  p->client.expires_after(50ms);
  send_later(p->server, 3s, "too late"); // a timer left at 20 s would let this arrive first
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
}

TEST(timed_stream, expires_never_removes_the_deadline) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(30ms);
  p->client.expires_never();
  send_later(p->server, 300ms, "no deadline");
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "no deadline");
}

TEST(timed_stream, a_deadline_passed_while_idle_fails_the_next_operation) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(20ms);
  run(ioc, sleep(300ms)); // nothing pending: the socket stays open until an operation starts
  EXPECT_TRUE(p->client.socket().is_open());
  send_later(p->server, 0ms, "waiting");
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_FALSE(p->client.socket().is_open());
}

TEST(timed_stream, a_new_deadline_after_one_passed_while_idle_lets_the_next_operation_run) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(20ms);
  run(ioc, sleep(300ms));
  p->client.expires_after(10s); // as a handler does before it writes its answer
  send_later(p->server, 20ms, "fresh");
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "fresh");
}

TEST(timed_stream, a_write_the_peer_does_not_read_times_out) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  const std::string chunk(1 << 20, 'x');
  p->client.expires_after(200ms);
  const auto ec = run(ioc, [&]() -> task<boost::system::error_code> {
    for (int i = 0; i < 256; ++i) { // 256 MiB at most: far past what the socket buffers hold
      auto [ec, n] = co_await net::async_write(p->client, net::buffer(chunk), k_tuple);
      if (ec) co_return ec;
    }
    co_return boost::system::error_code{};
  }());
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
}

TEST(timed_stream, a_busy_connection_outlives_its_first_deadline_when_each_read_pushes_it_back) {
  // Five reads of 300 ms each under a deadline of 1 s set before each: the
  // timer armed for the first deadline fires while the fourth read is
  // pending, finds the deadline pushed back, and re-arms instead of closing.
  net::io_context ioc;
  auto p = run(ioc, connect());
  const auto got = run(ioc, [&]() -> task<std::string> {
    std::string all;
    for (int i = 0; i < 5; ++i) {
      p->client.expires_after(1s);
      send_later(p->server, 300ms, std::to_string(i));
      auto [ec, text] = co_await read_once(p->client);
      if (ec) co_return all + "<" + ec.message() + ">";
      all += text;
    }
    co_return all;
  }());
  EXPECT_EQ(got, "01234");
}

TEST(timed_stream, destroying_the_stream_with_its_timer_armed_is_safe) {
  // The timer's wait holds the stream's state, not the stream: ASan would see
  // a use after free if the wait outlived what it points to.
  net::io_context ioc;
  {
    auto p = run(ioc, connect());
    p->client.expires_after(30ms);
  }
  run(ioc, sleep(100ms)); // the cancelled wait completes here
  SUCCEED();
}

// ---- io::write: what the socket takes at once, then the rest -----------

// Everything the server end receives until the client closes.
io::task<std::string> read_all(io::socket& s) {
  std::string all;
  char buf[65536];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(net::buffer(buf), k_tuple);
    all.append(buf, n);
    if (ec) co_return all;
  }
}

TEST(timed_stream, a_small_write_is_taken_at_once) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  const std::string text = "POST / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(p->client.write_now(net::buffer(text)), text.size());
}

TEST(timed_stream, a_write_larger_than_the_socket_takes_finishes_asynchronously_in_order) {
  // 32 MiB with pieces of two buffers: far more than a socket's buffers
  // hold, so the first part is written at once and the rest waits for the
  // peer to read. Every byte must arrive once, in order.
  net::io_context ioc;
  auto p = run(ioc, connect());
  std::string head(3, 'h'), body(32 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  p->client.expires_after(30s);
  std::string got;
  net::co_spawn(
      ioc, [&]() -> task<void> { got = co_await read_all(p->server); }, net::detached);
  const auto [ec, n] = run(ioc, [&]() -> task<std::tuple<boost::system::error_code, std::size_t>> {
    const std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(body)};
    auto r = co_await io::write(p->client, buffers);
    p->client.close();
    co_return r;
  }());
  ioc.run(); // the reader sees the close
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(n, head.size() + body.size());
  EXPECT_EQ(got.size(), head.size() + body.size());
  EXPECT_TRUE(got == head + body);
}

TEST(timed_stream, a_write_after_the_deadline_passed_while_idle_times_out_and_sends_nothing) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(20ms);
  run(ioc, sleep(300ms));
  const std::string text = "late";
  const auto [ec, n] = run(ioc, io::write(p->client, net::buffer(text)));
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(run(ioc, read_all(p->server)), ""); // closed, nothing sent
}

TEST(timed_stream, a_write_to_a_closed_peer_reports_the_error) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->server.close();
  run(ioc, sleep(50ms));
  const std::string chunk(1 << 20, 'x');
  const auto ec = run(ioc, [&]() -> task<boost::system::error_code> {
    for (int i = 0; i < 64; ++i) { // the first write may still be taken; a reset follows
      auto [ec, n] = co_await io::write(p->client, net::buffer(chunk));
      if (ec) co_return ec;
    }
    co_return boost::system::error_code{};
  }());
  EXPECT_TRUE(ec == net::error::broken_pipe || ec == net::error::connection_reset) << ec.message();
}

// Reads after a short read (io/drained_read.hpp): a read that got fewer
// bytes than it asked for emptied the socket, so the next read waits for
// epoll instead of trying recv first. Each case below would hang (and fail
// by its deadline) if a read waited when data was there, or lose data if it
// did not wait properly.

// A connection whose client end has just made a short read: "abc" into a
// 64-byte buffer, with a deadline far away.
std::unique_ptr<pair> after_a_short_read(net::io_context& ioc) {
  auto p = run(ioc, connect());
  p->client.expires_after(10s);
  send_later(p->server, 0ms, "abc");
  EXPECT_EQ(run(ioc, read_once(p->client)).second, "abc");
  return p;
}

TEST(drained_read, data_that_comes_after_a_short_read_is_read) {
  net::io_context ioc;
  auto p = after_a_short_read(ioc);
  send_later(p->server, 50ms, "def");
  const auto [ec, got] = run(ioc, read_once(p->client)); // waits for the edge
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "def");
}

TEST(drained_read, a_read_after_a_short_read_waits_for_epoll_without_a_recv) {
  net::io_context ioc;
  auto p = after_a_short_read(ioc);
  char buf[64];
  boost::system::error_code got = net::error::would_block;
  std::size_t n = 0;
  const int before = g_recv_calls.load();
  p->client.async_read_some(net::buffer(buf), [&](boost::system::error_code ec, std::size_t k) {
    got = ec;
    n = k;
  });
  ioc.restart();
  ioc.poll(); // started, nothing to read
  EXPECT_EQ(got, net::error::would_block);
  EXPECT_EQ(g_recv_calls.load() - before, 0); // Asio's own read tries recv here, and finds nothing
  send_later(p->server, 0ms, "def");
  for (int i = 0; i < 100 && got == net::error::would_block; ++i) ioc.run_one_for(50ms);
  EXPECT_FALSE(got) << got.message();
  EXPECT_EQ(std::string(buf, n), "def");
  EXPECT_EQ(g_recv_calls.load() - before, 1); // one recv, when epoll reported the data
}

TEST(drained_read, data_that_came_while_no_read_was_waiting_is_read) {
  net::io_context ioc;
  auto p = after_a_short_read(ioc);
  send_later(p->server, 0ms, "def");
  run(ioc, sleep(100ms)); // the edge comes and goes while nothing reads
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "def");
}

TEST(drained_read, a_full_read_leaves_the_rest_to_the_next_read) {
  net::io_context ioc;
  auto p = run(ioc, connect());
  p->client.expires_after(10s);
  const std::string text(100, 'x');
  send_later(p->server, 0ms, text);
  run(ioc, sleep(50ms)); // all 100 bytes are in the socket before the first read
  const auto first = run(ioc, read_once(p->client));
  EXPECT_EQ(first.second.size(), 64u); // the whole buffer: more may be waiting, and is
  const auto [ec, rest] = run(ioc, read_once(p->client));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(rest.size(), 36u);
}

TEST(drained_read, the_end_of_the_stream_after_a_short_read_is_reported) {
  net::io_context ioc;
  auto p = after_a_short_read(ioc);
  net::post(ioc, [&] { p->server.close(); });
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_EQ(ec, net::error::eof) << ec.message();
  EXPECT_EQ(got, "");
}

TEST(drained_read, a_waiting_read_ends_when_the_socket_is_cancelled_or_its_slot_emits) {
  net::io_context ioc;
  auto p = after_a_short_read(ioc);
  // Cancelled through the socket (as client_watch and the drain do).
  net::steady_timer later(ioc, 50ms); // once the read waits
  later.async_wait([&](boost::system::error_code) { p->client.socket().cancel(); });
  EXPECT_EQ(run(ioc, read_once(p->client)).first, net::error::operation_aborted);
  // Cancelled through its own cancellation slot.
  net::cancellation_signal signal;
  char buf[8];
  boost::system::error_code got = net::error::would_block;
  p->client.async_read_some(
      net::buffer(buf),
      net::bind_cancellation_slot(signal.slot(), [&](boost::system::error_code ec, std::size_t) { got = ec; }));
  ioc.restart();
  ioc.poll(); // the read waits: nothing to read
  EXPECT_EQ(got, net::error::would_block);
  signal.emit(net::cancellation_type::terminal);
  ioc.restart();
  for (int i = 0; i < 100 && got == net::error::would_block; ++i) ioc.run_one_for(50ms);
  EXPECT_EQ(got, net::error::operation_aborted);
  // The connection still works after both.
  p->client.expires_after(10s);
  send_later(p->server, 0ms, "def");
  EXPECT_EQ(run(ioc, read_once(p->client)).second, "def");
}

TEST(drained_read, a_waiting_read_times_out_at_the_deadline) {
  net::io_context ioc;
  auto p = after_a_short_read(ioc);
  p->client.expires_after(50ms);
  const auto [ec, got] = run(ioc, read_once(p->client));
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_FALSE(p->client.socket().is_open());
}

} // namespace
} // namespace llmgate::io
