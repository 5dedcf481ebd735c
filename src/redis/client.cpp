#include "redis/client.hpp"
#include "io/io.hpp"

#include "tls/tls.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <deque>
#include <random>
#include <spdlog/spdlog.h>

namespace llmgate::redis {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using io::k_tuple;
constexpr int k_timeouts_before_reconnect = 5;

namespace {

struct error_category final : boost::system::error_category {
  const char* name() const noexcept override { return "llmgate.redis"; }
  std::string message(int e) const override {
    switch (static_cast<client_error>(e)) {
    case client_error::timeout: return "redis call timed out";
    case client_error::disconnected: return "redis connection lost";
    case client_error::closed: return "redis client closed";
    }
    return "redis error";
  }
};

} // namespace

boost::system::error_code make_error_code(client_error e) {
  static const error_category category;
  return {static_cast<int>(e), category};
}

// One call's place in the pipeline: its bytes, then its outcome.
struct pending {
  explicit pending(io::executor ex) : done(std::move(ex), io::timer::time_point::max()) {}
  std::string bytes;
  io::timer done;  // cancelled when the outcome is set
  int dropped = 0; // replies to read and drop before its own
  std::optional<reply> answer;
  boost::system::error_code error;
  bool finished = false;
  void finish(std::optional<reply> r, boost::system::error_code ec) {
    if (finished) return;
    finished = true;
    answer = std::move(r);
    error = ec;
    done.cancel();
  }
};

struct client::impl : std::enable_shared_from_this<impl> {
  impl(io::executor e, client_options o) : ex(std::move(e)), opts(std::move(o)), socket(ex), wake(ex) {}

  io::executor ex;
  client_options opts;
  io::socket socket;
  io::timer wake;                                 // the writer sleeps on it when there is nothing to send
  std::deque<std::shared_ptr<pending>> unsent;    // waiting to be written
  std::deque<std::shared_ptr<pending>> in_flight; // written, replies due in this order
  bool is_connected = false, connecting = false, closed = false;
  std::uint64_t session = 0; // bumped on every (re)connect, so old loops stop
  control::duration backoff{0};
  std::chrono::steady_clock::time_point last_attempt{};
  bool handshake_failed = false; // AUTH/SELECT refused: logged once until it works
  int timeouts_in_a_row = 0;     // written calls that got no reply in time
  std::mt19937_64 rng{std::random_device{}()};

  void start() {
    if (connecting || is_connected || closed) return;
    connecting = true;
    net::co_spawn(ex, connect_loop(shared_from_this()), net::detached);
  }

  // Connects (retrying with jittered backoff while calls wait), then runs the writer and reader.
  static io::task<void> connect_loop(std::shared_ptr<impl> self) {
    while (!self->closed) {
      if (self->backoff.count() > 0) { // jittered, counted from the last attempt (which may be long ago)
        std::uniform_int_distribution<std::int64_t> d(self->backoff.count() / 2, self->backoff.count());
        const auto at = self->last_attempt + control::duration(d(self->rng));
        if (at > std::chrono::steady_clock::now()) {
          io::timer t(self->ex, at);
          co_await t.async_wait(k_tuple);
          if (self->closed) break;
        }
      }
      self->last_attempt = std::chrono::steady_clock::now();
      auto ec = co_await self->connect_once();
      if (self->closed) { // close() while connecting
        boost::system::error_code ignored;
        self->socket.close(ignored);
        break;
      }
      if (!ec) {
        self->backoff = control::duration(0);
        self->connecting = false;
        self->is_connected = true;
        const auto session = ++self->session;
        net::co_spawn(self->ex, writer(self, session), net::detached);
        net::co_spawn(self->ex, reader(self, session), net::detached);
        co_return;
      }
      spdlog::debug("redis {}:{}: connect failed: {}", self->opts.host, self->opts.port, ec.message());
      self->fail_all(make_error_code(client_error::disconnected)); // nobody waits behind a dead server
      self->backoff = std::min(self->opts.max_backoff, std::max(control::duration(50), self->backoff * 2));
      if (self->unsent.empty() && self->in_flight.empty()) break; // reconnect on the next call
    }
    self->connecting = false;
  }

