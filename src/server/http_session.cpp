#include "server/http_session.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

namespace llmgate::server {

namespace {
using io::k_tuple;
using namespace std::string_view_literals;
} // namespace

void session_registry::drain() {
  draining_ = true;
  for (auto& e : entries_)
    if (!e.busy) e.stream->socket().cancel(); // its pending read ends; the loop sees draining and closes
}

void session_registry::close_idle() {
  for (auto& e : entries_)
    if (!e.busy) e.stream->socket().cancel();
}

void session_registry::close_all() {
  draining_ = true;
  for (auto& e : entries_) {
    boost::system::error_code ec;
    e.stream->socket().shutdown(io::socket::shutdown_both, ec);
    e.stream->close();
  }
}

bool peer_closed(io::socket& socket) {
  char c;
  const auto n = ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return false;
}

client_watch::client_watch(io::socket& socket, std::function<void()> on_gone)
    : socket_(socket), state_(std::make_shared<state>(state{false, std::move(on_gone)})) {
  socket_.async_receive(net::buffer(&state_->peeked, 1), io::socket::message_peek,
                        [s = state_](const boost::system::error_code& ec, std::size_t) {
                          if (s->done) return; // our own cancel: the work ended first
                          // A byte (the next request, early) is not a leave; the end of the
                          // stream, or any error (a forced close at the drain deadline
                          // included), means the client is gone.
                          if (ec) s->on_gone();
                        });
}

client_watch::~client_watch() {
  state_->done = true;
  boost::system::error_code ignored;
  socket_.cancel(ignored); // the wait completes with operation_aborted and does nothing
}

late_watch::late_watch(watch_roster& roster, io::socket& socket, std::function<void()> on_gone,
                       beast::flat_buffer* idle_buffer)
    : due_(std::chrono::steady_clock::now() + roster.after_), socket_(socket), on_gone_(std::move(on_gone)),
      idle_buffer_(idle_buffer) {
  roster.enlist(*this);
}

void late_watch::arm() {
  if (idle_buffer_ && idle_buffer_->size() == 0) idle_buffer_->shrink_to_fit();
  armed_.emplace(socket_, std::move(on_gone_));
}

watch_roster::watch_roster(const io::executor& ex, std::chrono::steady_clock::duration after)
    : after_(after), timer_(ex) {}

void watch_roster::enlist(late_watch& w) {
  waiting_.push_back(w); // due after every one before it: the line stays oldest first
  if (!ticking_) wait_for(w);
}

void watch_roster::wait_for(const late_watch& w) {
  ticking_ = true;
  timer_.expires_at(w.due_);
  timer_.async_wait([this](const boost::system::error_code& ec) { ec ? void(ticking_ = false) : tick(); });
}

void watch_roster::tick() {
  ticking_ = false;
  const auto now = std::chrono::steady_clock::now();
  // Arming starts a peek, which never completes inline: no watch's on_gone runs in this loop.
  while (!waiting_.empty() && waiting_.front().due_ <= now) {
    late_watch& w = waiting_.front();
    waiting_.pop_front();
    w.arm();
  }
  if (!waiting_.empty()) wait_for(waiting_.front());
}

std::string format_head(int status, std::string_view content_type, const header_list& headers,
                        std::optional<std::size_t> content_length, bool keep_alive, bool chunked,
                        const header_list* more) {
  std::string out;
  format_head_into(out, status, content_type, headers, content_length, keep_alive, chunked, more);
  return out;
}

void format_head_into(std::string& out, int status, std::string_view content_type, const header_list& headers,
                      std::optional<std::size_t> content_length, bool keep_alive, bool chunked,
                      const header_list* more) {
  // By hand rather than fmt or Beast's serializer: this runs for every answer.
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  const decimal status_text(static_cast<std::uint64_t>(status));
  const bool sized = content_length && status != 204 && status != 304;
  const decimal length_text(sized ? *content_length : 0);
  assemble_into(out, [&](auto&& put) {
    put("HTTP/1.1 "sv);
    put(status_text.view());
    put(" "sv);
    put(std::string_view(reason.data(), reason.size()));
    put("\r\n"sv);
    if (!content_type.empty()) {
      put("Content-Type: "sv);
      put(content_type);
      put("\r\n"sv);
    }
    for (const auto* list : {&headers, more})
      if (list)
        for (const auto& [name, value] : *list) {
          put(name);
          put(": "sv);
          put(value);
          put("\r\n"sv);
        }
    if (!content_length) {
      if (chunked) put("Transfer-Encoding: chunked\r\n"sv);
    } else if (sized) {
      put("Content-Length: "sv);
      put(length_text.view());
      put("\r\n"sv);
    }
    if (!keep_alive) put("Connection: close\r\n"sv);
    put("\r\n"sv);
  });
}

bool keep_alive_for(const session_context& ctx, const request& req) {
  return req.keep_alive() && !ctx.registry.draining();
}

answer_write start_answer(session_context& ctx, const request& req, int status, std::string_view content_type,
                          const header_list& headers, std::string_view body, const header_list* more) {
  answer_write w;
  w.keep = keep_alive_for(ctx, req);
  format_head_into(ctx.head, status, content_type, headers, body.size(), w.keep, true, more);
  w.head = ctx.head;
  if (req.method() != http::verb::head) w.body = body;
  ctx.stream.expires_after(ctx.limits.write_timeout);
  w.sent = ctx.stream.write_now(std::array<net::const_buffer, 2>{net::buffer(w.head), net::buffer(w.body)});
  return w;
}

io::task<bool> finish_answer(session_context& ctx, answer_write w) {
  const std::array<net::const_buffer, 2> buffers{net::buffer(w.head), net::buffer(w.body)};
  auto [ec, n] = co_await io::write_rest(ctx.stream, buffers, w.sent);
  co_return !ec && w.keep;
}

io::task<bool> write_answer(session_context& ctx, const request& req, int status, std::string_view content_type,
                            const header_list& headers, std::string_view body, const header_list* more) {
  auto w = start_answer(ctx, req, status, content_type, headers, body, more);
  if (w.done()) co_return w.keep;
  co_return co_await finish_answer(ctx, std::move(w));
}

io::task<bool> write_reply(session_context& ctx, const request& req, const openai::local_reply& reply,
                           const header_list& headers) {
  co_return co_await write_answer(ctx, req, reply.status, "application/json", headers, reply.body, &reply.headers);
}

io::task<bool> write_stream_head(session_context& ctx, int status, std::string_view content_type,
                                 const header_list& headers, bool keep_alive, bool chunked) {
  const auto head = format_head(status, content_type, headers, std::nullopt, keep_alive, chunked);
  ctx.stream.expires_after(ctx.limits.write_timeout);
  auto [ec, n] = co_await io::write(ctx.stream, net::buffer(head));
  co_return !ec;
}

namespace {

// A reply to a request that could not be read; the connection closes after it.
io::task<void> refuse(io::tcp_stream& stream, const session_limits& limits, http::status status,
                      const openai::local_reply& reply) {
  const auto head = format_head(static_cast<int>(status), "application/json", {}, reply.body.size(), false);
  const std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(reply.body)};
  stream.expires_after(limits.write_timeout);
  auto [ec, n] = co_await io::write(stream, buffers);
  if (ec) co_return;
  // Lingering close: a client still sending a body it was refused for (a
  // 2 MiB upload past max_body_bytes) would get a reset instead of the answer
  // if the socket closed with its bytes unread. So stop sending, then read and
  // drop what still arrives until the client closes, for at most 2 s.
  boost::system::error_code sec;
  stream.socket().shutdown(io::socket::shutdown_send, sec);
  std::array<char, 16384> sink;
  stream.expires_after(std::min<std::chrono::steady_clock::duration>(std::chrono::seconds(2), limits.idle_timeout));
  for (;;) {
    auto [rec, rn] = co_await stream.async_read_some(net::buffer(sink), k_tuple);
    if (rec) break;
  }
}

// Feeds the parser what `data` holds and returns the bytes it used. Stops at
// the end of the data, at the end of the message, or at an error (in ec;
// needing more bytes is not one).
std::size_t put_held(request_parser& parser, net::const_buffer data, boost::system::error_code& ec) {
  std::size_t used = 0;
  while (used < data.size() && !parser.is_done()) {
    const auto n = parser.put(data + used, ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || n == 0) break;
  }
  return used;
}

// Parses what the buffer already holds: usually the whole request, which
// came in one read, so the common case takes no asynchronous step (Beast's
// composed reads cost a few thousand instructions each even when they need
// no I/O).
void parse_buffered(beast::flat_buffer& buffer, request_parser& parser, boost::system::error_code& ec) {
  buffer.consume(put_held(parser, buffer.cdata(), ec));
}

// The whole request from the buffer, when it holds all of it (as it nearly
// always does: a request comes in one read) and it is well-formed: then it is
// consumed and true returned, without a coroutine (read_request's frame is
// too large for Asio's recycling: an allocation a request). Otherwise nothing
// is consumed and `out` is cleared: read_request starts over, reads the rest
// and answers what is wrong.
bool parse_whole_buffered(beast::flat_buffer& buffer, const session_limits& limits, request& out) {
  request_parser parser(out);
  parser.header_limit(limits.max_header_bytes);
  parser.body_limit(limits.max_body_bytes);
  boost::system::error_code ec;
  const auto used = put_held(parser, buffer.cdata(), ec);
  if (ec || !parser.is_done() || out.field_count() > limits.max_headers) {
    out.clear();
    return false;
  }
  buffer.consume(used);
  return true;
}

// Reads one request after its first bytes arrived: false when the connection
// is to close (the client left, timed out, or was refused, which is answered
// here). Its own coroutine, so the parser and the refusals' temporaries are
// gone while the request is handled (a held stream keeps run_session's frame).
io::task<bool> read_request(io::tcp_stream& stream, beast::flat_buffer& buffer, const session_limits& limits,
                            request& out) {
  request_parser parser(out);
  parser.header_limit(limits.max_header_bytes);
  parser.body_limit(limits.max_body_bytes);
  boost::system::error_code ec;
  parse_buffered(buffer, parser, ec);
  if (!ec && !parser.is_header_done()) {
    // One deadline for the whole head, so headers dribbled a byte at a time (slowloris) cannot hold the slot.
    stream.expires_after(limits.header_timeout);
    auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, k_tuple);
    ec = hec;
  }
  if (ec && !parser.is_header_done()) {
    if (ec == http::error::header_limit)
      co_await refuse(stream, limits, http::status::request_header_fields_too_large,
                      openai::invalid_request("Request headers are too large.", {}, "headers_too_large"));
    else if (ec == http::error::body_limit) // a Content-Length over the limit is refused before any body is read
      co_await refuse(stream, limits, http::status::payload_too_large,
                      openai::payload_too_large(limits.max_body_bytes));
    else if (ec != beast::error::timeout && ec != http::error::end_of_stream && ec != net::error::eof &&
             ec != net::error::operation_aborted && ec != net::error::connection_reset)
      co_await refuse(
          stream, limits, http::status::bad_request,
          openai::invalid_request(fmt::format("Malformed HTTP request: {}.", ec.message()), {}, "bad_http_request"));
    co_return false;
  }
  if (out.field_count() > limits.max_headers) {
    co_await refuse(stream, limits, http::status::request_header_fields_too_large,
                    openai::invalid_request(fmt::format("More than {} request headers.", limits.max_headers), {},
                                            "too_many_headers"));
    co_return false;
  }
  if (!ec && !parser.is_done()) {
    if (beast::iequals(out[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      stream.expires_after(limits.write_timeout);
      auto [cec, cn] = co_await http::async_write(stream, cont, k_tuple);
      if (cec) co_return false;
    }
    stream.expires_after(limits.body_timeout);
    auto [bec, bn] = co_await http::async_read(stream, buffer, parser, k_tuple);
    ec = bec;
  }
  if (ec) {
    if (ec == http::error::body_limit)
      co_await refuse(stream, limits, http::status::payload_too_large,
                      openai::payload_too_large(limits.max_body_bytes));
    else if (ec != beast::error::timeout && ec != http::error::end_of_stream && ec != net::error::eof &&
             ec != net::error::connection_reset && ec != http::error::partial_message)
      co_await refuse(
          stream, limits, http::status::bad_request,
          openai::invalid_request(fmt::format("Malformed HTTP request: {}.", ec.message()), {}, "bad_http_request"));
    co_return false;
  }
  co_return true;
}

} // namespace

io::task<void> run_session(io::socket socket, const session_limits& limits, session_registry& registry,
                           request_handler handler, std::string peer) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  if (peer.empty())
    if (auto ep = socket.remote_endpoint(ec); !ec) peer = ep.address().to_string();
  io::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  auto entry = registry.add(stream);
  struct unregister { // however this coroutine ends, the registry forgets the stream
    session_registry& registry;
    std::list<session_registry::entry>::iterator entry;
    ~unregister() { registry.remove(entry); }
  } forget{registry, entry};
  session_context ctx{stream, buffer, registry, limits, peer, {}};
  request req; // each request of the connection in turn, its room kept (see request::clear)

  while (!registry.draining()) {
    // Idle keep-alive wait: nothing of the next request has arrived yet.
    if (buffer.size() == 0) {
      stream.expires_after(limits.idle_timeout);
      auto [rec, n] = co_await stream.async_read_some(buffer.prepare(4096), k_tuple);
      if (rec || registry.draining()) break;
      buffer.commit(n);
    }
    entry->busy = true;
    req.clear();
    if (!parse_whole_buffered(buffer, limits, req) && !co_await read_request(stream, buffer, limits, req)) break;
    bool keep_alive = false;
    try {
      keep_alive = co_await handler(ctx, req);
    } catch (const std::exception& e) {
      // A bug in one request's handling must not reach other requests or the process.
      spdlog::error("request {} {} failed: {}", std::string(req.method_string()), std::string(req.target()), e.what());
      keep_alive = false;
    }
    entry->busy = false;
    if (!keep_alive) break;
  }
  stream.socket().shutdown(io::socket::shutdown_send, ec);
  stream.close();
}

} // namespace llmgate::server
