#pragma once
// The HTTP/1.1 server loop shared by the gateway and the simulator, Beast's
// idiom: one coroutine per connection, a deadline on every read and write, a
// header and body limit on the parser, keep-alive, and a per-worker registry
// that closes idle connections when the process drains. Include only from the
// few translation units that speak HTTP (Beast is slow to compile).
#include "control/duration.hpp"
#include "io/beast.hpp"
#include "openai/error.hpp"
#include "server/request.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/intrusive/list.hpp>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace llmgate::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct session_limits {
  control::duration header_timeout{10000};
  control::duration body_timeout{30000};
  control::duration idle_timeout{60000};
  control::duration write_timeout{60000};
  std::uint64_t max_body_bytes = 8 << 20;
  std::uint32_t max_header_bytes = 16 << 10;
  std::uint32_t max_headers = 100;
};

// The connections of one worker (one thread): lets a drain close the idle
// ones at once and tell the busy ones to close after their response.
class session_registry final {
public:
  struct entry {
    io::tcp_stream* stream = nullptr;
    bool busy = false;
  };
  std::list<entry>::iterator add(io::tcp_stream& s) { return entries_.insert(entries_.end(), entry{&s, false}); }
  void remove(std::list<entry>::iterator it) { entries_.erase(it); }
  // Closes idle connections; busy ones finish their request and then close.
  void drain();
  // Closes idle connections now, without draining (later ones stay keep-alive).
  void close_idle();
  [[nodiscard]] bool draining() const noexcept { return draining_; }
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  // Closes every connection, busy or not (the drain deadline passed).
  void close_all();

private:
  std::list<entry> entries_;
  bool draining_ = false;
};

// What a handler gets: the connection, to write its answer (and for a
// streamed answer, to keep writing).
struct session_context {
  io::tcp_stream& stream;
  beast::flat_buffer& buffer;
  session_registry& registry;
  const session_limits& limits;
  std::string_view peer; // client address, for logs
  std::string head;      // every whole answer's head is written here (start_answer): its room is kept
};

// Handles one request and writes its response; returns whether the
// connection may carry another request.
using request_handler = std::function<io::task<bool>(session_context&, request&)>;

// peer: the client's address for logs and X-Forwarded-For; empty: the socket's
// own peer (a TLS relay's plain end has none worth naming).
io::task<void> run_session(io::socket socket, const session_limits& limits, session_registry& registry,
                           request_handler handler, std::string peer = {});

using header_list = openai::header_list;

// Text made of many short pieces (a head), in one allocation: `pieces` is
// called twice with a function that takes a string_view, once to count the
// bytes and once to copy them. An append a piece (out of line, a capacity
// check each) cost ~60 instructions, and a head has 15-25 pieces.
// assemble_into writes over `out`, whose room is kept: text made again and
// again (a session's answer heads, a backend connection's request heads)
// costs no allocation once the room is there.
template <class Pieces> void assemble_into(std::string& out, Pieces&& pieces) {
  std::size_t size = 0;
  pieces([&size](std::string_view s) { size += s.size(); });
  out.resize(size);
  char* at = out.data();
  pieces([&at](std::string_view s) {
    if (s.empty()) return; // its data may be null, which memcpy must not get
    std::memcpy(at, s.data(), s.size());
    at += s.size();
  });
}
template <class Pieces> [[nodiscard]] std::string assemble(Pieces&& pieces) {
  std::string out;
  assemble_into(out, std::forward<Pieces>(pieces));
  return out;
}

// A number as decimal text, on the stack (20 characters hold any 64-bit one, sign included).
class decimal {
public:
  template <std::integral Number> explicit decimal(Number n) noexcept
      : size_(std::to_chars(text_, text_ + sizeof text_, n).ptr - text_) {}
  [[nodiscard]] std::string_view view() const noexcept { return {text_, static_cast<std::size_t>(size_)}; }

private:
  char text_[20];
  std::ptrdiff_t size_;
};

// A 64-bit number as 16 lowercase hex digits, zero-padded, on the stack
// (request ids, the simulator's answer ids).
class hex64 {
public:
  explicit hex64(std::uint64_t v) noexcept {
    for (int i = 15; i >= 0; --i, v >>= 4) text_[i] = "0123456789abcdef"[v & 15];
  }
  [[nodiscard]] std::string_view view() const noexcept { return {text_, sizeof text_}; }

private:
  char text_[16];
};

// The head of a response, formatted by hand: at small sizes Beast's
// serializer costs more CPU than the rest of the proxying. content_length
// nullopt means a chunked body (a streamed answer); an empty content_type
// sends none.
// chunked = false with no content_length: the body runs until the connection
// closes (HTTP/1.0 clients, which know no chunked encoding).
// more: further headers after `headers` (a reply's own after the request's).
[[nodiscard]] std::string format_head(int status, std::string_view content_type, const header_list& headers,
                                      std::optional<std::size_t> content_length, bool keep_alive, bool chunked = true,
                                      const header_list* more = nullptr);
// The same, written over `out` (assemble_into).
void format_head_into(std::string& out, int status, std::string_view content_type, const header_list& headers,
                      std::optional<std::size_t> content_length, bool keep_alive, bool chunked = true,
                      const header_list* more = nullptr);

// Whether the response to req may keep the connection (the request allows
// it and the worker is not draining).
[[nodiscard]] bool keep_alive_for(const session_context& ctx, const request& req);

