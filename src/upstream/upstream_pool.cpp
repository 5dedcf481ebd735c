#include "upstream/upstream_pool.hpp"

#include "server/http_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace llmgate::upstream {

using tcp = net::ip::tcp;

net::awaitable<boost::system::result<std::unique_ptr<connection>>> pool::acquire(control::duration connect_timeout,
                                                                                 bool fresh) {
  while (!fresh && !idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    // A backend closes idle keep-alive connections on its own schedule; skip the ones it already closed.
    if (server::peer_closed(c->stream.socket())) continue;
    c->reused = true;
    co_return c;
  }
  auto c = std::make_unique<connection>(ex_);
  boost::system::error_code ec;
  const auto literal = net::ip::make_address(backend_.address.host, ec);
  c->stream.expires_after(connect_timeout);
  if (!ec) { // an IP address: no resolver (Asio's runs getaddrinfo on a thread of its own)
    auto [cec] = co_await c->stream.async_connect(tcp::endpoint(literal, backend_.address.port),
                                                  net::as_tuple(net::use_awaitable));
    if (cec) co_return cec;
  } else {
    tcp::resolver resolver(ex_);
    auto [rec, endpoints] = co_await resolver.async_resolve(
        backend_.address.host, std::to_string(backend_.address.port), net::as_tuple(net::use_awaitable));
    if (rec) co_return rec;
    auto [cec, ep] = co_await c->stream.async_connect(endpoints, net::as_tuple(net::use_awaitable));
    if (cec) co_return cec;
  }
  c->stream.socket().set_option(tcp::no_delay(true), ec);
  co_return c;
}

void pool::release(std::unique_ptr<connection> c) {
  if (idle_.size() >= max_idle_ || !c->stream.socket().is_open()) return;
  c->stream.expires_never();
  c->buffer.clear();
  idle_.push_back(std::move(c));
}

} // namespace llmgate::upstream
