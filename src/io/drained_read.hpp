#pragma once
// A socket read that remembers a short read, so the next read waits for
// epoll instead of trying recv first. Include only through io/beast.hpp.
//
// Why: Asio's reactor tries every read at once (a "speculative" recv) and
// only then waits for the descriptor to become readable. It stops trying
// first only after a read that came back with nothing. On a connection that
// alternates (a request in, an answer out) that first try nearly always
// fails: the client's next request has not come yet when the answer is
// written, the backend's answer has not come yet when the request is sent,
// and the watch for a client leaving (a one-byte peek) finds nothing. Three
// recv calls out of five per proxied request ended in EAGAIN (perf stat on
// syscalls:sys_exit_recvfrom; nginx makes two recv calls and none fails).
// A system call is dear here: on this virtual machine entering and leaving
// the kernel re-enables interrupts through the hypervisor.
//
// The rule nginx uses on edge-triggered epoll: a recv that returns fewer
// bytes than asked for emptied the socket's receive queue, so nothing is
// there until epoll reports the next edge. The operation below is Asio's own
// kind of reactor operation with that rule in its perform step: it reports
// a short read as "done and exhausted", and the reactor then queues the next
// read on this descriptor without trying it, until an epoll event for it
// comes (the reactor's own bookkeeping: try_speculative_, cleared by
// "exhausted" and set by every event, under the descriptor's lock).
//
// Why it is safe: TCP's recv stops short of the buffer only when the receive
// queue is empty (urgent data aside, which HTTP does not use); data that
// comes during or after the read raises a new edge, which the reactor sees
// whether or not a read is queued then. A full read proves nothing, so the
// next read tries at once, as before.
//
// It uses Asio's detail interfaces (reactor_op, the reactor's start_op, the
// socket's implementation), which are not a public API: they are those of
// Boost 1.81, Debian bookworm's, and the static_assert below stops the build
// on another version until this is checked against it. Everything else
// (writes, waits, the peek, other buffer sequences) keeps Asio's own
// operations. tests/net/timed_stream_test.cpp covers the cases: a short read
// and later data, a full read and the rest, end of stream, cancellation,
// close and the deadline on a queued read.
#include "io/io.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/error.hpp>
#include <boost/version.hpp>
#include <cerrno>
#include <sys/socket.h>
#include <utility>

static_assert(BOOST_VERSION == 108100, "io/drained_read.hpp uses Asio's detail interfaces as of Boost 1.81: "
                                       "check them against this version before changing this line");

namespace llmgate::io::detail {

namespace ad = boost::asio::detail;

// The socket's implementation (descriptor, state, reactor data) is a
// protected member of basic_socket: reached through a derived class.
struct socket_access : io::socket {
  static auto& implementation(io::socket& s) { return (s.*(&socket_access::impl_)).get_implementation(); }
};

// Cancels a queued read by its key, as Asio's own operations do.
class read_cancellation {
public:
  read_cancellation(ad::reactor* r, ad::reactor::per_descriptor_data* data, int fd)
      : reactor_(r), data_(data), fd_(fd) {}
  void operator()(boost::asio::cancellation_type_t type) {
    using ct = boost::asio::cancellation_type;
    if (!!(type & (ct::terminal | ct::partial | ct::total)))
      reactor_->cancel_ops_by_key(fd_, *data_, ad::reactor::read_op, this);
  }

private:
  ad::reactor* reactor_;
  ad::reactor::per_descriptor_data* data_;
  int fd_;
};

template <class Handler> class drained_read_op final : public ad::reactor_op {
public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(drained_read_op);

  drained_read_op(int fd, boost::asio::mutable_buffer buffer, Handler& handler, const executor& ex)
      : ad::reactor_op(boost::system::error_code(), &drained_read_op::perform_read, &drained_read_op::complete),
        fd_(fd), buffer_(buffer), handler_(std::move(handler)), work_(handler_, ex) {}

private:
  // One recv. not_done: nothing there yet (the reactor waits for an edge);
  // done: the buffer filled (more may be waiting); done_and_exhausted: a
  // short read, the end of the stream or an error (nothing more to read
  // until the next edge).
  static status perform_read(ad::reactor_op* base) {
    auto* o = static_cast<drained_read_op*>(base);
    for (;;) {
      const auto n = ::recv(o->fd_, o->buffer_.data(), o->buffer_.size(), 0);
      if (n > 0) {
        o->bytes_transferred_ = static_cast<std::size_t>(n);
        return o->bytes_transferred_ < o->buffer_.size() ? done_and_exhausted : done;
      }
      if (n == 0) {
        o->ec_ = boost::asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      o->ec_.assign(errno, boost::asio::error::get_system_category());
      return done_and_exhausted;
    }
  }

  // Asio's contract for an operation's completion: owner is null when the
  // operation is only being destroyed (its io_context shutting down).
  static void complete(void* owner, ad::operation* base, const boost::system::error_code&, std::size_t) {
    auto* o = static_cast<drained_read_op*>(base);
    ptr p = {std::addressof(o->handler_), o, o};
    ad::handler_work<Handler, executor> work(std::move(o->work_));
    // The handler leaves the operation's memory before the call, which may
    // start the next read in that same memory.
    ad::binder2<Handler, boost::system::error_code, std::size_t> call(o->handler_, o->ec_, o->bytes_transferred_);
    p.h = std::addressof(call.handler_);
    p.reset();
    if (owner) work.complete(call, call.handler_);
  }

  int fd_;
  boost::asio::mutable_buffer buffer_;
  Handler handler_;
  ad::handler_work<Handler, executor> work_;
};

// Starts a read of `buffer` on `sock`; the handler is called with the error
// and the bytes read, as by async_read_some.
template <class Handler>
void start_drained_read(io::socket& sock, ad::reactor& reactor, boost::asio::mutable_buffer buffer, Handler handler) {
  auto& impl = socket_access::implementation(sock);
  using op = drained_read_op<Handler>;
  const bool continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
  auto slot = boost::asio::get_associated_cancellation_slot(handler);
  typename op::ptr p = {std::addressof(handler), op::ptr::allocate(handler), nullptr};
  p.p = new (p.v) op(impl.socket_, buffer, handler, sock.get_executor());
  if (slot.is_connected())
    p.p->cancellation_key_ = &slot.template emplace<read_cancellation>(&reactor, &impl.reactor_data_, impl.socket_);
  if (buffer.size() == 0) { // as Asio: an empty read on a stream completes at once
    reactor.post_immediate_completion(p.p, continuation);
  } else if (!(impl.state_ & ad::socket_ops::non_blocking) &&
             !ad::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, p.p->ec_)) {
    reactor.post_immediate_completion(p.p, continuation);
  } else {
    reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, continuation, true);
  }
  p.v = p.p = nullptr;
}

} // namespace llmgate::io::detail