  // A TCP connection to host:port on `sock`, within connect_timeout, and with
  // opts.tls, the TLS handshake within another (`sock` is then the relay's plain end).
  io::task<boost::system::error_code> open(io::socket& sock, const std::string& host, std::uint16_t port) {
    boost::system::error_code ec;
    sock = io::socket(ex);
    auto address = net::ip::make_address(host, ec);
    tcp::endpoint ep;
    if (!ec) {
      ep = tcp::endpoint(address, port);
    } else {
      io::resolver resolver(ex);
      auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), k_tuple);
      if (rec || results.empty()) co_return rec ? rec : make_error_code(client_error::disconnected);
      ep = *results.begin();
    }
    io::timer limit(ex, opts.connect_timeout);
    limit.async_wait([&sock, self = shared_from_this()](const boost::system::error_code& e) {
      if (!e) sock.close();
    });
    auto [cec] = co_await sock.async_connect(ep, k_tuple);
    limit.cancel();
    if (cec || !opts.tls) co_return cec;
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    sock.set_option(net::socket_base::keep_alive(true), ignored); // a dead peer is found even when idle
    auto plain = co_await tls::secure(std::move(sock), *opts.tls,
                                      opts.tls_server_name.empty() ? host : opts.tls_server_name, opts.connect_timeout);
    if (!plain) {
      sock = io::socket(ex);
      co_return plain.error();
    }
    sock = std::move(*plain);
    co_return boost::system::error_code{};
  }

  // Sends `commands` on `sock` and reads `expected` replies, within connect_timeout.
  io::task<boost::system::result<std::vector<reply>>> exchange(io::socket& sock, const std::string& commands,
                                                               int expected) {
    io::timer limit(ex, opts.connect_timeout);
    limit.async_wait([&sock, self = shared_from_this()](const boost::system::error_code& e) {
      if (!e) sock.close();
    });
    if (auto [wec, n] = co_await net::async_write(sock, net::buffer(commands), k_tuple); wec) co_return wec;
    decoder dec;
    char buf[1024];
    std::vector<reply> out;
    while (static_cast<int>(out.size()) < expected) {
      auto [rec, n] = co_await sock.async_read_some(net::buffer(buf), k_tuple);
      if (rec || !dec.feed(std::string_view(buf, n))) co_return rec ? rec : make_error_code(client_error::disconnected);
      try {
        while (auto r = dec.next()) out.push_back(std::move(*r));
      } catch (const std::exception&) {
        co_return make_error_code(client_error::disconnected);
      }
    }
    limit.cancel();
    co_return out;
  }

  // Redis Sentinel: the current master's address, from the first sentinel that knows it.
  io::task<std::optional<std::pair<std::string, std::uint16_t>>> ask_sentinels() {
    const auto ask = command({"SENTINEL", "get-master-addr-by-name", opts.master_name});
    for (const auto& [host, port] : opts.sentinels) {
      io::socket sock(ex);
      if (auto ec = co_await open(sock, host, port); ec) continue;
      auto r = co_await exchange(sock, ask, 1);
      boost::system::error_code ignored;
      sock.close(ignored);
      if (!r || r->front().type != reply::kind::array || r->front().elements.size() != 2) continue;
      std::uint16_t master_port = 0;
      const auto& p = r->front().elements[1].text;
      if (std::from_chars(p.data(), p.data() + p.size(), master_port).ec != std::errc{}) continue;
      co_return std::pair{r->front().elements[0].text, master_port};
    }
    co_return std::nullopt;
  }

  io::task<boost::system::error_code> connect_once() {
    if (!opts.sentinels.empty()) { // follow the master wherever the sentinels say it is now
      auto master = co_await ask_sentinels();
      if (!master) {
        if (!handshake_failed) spdlog::error("redis: no sentinel knows master '{}'", opts.master_name);
        handshake_failed = true;
        co_return make_error_code(client_error::disconnected);
      }
      if (master->first != opts.host || master->second != opts.port)
        spdlog::info("redis: master '{}' is at {}:{}", opts.master_name, master->first, master->second);
      opts.host = master->first;
      opts.port = master->second;
    }
    if (auto ec = co_await open(socket, opts.host, opts.port); ec) co_return ec;
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    socket.set_option(net::socket_base::keep_alive(true), ignored); // a dead peer is found even when idle
    // AUTH and SELECT are answered before any call is let through: a call
    // must never run as the wrong user or in the wrong database. Behind
    // sentinels, ROLE confirms it is the master (it may have just been demoted).
    std::string hello;
    std::vector<std::string_view> what;
    if (!opts.password.empty()) {
      hello +=
          opts.username.empty() ? command({"AUTH", opts.password}) : command({"AUTH", opts.username, opts.password});
      what.emplace_back("AUTH");
    }
    if (opts.database != 0) {
      hello += command({"SELECT", std::to_string(opts.database)});
      what.emplace_back("SELECT");
    }
    if (!opts.sentinels.empty()) {
      hello += command({"ROLE"});
      what.emplace_back("ROLE");
    }
    if (what.empty()) co_return boost::system::error_code{};
    auto replies = co_await exchange(socket, hello, static_cast<int>(what.size()));
    if (!replies) co_return replies.error();
    for (std::size_t i = 0; i < what.size(); ++i) {
      const auto& r = (*replies)[i];
      const bool ok = what[i] == "ROLE"
                          ? r.type == reply::kind::array && !r.elements.empty() && r.elements[0].text == "master"
                          : !r.is_error();
      if (ok) continue;
      if (!handshake_failed)
        spdlog::error("redis {}:{}: {} refused: {}", opts.host, opts.port, what[i],
                      what[i] == "ROLE" ? std::string("not the master") : r.text);
      handshake_failed = true;
      co_return make_error_code(client_error::disconnected); // retried with backoff, logged once
    }
    handshake_failed = false;
    co_return boost::system::error_code{};
  }

  static io::task<void> writer(std::shared_ptr<impl> self, std::uint64_t session) {
    std::string batch;
    while (self->session == session && self->is_connected) {
      if (self->unsent.empty()) {
        self->wake.expires_at(io::timer::time_point::max());
        co_await self->wake.async_wait(k_tuple);
        continue;
      }
      batch.clear();
      while (!self->unsent.empty()) { // everything waiting goes in one write
        auto p = std::move(self->unsent.front());
        self->unsent.pop_front();
        batch += p->bytes;
        std::string().swap(p->bytes); // sent: only its reply is waited for now
        self->in_flight.push_back(std::move(p));
      }
      auto [ec, n] = co_await net::async_write(self->socket, net::buffer(batch), k_tuple);
      if (ec) {
        if (self->session == session) self->drop(make_error_code(client_error::disconnected));
        co_return;
      }
    }
  }

  static io::task<void> reader(std::shared_ptr<impl> self, std::uint64_t session) {
    decoder dec;
    char buf[16384];
    while (self->session == session && self->is_connected) {
      auto [ec, n] = co_await self->socket.async_read_some(net::buffer(buf), k_tuple);
      if (self->session != session) co_return;
      if (ec || !dec.feed(std::string_view(buf, n))) {
        self->drop(make_error_code(client_error::disconnected));
        co_return;
      }
      try {
        while (auto r = dec.next()) {
          if (self->in_flight.empty()) { // a reply nobody asked for: the stream is out of step
            self->drop(make_error_code(client_error::disconnected));
            co_return;
          }
          self->timeouts_in_a_row = 0;
          if (self->in_flight.front()->dropped > 0) {
            --self->in_flight.front()->dropped;
            continue;
          }
          auto p = std::move(self->in_flight.front());
          self->in_flight.pop_front();
          p->finish(std::move(*r), {});
        }
      } catch (const std::exception& e) {
        spdlog::warn("redis {}:{}: {}", self->opts.host, self->opts.port, e.what());
        self->drop(make_error_code(client_error::disconnected));
        co_return;
      }
    }
  }

  // The connection is gone: every call on it fails, and a reconnect starts if calls wait.
  void drop(boost::system::error_code why) {
    if (!is_connected) return;
    is_connected = false;
    ++session;
    boost::system::error_code ignored;
    socket.close(ignored);
    wake.cancel();
    for (auto& p : in_flight) p->finish(std::nullopt, why);
    in_flight.clear();
    if (why != make_error_code(client_error::closed))
      spdlog::warn("redis {}:{}: connection lost ({})", opts.host, opts.port, why.message());
    if (!unsent.empty()) start();
  }

  void fail_all(boost::system::error_code why) {
    for (auto& p : in_flight) p->finish(std::nullopt, why);
    in_flight.clear();
    for (auto& p : unsent) p->finish(std::nullopt, why);
    unsent.clear();
  }
};

