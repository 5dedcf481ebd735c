#pragma once
// The TCP stream every HTTP connection of llmgate reads and writes through:
// a socket with a deadline, as Beast's basic_stream has, at a fraction of
// its cost. Include only from the few translation units that speak HTTP
// (Beast is slow to compile).
//
// Why not basic_stream: it arms a timer when each read or write starts and
// cancels it when the operation ends, so every operation costs a timer
// insertion, a removal and a second completion through the scheduler. That
// was ~6% of a proxied request's instructions (docs/BENCHMARKS.md). Here a
// deadline is a time stored in the stream; one timer per stream is armed
// only when the deadline moves earlier than the time it is set for, and when
// it fires early (the deadline was pushed back meanwhile) it re-arms for the
// new time. On a busy connection that is one wake-up per timeout period
// instead of two timer operations per read or write.
//
// One difference: the timer stays armed after an operation ends (until the
// time it was armed for), and an armed timer is work to its io_context, so a
// loop that runs until it has no work left must close() or destroy its idle
// streams. The gateway's and the simulator's loops are stopped explicitly.
//
// The semantics are basic_stream's: a read or write pending when the
// deadline passes fails with beast::error::timeout and the socket is closed;
// a deadline that passes while nothing is pending fails the next operation
// (unless a new deadline is set first); expires_never() removes it. One
// deadline serves both directions, where basic_stream keeps one each:
// nothing here reads and writes the same stream at once.
// Connecting with a deadline, once per connection, still uses basic_stream
// (connecting_stream), whose socket is then moved into a tcp_stream.
#include "io/drained_read.hpp"
#include "io/io.hpp"

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace llmgate::io {

using connecting_stream = boost::beast::basic_stream<boost::asio::ip::tcp, executor>;

namespace detail {

struct stream_state {
  using clock = std::chrono::steady_clock;
  static constexpr clock::time_point k_never = clock::time_point::max();

  socket sock;
  timer wake;
  boost::asio::detail::reactor& reactor; // the io_context's, for reads (io/drained_read.hpp)
  clock::time_point deadline = k_never;
  clock::time_point armed = k_never; // when the pending wait of `wake` fires; k_never: none pending
  int pending = 0;                   // reads and writes in progress
  bool expired = false;              // the deadline passed while nothing was pending
  bool timed_out = false;            // the deadline closed the socket

  explicit stream_state(executor ex)
      : sock(ex), wake(ex), reactor(boost::asio::use_service<boost::asio::detail::reactor>(ex.context())) {}
  explicit stream_state(socket s)
      : sock(std::move(s)), wake(sock.get_executor()),
        reactor(boost::asio::use_service<boost::asio::detail::reactor>(sock.get_executor().context())) {}

  void close() noexcept {
    boost::system::error_code ignored;
    sock.close(ignored);
  }

  static void arm(const std::shared_ptr<stream_state>& sp, clock::time_point at) {
    sp->armed = at;
    sp->wake.expires_at(at); // a wait still pending ends with operation_aborted
    sp->wake.async_wait([sp, at](const boost::system::error_code& ec) { fired(sp, at, ec); });
  }

  static void fired(const std::shared_ptr<stream_state>& sp, clock::time_point at,
                    const boost::system::error_code& ec) {
    auto& s = *sp;
    if (ec || at != s.armed) return; // re-armed since, or the stream was destroyed
    s.armed = k_never;
    if (s.deadline == k_never) return;
    if (clock::now() < s.deadline) { // pushed back since this wait began
      arm(sp, s.deadline);
      return;
    }
    if (s.pending > 0) {
      s.timed_out = true;
      s.close(); // the pending operations end with operation_aborted, reported as timeout
    } else {
      s.expired = true;
    }
  }

  // Called as an operation starts.
  void begin() {
    if (expired) { // the deadline passed before it started: it fails at once, as timeout
      expired = false;
      timed_out = true;
      close();
    }
    ++pending;
  }
};

// The completion handler of a read or write: counts it as ended and reports
// an error caused by the deadline as beast::error::timeout.
template <class Handler> struct stream_op {
  Handler handler;
  std::shared_ptr<stream_state> state;

  void operator()(boost::system::error_code ec, std::size_t n) {
    --state->pending;
    if (ec && state->timed_out) ec = boost::beast::error::timeout;
    state.reset();
    std::move(handler)(ec, n);
  }
};

} // namespace detail

class tcp_stream {
public:
  using executor_type = executor;
  using clock = std::chrono::steady_clock;

  explicit tcp_stream(executor ex) : s_(std::make_shared<detail::stream_state>(std::move(ex))) {}
  explicit tcp_stream(io::socket sock) : s_(std::make_shared<detail::stream_state>(std::move(sock))) {}
  tcp_stream(const tcp_stream&) = delete;
  tcp_stream& operator=(const tcp_stream&) = delete;
  ~tcp_stream() { close(); } // the timer's pending wait (if any) ends and lets go of the state

  [[nodiscard]] executor_type get_executor() const noexcept { return s_->sock.get_executor(); }
  [[nodiscard]] io::socket& socket() noexcept { return s_->sock; }

  void expires_at(clock::time_point at) {
    s_->deadline = at;
    s_->expired = false;
    if (at < s_->armed) detail::stream_state::arm(s_, at);
  }
  void expires_after(clock::duration d) { expires_at(clock::now() + d); }
  void expires_never() noexcept {
    s_->deadline = detail::stream_state::k_never;
    s_->expired = false;
  }
  // Closes the socket and stops the timer (an armed timer is work that keeps
  // its io_context's run() going until the time it was armed for).
  void close() noexcept {
    s_->close();
    s_->armed = detail::stream_state::k_never; // the cancelled wait is not counted on
    s_->wake.cancel();
  }

  // Writes what the socket takes at once, without waiting: the bytes
  // written, 0 when it would block, fails, or the deadline has passed (an
  // asynchronous write then reports why).
  template <class ConstBuffers> std::size_t write_now(const ConstBuffers& buffers) noexcept {
    auto& sock = s_->sock;
    if (s_->expired || !sock.is_open()) return 0;
    boost::system::error_code ec;
    if (!sock.non_blocking()) sock.non_blocking(true, ec); // once per socket: sync writes never block
    const std::size_t n = ec ? 0 : sock.write_some(buffers, ec);
    return ec ? 0 : n;
  }

  template <class MutableBuffers, class Token> auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return start<false>(buffers, std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token> auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return start<true>(buffers, std::forward<Token>(token));
  }

private:
  // A read or write on the socket, counted as pending while it runs.
  template <bool Write, class Buffers, class Token> auto start(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [](auto handler, const std::shared_ptr<detail::stream_state>& s, const Buffers& b) {
          s->begin();
          detail::stream_op<decltype(handler)> op{std::move(handler), s};
          if constexpr (Write)
            s->sock.async_write_some(b, std::move(op));
          else if constexpr (std::is_convertible_v<Buffers, boost::asio::mutable_buffer>)
            detail::start_drained_read(s->sock, s->reactor, b, std::move(op)); // io/drained_read.hpp
          else
            s->sock.async_read_some(b, std::move(op));
        },
        token, s_, buffers);
  }

  std::shared_ptr<detail::stream_state> s_;
};