// Writes a whole response (head and body in one gather write) with its
// deadline; `more`: headers after `headers`. Returns whether the connection
// may carry another request.
io::task<bool> write_answer(session_context& ctx, const request& req, int status, std::string_view content_type,
                            const header_list& headers, std::string_view body, const header_list* more = nullptr);

// write_answer in two steps, for the request path: start_answer writes what
// the socket takes at once, which is nearly always all of it, without a
// coroutine frame; finish_answer writes the rest when it was not. The body
// must stay valid until then.
struct answer_write {
  bool keep = false;     // the connection may carry another request
  std::string_view head; // in the session's head (session_context::head), until its next answer
  std::string_view body; // empty for a HEAD request
  std::size_t sent = 0;  // bytes the socket took
  [[nodiscard]] bool done() const noexcept { return sent == head.size() + body.size(); }
};
[[nodiscard]] answer_write start_answer(session_context& ctx, const request& req, int status,
                                        std::string_view content_type, const header_list& headers,
                                        std::string_view body, const header_list* more = nullptr);
// Whether the connection may carry another request, as write_answer.
io::task<bool> finish_answer(session_context& ctx, answer_write w);

// An OpenAI-shaped local reply plus the request's own headers.
io::task<bool> write_reply(session_context& ctx, const request& req, const openai::local_reply& reply,
                           const header_list& headers = {});

// The head of a streamed (chunked) answer; returns false when the write failed.
io::task<bool> write_stream_head(session_context& ctx, int status, std::string_view content_type,
                                 const header_list& headers, bool keep_alive, bool chunked = true);

// True when the peer has closed its side (EOF pending) or the socket failed;
// never blocks and consumes nothing.
[[nodiscard]] bool peer_closed(io::socket& socket);

// Watches a client's socket while its request is served: if the client
// closes its side first, on_gone runs (it should make the work end soon, e.g.
// by closing the upstream connection). A plain completion handler rather than
// a second coroutine, since it sits on every request's path. Destroying the
// watch stops it; the handler may still run afterwards, but then does nothing.
// A client that sends its next request early (pipelining) only ends the watch.
// The watch is a one-byte peek, not a wait for readability: Asio re-arms the
// descriptor in epoll (an epoll_ctl system call) for every wait, where a peek
// joins the reads it already listens for (docs/BENCHMARKS.md, "System calls").
// After the request's own read came up short, the peek is queued without a
// recv of its own (io/drained_read.hpp).
class client_watch final {
public:
  client_watch(io::socket& socket, std::function<void()> on_gone);
  ~client_watch();
  client_watch(const client_watch&) = delete;
  client_watch& operator=(const client_watch&) = delete;

private:
  struct state {
    bool done = false;
    std::function<void()> on_gone;
    char peeked = 0; // the byte the peek looks at (it stays in the socket)
  };
  io::socket& socket_;
  std::shared_ptr<state> state_;
};

class watch_roster;

// A client_watch that starts once its request has lasted its roster's
// `after` (see watch_roster). on_gone may run from then on, as with
// client_watch; destroying it before then costs no system call and no round
// of the loop. When it starts, it also gives back the room of `idle_buffer`
// (the session's read buffer) unless that holds bytes (a pipelined request):
// a request that lasts (a model's answer, a held stream) does not keep the
// 4 KiB its connection reads into, and one answered sooner keeps it for the
// connection's next request instead of allocating it again.
class late_watch final {
public:
  late_watch(watch_roster& roster, io::socket& socket, std::function<void()> on_gone,
             beast::flat_buffer* idle_buffer = nullptr);
  late_watch(const late_watch&) = delete;
  late_watch& operator=(const late_watch&) = delete;
  [[nodiscard]] bool armed() const noexcept { return armed_.has_value(); }

private:
  friend class watch_roster;
  void arm();

  // In the roster's line until armed; unlinked by its own destructor.
  boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> hook_;
  std::chrono::steady_clock::time_point due_;
  io::socket& socket_;
  std::function<void()> on_gone_;
  beast::flat_buffer* idle_buffer_;
  std::optional<client_watch> armed_;
};

// The client watches of one worker's loop that have not started yet: a
// forwarded request is watched only once it has lasted `after`. Arming a
// watch costs little (a peek joins the reads the reactor already listens
// for), but ending one is a cancel, and Asio runs a cancelled operation's
// completion in a round of the loop of its own, after an epoll_wait of its
// own: a system call more for nearly every request (docs/BENCHMARKS.md,
// "CPU per request at the same load, and system calls"). A request answered sooner than `after` could save the backend
// next to nothing by being cancelled, so it goes unwatched; one that lasts
// longer (a model's answer, a wait in line or before a retry) is watched
// from then on, and a client that left before is noticed then. One timer
// for the roster, never cancelled: set for the oldest waiting watch while
// any waits, idle when none does.
class watch_roster final {
public:
  watch_roster(const io::executor& ex, std::chrono::steady_clock::duration after);
  watch_roster(const watch_roster&) = delete;
  watch_roster& operator=(const watch_roster&) = delete;
  [[nodiscard]] std::size_t waiting() const noexcept { return waiting_.size(); }

private:
  friend class late_watch;
  void enlist(late_watch& w);
  void wait_for(const late_watch& w); // the timer, set for w's due time
  void tick();

  std::chrono::steady_clock::duration after_;
  boost::intrusive::list<late_watch, boost::intrusive::constant_time_size<false>,
                         boost::intrusive::member_hook<late_watch, decltype(late_watch::hook_), &late_watch::hook_>>
      waiting_; // oldest first
  io::timer timer_;
  bool ticking_ = false;
};

} // namespace llmgate::server
