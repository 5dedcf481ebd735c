#include "tls/tls.hpp"
#include "io/io.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <stdexcept>
#include <string>

namespace llmgate::tls {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using local_socket = net::local::stream_protocol::socket;

namespace {

using io::k_tuple;
// How long a closing relay waits for the peer's close_notify.
constexpr auto k_goodbye = std::chrono::seconds(2);

} // namespace

struct context::impl {
  impl(ssl::context::method m, bool s) : ssl(m), server(s) {}
  ssl::context ssl;
  bool server;
  bool verify = false;
  std::string server_name; // a client's: checked and sent instead of the host it connects to
};

namespace {

// TLS 1.2 and later only, no compression, no renegotiation.
void harden(ssl::context& c) {
  c.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(c.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_options(c.native_handle(), SSL_OP_NO_RENEGOTIATION);
}

void load_pair(ssl::context& c, const std::string& cert, const std::string& key, std::string_view what) {
  boost::system::error_code ec;
  c.use_certificate_chain_file(cert, ec);
  if (ec) throw std::runtime_error(fmt::format("{}.cert {}: {}", what, cert, ec.message()));
  c.use_private_key_file(key, ssl::context::pem, ec);
  if (ec) throw std::runtime_error(fmt::format("{}.key {}: {}", what, key, ec.message()));
  if (SSL_CTX_check_private_key(c.native_handle()) != 1)
    throw std::runtime_error(fmt::format("{}: the key {} does not belong to the certificate {}", what, key, cert));
}

// One TLS connection relayed to a local socket pair; lives as long as one of
// its two pumps runs.
struct relay {
  relay(io::socket s, ssl::context& c)
      : tls(std::move(s), c), inner(tls.get_executor()), inbound_ended(tls.get_executor()) {
    inbound_ended.expires_at(io::timer::time_point::max());
  }
  ssl::stream<io::socket> tls;
  local_socket inner;      // our end of the pair
  io::timer inbound_ended; // cancelled when the inbound pump ends
  bool inbound_done = false, outbound_done = false;
  bool peer_broken = false; // the peer reset or cut the connection: no goodbye
  bool handshaking = false, timed_out = false;
  std::array<char, 16384> from_peer{}, to_peer{};

  void close() {
    boost::system::error_code ignored;
    tls.next_layer().close(ignored);
    inner.close(ignored);
  }
};

// Peer → caller. At the peer's end the caller reads end of file, after the data.
io::task<void> inbound(std::shared_ptr<relay> r) {
  while (!r->outbound_done) {
    auto [ec, n] = co_await r->tls.async_read_some(net::buffer(r->from_peer), k_tuple);
    if (ec) {
      // eof: the peer's close_notify; operation_aborted: our own cancel. Anything else cut it.
      r->peer_broken = ec != net::error::eof && ec != net::error::operation_aborted;
      break;
    }
    auto [wec, wn] = co_await net::async_write(r->inner, net::buffer(r->from_peer.data(), n), k_tuple);
    if (wec) break;
  }
  r->inbound_done = true;
  boost::system::error_code ignored;
  r->inner.shutdown(net::socket_base::shutdown_send, ignored);
  r->inbound_ended.cancel();
}

// Caller → peer. When the caller closes its end, the connection ends: the
// inbound pump stops, close_notify goes out, both sockets close.
io::task<void> outbound(std::shared_ptr<relay> r) {
  for (;;) {
    auto [ec, n] = co_await r->inner.async_read_some(net::buffer(r->to_peer), k_tuple);
    if (ec) break;
    auto [wec, wn] = co_await net::async_write(r->tls, net::buffer(r->to_peer.data(), n), k_tuple);
    if (wec) {
      r->peer_broken = true;
      break;
    }
  }
  r->outbound_done = true;
  boost::system::error_code ignored;
  if (!r->inbound_done) { // one read at a time on the TLS stream: the inbound pump goes before the goodbye
    r->tls.next_layer().cancel(ignored);
    r->inner.cancel(ignored);
    co_await r->inbound_ended.async_wait(k_tuple);
  }
  if (!r->peer_broken) {
    io::timer limit(r->tls.get_executor(), k_goodbye);
    limit.async_wait([r](const boost::system::error_code& ec) {
      if (!ec) r->close();
    });
    co_await r->tls.async_shutdown(k_tuple);
    limit.cancel();
  }
  r->close();
}

} // namespace

context context::server(const control::tls_server_config& cfg) {
  auto i = std::make_shared<impl>(ssl::context::tls_server, true);
  harden(i->ssl);
  load_pair(i->ssl, cfg.cert, cfg.key, "server.tls");
  return context(std::move(i));
}

context context::client(const control::tls_client_config& cfg) {
  auto i = std::make_shared<impl>(ssl::context::tls_client, false);
  harden(i->ssl);
  boost::system::error_code ec;
  if (!cfg.ca.empty()) {
    i->ssl.load_verify_file(cfg.ca, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.ca {}: {}", cfg.ca, ec.message()));
  } else {
    i->ssl.set_default_verify_paths(ec);
    if (ec) throw std::runtime_error(fmt::format("tls: the system's certificate authorities: {}", ec.message()));
  }
  if (!cfg.cert.empty()) load_pair(i->ssl, cfg.cert, cfg.key, "tls");
  i->verify = cfg.verify;
  i->server_name = cfg.server_name;
  return context(std::move(i));
}

io::task<boost::system::result<io::socket>> secure(io::socket socket, const context& ctx, std::string_view host,
                                                   control::duration timeout) {
  auto ex = socket.get_executor();
  auto& c = const_cast<context::impl&>(ctx.get()); // Asio wants the context non-const; streams only read it
  auto r = std::make_shared<relay>(std::move(socket), c.ssl);
  if (!c.server) {
    const std::string name = c.server_name.empty() ? std::string(host) : c.server_name;
    boost::system::error_code not_ip;
    (void)net::ip::make_address(name, not_ip);
    if (not_ip) SSL_set_tlsext_host_name(r->tls.native_handle(), name.c_str()); // SNI carries names, not addresses
    if (c.verify) {
      r->tls.set_verify_mode(ssl::verify_peer);
      r->tls.set_verify_callback(ssl::host_name_verification(name)); // a name or an IP address in the certificate
    } else {
      r->tls.set_verify_mode(ssl::verify_none);
    }
  }
  io::timer limit(ex, timeout);
  r->handshaking = true;
  limit.async_wait([r](const boost::system::error_code& ec) {
    if (ec || !r->handshaking) return; // cancelled, or it fired just as the handshake ended
    r->timed_out = true;
    boost::system::error_code ignored;
    r->tls.next_layer().close(ignored);
  });
  auto [hec] = co_await r->tls.async_handshake(c.server ? ssl::stream_base::server : ssl::stream_base::client, k_tuple);
  r->handshaking = false;
  limit.cancel();
  if (r->timed_out) co_return make_error_code(net::error::timed_out);
  if (hec) co_return hec;

  local_socket theirs(ex);
  boost::system::error_code ec;
  net::local::connect_pair(r->inner, theirs, ec);
  if (ec) co_return ec;
  // The caller's end, typed as TCP so the HTTP and RESP code take it as it is.
  io::socket out(ex);
  out.assign(tcp::v4(), theirs.release(), ec);
  if (ec) co_return ec;
  net::co_spawn(ex, inbound(r), net::detached);
  net::co_spawn(ex, outbound(std::move(r)), net::detached);
  co_return out;
}

} // namespace llmgate::tls