// The rest of a write that write_now began (its first `done` bytes went),
// asynchronously under the stream's deadline; the bytes written in all. The
// hot paths call write_now themselves and this only when it fell short, so
// that a write the socket takes at once costs no coroutine frame.
template <class ConstBuffers> task<std::tuple<boost::system::error_code, std::size_t>>
write_rest(tcp_stream& stream, ConstBuffers buffers, std::size_t done) {
  boost::beast::buffers_suffix<ConstBuffers> rest(buffers);
  rest.consume(done);
  auto [ec, n] = co_await boost::asio::async_write(stream, rest, k_tuple);
  co_return std::tuple{ec, done + n};
}

// Writes all of `buffers`: what the socket takes at once right away, the
// rest (if any) asynchronously, under the stream's deadline. An asynchronous
// write goes through the scheduler even when the socket takes every byte at
// once, as it nearly always does for an answer or a request: a post, a
// dequeue and the coroutine's resumption, ~950 instructions per write
// (docs/BENCHMARKS.md). The buffers are taken by value: they must stay valid
// across the suspension.
template <class ConstBuffers>
task<std::tuple<boost::system::error_code, std::size_t>> write(tcp_stream& stream, ConstBuffers buffers) {
  const std::size_t total = boost::asio::buffer_size(buffers);
  const std::size_t now = stream.write_now(buffers);
  if (now == total) co_return std::tuple{boost::system::error_code{}, total};
  co_return co_await write_rest(stream, buffers, now);
}

} // namespace llmgate::io

// The wrapped handler keeps the executor, allocator and cancellation slot of
// the handler it wraps (a coroutine's, usually).
template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct boost::asio::associator<Associator, llmgate::io::detail::stream_op<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type
  get(const llmgate::io::detail::stream_op<Handler>& op) noexcept {
    return Associator<Handler, DefaultCandidate>::get(op.handler);
  }
  static auto get(const llmgate::io::detail::stream_op<Handler>& op, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(op.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(op.handler, c);
  }
};
