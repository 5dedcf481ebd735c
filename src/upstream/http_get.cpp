#include "upstream/http_get.hpp"
#include "io/beast.hpp"

#include <boost/asio/steady_timer.hpp>

#include "control/config.hpp"
#include "tls/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

namespace llmgate::upstream {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

io::task<boost::system::result<get_result>> http_get(const http_url& url, control::duration timeout,
                                                     std::size_t max_body, std::string_view bearer,
                                                     const tls::context* tls) {
  if (url.tls && !tls) co_return make_error_code(boost::system::errc::protocol_not_supported); // https, no context
  auto ex = co_await net::this_coro::executor;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  io::resolver resolver(ex);
  // Name resolution runs on Asio's resolver thread: the timeout covers it too.
  io::timer resolve_limit(ex, timeout);
  resolve_limit.async_wait([&resolver](const boost::system::error_code& ec) {
    if (!ec) resolver.cancel(); // only touched when it fired, while the coroutine still waits on the resolver
  });
  auto [rec, endpoints] = co_await resolver.async_resolve(url.host, std::to_string(url.port), io::k_tuple);
  resolve_limit.cancel();
  if (rec == net::error::operation_aborted) co_return make_error_code(beast::error::timeout);
  if (rec) co_return rec;
  io::connecting_stream connecting(ex);
  connecting.expires_at(deadline); // one deadline for the whole exchange
  if (auto [ec, ep] = co_await connecting.async_connect(endpoints, io::k_tuple_awaitable); ec) co_return ec;
  auto socket = connecting.release_socket();
  if (url.tls) {
    const auto left = std::chrono::duration_cast<control::duration>(deadline - std::chrono::steady_clock::now());
    auto plain = co_await tls::secure(std::move(socket), *tls, url.host, std::max(left, control::duration(1)));
    if (!plain) co_return plain.error();
    socket = std::move(*plain);
  }
  io::tcp_stream stream(std::move(socket));
  stream.expires_at(deadline);
  http::request<http::empty_body> req{http::verb::get, url.target, 11};
  req.set(http::field::host, fmt::format("{}:{}", url.host, url.port));
  req.set(http::field::user_agent, "llmgate/0.1");
  if (!bearer.empty()) req.set(http::field::authorization, fmt::format("Bearer {}", bearer));
  req.keep_alive(false);
  if (auto [ec, n] = co_await http::async_write(stream, req, io::k_tuple); ec) co_return ec;
  beast::flat_buffer buffer;
  // Beast reads into the room a buffer has, at least 512 bytes: a server's
  // metrics page (tens of KiB, every scrape interval) took a recv and a
  // wait on the reactor per 512 bytes.
  buffer.reserve(16 * 1024);
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, io::k_tuple); ec) co_return ec;
  const auto& res = parser.get();
  boost::system::error_code ignored;
  stream.socket().shutdown(io::socket::shutdown_both, ignored);
  co_return get_result{static_cast<int>(res.result_int()), std::string(res[http::field::content_type]), res.body()};
}

boost::system::result<get_result> http_get_blocking(const http_url& url, control::duration timeout,
                                                    const tls::context* tls) {
  net::io_context ioc{1};
  auto future = net::co_spawn(ioc, http_get(url, timeout, 8 << 20, {}, tls), net::use_future);
  ioc.run();
  return future.get();
}

} // namespace llmgate::upstream
