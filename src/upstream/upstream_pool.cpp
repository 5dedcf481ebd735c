#include "upstream/upstream_pool.hpp"

#include "server/http_session.hpp"
#include "tls/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace llmgate::upstream {

using tcp = net::ip::tcp;

namespace {
constexpr std::chrono::milliseconds k_check_after_idle{500};
} // namespace

std::unique_ptr<connection> pool::take_idle() {
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    // A backend closes idle keep-alive connections on its own schedule (5 s
    // and more: uvicorn's, vLLM's): skip the ones it already closed. A
    // connection idle for less than that is not asked (a system call per
    // request); should the backend have closed it anyway, the exchange sees
    // it fail and tries once more on a new connection.
    if (std::chrono::steady_clock::now() - c->idle_since >= k_check_after_idle &&
        server::peer_closed(c->stream.socket()))
      continue;
    c->reused = true;
    return c;
  }
  return nullptr;
}

io::task<boost::system::result<std::unique_ptr<connection>>> pool::connect(control::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  io::connecting_stream stream(ex_);
  boost::system::error_code ec;
  const auto literal = net::ip::make_address(backend_.address.host, ec);
  stream.expires_at(deadline);
  if (!ec) { // an IP address: no resolver (Asio's runs getaddrinfo on a thread of its own)
    auto [cec] = co_await stream.async_connect(tcp::endpoint(literal, backend_.address.port), io::k_tuple);
    if (cec) co_return cec;
  } else {
    io::resolver resolver(ex_);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(backend_.address.host, std::to_string(backend_.address.port), io::k_tuple);
    if (rec) co_return rec;
    auto [cec, ep] = co_await stream.async_connect(endpoints, io::k_tuple_awaitable);
    if (cec) co_return cec;
  }
  stream.socket().set_option(tcp::no_delay(true), ec);
  auto socket = stream.release_socket();
  if (tls_) {
    const auto left = std::chrono::duration_cast<control::duration>(deadline - std::chrono::steady_clock::now());
    auto plain =
        co_await tls::secure(std::move(socket), *tls_, backend_.address.host, std::max(left, control::duration(1)));
    if (!plain) co_return plain.error();
    socket = std::move(*plain);
  }
  co_return std::make_unique<connection>(std::move(socket));
}

void pool::release(std::unique_ptr<connection> c) {
  if (idle_.size() >= max_idle_ || !c->stream.socket().is_open()) return;
  c->stream.expires_never();
  c->buffer.clear();
  c->idle_since = std::chrono::steady_clock::now();
  idle_.push_back(std::move(c));
}

} // namespace llmgate::upstream