client::client(io::executor ex, client_options opts) : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {}

client::~client() { close(); }

bool client::connected() const noexcept { return impl_->is_connected; }

io::executor client::executor() const { return impl_->ex; }

void client::close() {
  impl_->closed = true;
  impl_->drop(make_error_code(client_error::closed));
  impl_->fail_all(make_error_code(client_error::closed));
}

io::task<boost::system::result<reply>> client::call(std::string cmd, control::duration timeout, int dropped) {
  auto self = impl_;
  if (self->closed) co_return make_error_code(client_error::closed);
  auto p = std::make_shared<pending>(self->ex);
  p->bytes = std::move(cmd);
  p->dropped = dropped;
  self->unsent.push_back(p);
  if (self->is_connected)
    self->wake.cancel(); // the writer sends it now
  else
    self->start();
  // Wait for the reply, or the deadline: the pending entry stays in the
  // pipeline either way (its reply, when it comes, is matched and dropped).
  io::timer limit(self->ex, timeout);
  limit.async_wait([p, self](const boost::system::error_code& ec) {
    if (ec) return;
    // Not written yet: it never will be (a timed-out admission must not count later).
    if (auto it = std::find(self->unsent.begin(), self->unsent.end(), p); it != self->unsent.end()) {
      self->unsent.erase(it);
      p->finish(std::nullopt, make_error_code(client_error::timeout));
      return;
    }
    p->finish(std::nullopt, make_error_code(client_error::timeout));
    // Written and unanswered, again and again: a peer that reads and never
    // answers, or a connection silently gone. Start afresh.
    if (++self->timeouts_in_a_row >= k_timeouts_before_reconnect) {
      self->timeouts_in_a_row = 0;
      self->drop(make_error_code(client_error::timeout));
    }
  });
  if (!p->finished) co_await p->done.async_wait(k_tuple);
  limit.cancel();
  if (p->answer) co_return std::move(*p->answer);
  co_return p->error;
}

} // namespace llmgate::redis
