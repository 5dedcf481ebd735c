// The TLS relay between two real sockets on loopback, both ends through
// tls::secure() (one as server, one as client), with certificates made by the
// openssl command: bytes cross both ways, a close on one side reaches the
// other as end of file after the data, a handshake that never comes times
// out, and a certificate the client does not trust or that names another
// host is refused.
#include "io/io.hpp"
#include "redis_server.hpp"
#include "tls/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>
#include <string>

namespace llmgate::tls {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using io::k_tuple;
using testing::run;

// A CA, a certificate it signs for 127.0.0.1, and a CA that signed nothing.
struct certificates {
  std::filesystem::path dir;
  certificates() {
    char tmpl[] = "/tmp/llmgate-tls-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    const auto d = dir.string();
    const std::string script =
        "cd " + d +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key -out ca.crt"
        " -subj '/CN=test CA' 2>/dev/null"
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout other.key"
        " -out other.crt -subj '/CN=other CA' 2>/dev/null"
        " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr"
        " -subj '/CN=localhost' 2>/dev/null"
        " && printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext"
        " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out server.crt"
        " -extfile server.ext 2>/dev/null";
    if (std::system(script.c_str()) != 0) throw std::runtime_error("openssl could not make the test certificates");
  }
  ~certificates() { std::filesystem::remove_all(dir); }
  [[nodiscard]] std::string at(const char* f) const { return (dir / f).string(); }
};

const certificates& certs() {
  static const certificates c;
  return c;
}

context server_context() { return context::server({certs().at("server.crt"), certs().at("server.key")}); }

context client_context(const std::string& ca, const std::string& server_name = {}) {
  control::tls_client_config c;
  c.enabled = true;
  c.ca = ca;
  c.server_name = server_name;
  return context::client(c);
}

// A connected pair of plain ends: what the server's and the client's callers get.
struct plain_pair {
  boost::system::result<io::socket> server = boost::system::error_code{}, client = boost::system::error_code{};
};

io::task<plain_pair> connect(const context& server_ctx, const context& client_ctx) {
  auto ex = co_await net::this_coro::executor;
  io::acceptor acceptor(ex, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  io::socket raw_client(ex);
  co_await raw_client.async_connect(acceptor.local_endpoint(), io::use_task);
  auto raw_server = co_await acceptor.async_accept(io::use_task);
  plain_pair out;
  // Both handshakes at once: each side needs the other.
  bool server_done = false;
  net::co_spawn(
      ex,
      [&]() -> io::task<void> {
        out.server = co_await secure(std::move(raw_server), server_ctx, {}, 5000ms);
        server_done = true;
      },
      net::detached);
  out.client = co_await secure(std::move(raw_client), client_ctx, "127.0.0.1", 5000ms);
  io::timer t(ex);
  while (!server_done) {
    t.expires_after(1ms);
    co_await t.async_wait(k_tuple);
  }
  co_return out;
}

// Everything the socket sends until it closes its side.
io::task<std::string> read_to_end(io::socket& s) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(net::buffer(buf), k_tuple);
    out.append(buf, n);
    if (ec) co_return ec == net::error::eof ? out : out + "<" + ec.message() + ">";
  }
}

TEST(tls_relay, bytes_cross_both_ways_and_a_close_arrives_after_the_data) {
  net::io_context ioc;
  const auto s = server_context();
  const auto c = client_context(certs().at("ca.crt"));
  auto p = run(ioc, connect(s, c));
  ASSERT_TRUE(p.client) << p.client.error().message();
  ASSERT_TRUE(p.server) << p.server.error().message();
  auto& client = *p.client;
  auto& server = *p.server;

  // A request, read whole by the server.
  const std::string request = "GET / HTTP/1.1\r\n\r\n";
  run(ioc, [&]() -> io::task<int> {
    co_await net::async_write(client, net::buffer(request), io::use_task);
    std::string got(request.size(), '\0');
    co_await net::async_read(server, net::buffer(got), io::use_task);
    EXPECT_EQ(got, request);
    co_return 0;
  }());

  // 1 MiB back, then the server closes: the client reads every byte, then end of file.
  std::string answer(1 << 20, '\0');
  for (std::size_t i = 0; i < answer.size(); ++i) answer[i] = static_cast<char>('a' + i % 26);
  const auto got = run(ioc, [&]() -> io::task<std::string> {
    net::co_spawn(
        ioc,
        [&]() -> io::task<void> {
          co_await net::async_write(server, net::buffer(answer), io::use_task);
          server.close();
        },
        net::detached);
    co_return co_await read_to_end(client);
  }());
  EXPECT_EQ(got.size(), answer.size());
  EXPECT_TRUE(got == answer) << got.substr(got.size() > 64 ? got.size() - 64 : 0);
}

TEST(tls_relay, the_clients_close_reaches_the_server_as_end_of_file) {
  net::io_context ioc;
  const auto s = server_context();
  const auto c = client_context(certs().at("ca.crt"));
  auto p = run(ioc, connect(s, c));
  ASSERT_TRUE(p.client && p.server);
  const auto got = run(ioc, [&]() -> io::task<std::string> {
    co_await net::async_write(*p.client, net::buffer(std::string("last words")), io::use_task);
    p.client->close();
    co_return co_await read_to_end(*p.server);
  }());
  EXPECT_EQ(got, "last words");
}

TEST(tls_relay, a_handshake_that_never_comes_times_out) {
  net::io_context ioc;
  const auto ec = run(ioc, [&]() -> io::task<boost::system::error_code> {
    auto ex = co_await net::this_coro::executor;
    io::acceptor acceptor(ex, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    io::socket raw(ex);
    co_await raw.async_connect(acceptor.local_endpoint(), io::use_task);
    [[maybe_unused]] auto silent = co_await acceptor.async_accept(io::use_task); // accepted, never answers
    auto r = co_await secure(std::move(raw), client_context(certs().at("ca.crt")), "127.0.0.1", 200ms);
    co_return r ? boost::system::error_code{} : r.error();
  }());
  EXPECT_EQ(ec, net::error::timed_out) << ec.message();
}

TEST(tls_relay, an_untrusted_or_misnamed_certificate_is_refused) {
  net::io_context ioc;
  const auto s = server_context();
  for (const auto& c : {client_context(certs().at("other.crt")), client_context(certs().at("ca.crt"), "elsewhere")}) {
    auto p = run(ioc, connect(s, c));
    ASSERT_FALSE(p.client);
    EXPECT_NE(p.client.error().message().find("certificate verify failed"), std::string::npos)
        << p.client.error().message();
  }
}

TEST(tls_relay, bad_files_are_named) {
  try {
    (void)context::server({"/nonexistent/cert.pem", certs().at("server.key")});
    FAIL() << "a missing certificate was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cert.pem"), std::string::npos) << e.what();
  }
  try {
    (void)context::server({certs().at("server.crt"), certs().at("ca.key")});
    FAIL() << "a key that is not the certificate's was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(certs().at("ca.key")), std::string::npos) << e.what();
  }
}

} // namespace
} // namespace llmgate::tls
