// server::request_parser, fed a client's request as bytes a piece at a time
// the way the server loop feeds it: the request line, every field in order
// as spelled, lookups by field and by name (without case; the first of two),
// keep-alive as the head says, the body whatever its framing, the limits, and
// a request that stays whole when moved (its head is kept as positions).
#include "server/request.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>
#include <memory>
#include <string>
#include <utility>

namespace llmgate::server {
namespace {

namespace http = boost::beast::http;
namespace net = boost::asio;

// Feeds `wire` to a parser `step` bytes at a time; the error, if any.
boost::system::error_code feed(request& out, std::string_view wire, std::size_t step,
                               std::uint32_t header_limit = 16 << 10, std::uint64_t body_limit = 1 << 20) {
  request_parser p(out);
  p.header_limit(header_limit);
  p.body_limit(body_limit);
  std::string pending;
  std::size_t at = 0;
  while (!p.is_done()) {
    if (at >= wire.size()) return http::error::partial_message;
    const auto n = std::min(step, wire.size() - at);
    pending.append(wire.substr(at, n));
    at += n;
    for (;;) {
      boost::system::error_code ec;
      const auto used = p.put(net::buffer(pending), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) break;
      if (ec) return ec;
      if (p.is_done() || used == 0) break;
    }
  }
  return {};
}

TEST(request_parser, keeps_the_request_line_and_every_field_in_order) {
  const std::string wire = "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
                           "Host: 127.0.0.1:8080\r\n"
                           "content-type: application/json\r\n"
                           "X-Stainless-Timeout: 600\r\n"
                           "X-Forwarded-For: 10.0.0.1\r\n"
                           "x-forwarded-for: 10.0.0.2\r\n"
                           "Authorization: Bearer sk-1\r\n"
                           "Content-Length: 2\r\n\r\n{}";
  for (const std::size_t step : {1u, 9u, 4096u}) {
    request r;
    const auto ec = feed(r, wire, step);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(r.method(), http::verb::post);
    EXPECT_EQ(r.method_string(), "POST");
    EXPECT_EQ(r.target(), "/v1/chat/completions?x=1");
    EXPECT_EQ(r.version(), 11u);
    EXPECT_TRUE(r.keep_alive());
    EXPECT_EQ(r.body(), "{}");
    ASSERT_EQ(r.field_count(), 7u);
    std::vector<std::string> names, values;
    for (const auto f : r.fields()) {
      names.emplace_back(f.name_string);
      values.emplace_back(f.value);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"Host", "content-type", "X-Stainless-Timeout", "X-Forwarded-For",
                                               "x-forwarded-for", "Authorization", "Content-Length"}));
    EXPECT_EQ(values, (std::vector<std::string>{"127.0.0.1:8080", "application/json", "600", "10.0.0.1", "10.0.0.2",
                                                "Bearer sk-1", "2"}));
    EXPECT_EQ(r.field_at(1).name, http::field::content_type);
    EXPECT_EQ(r.field_at(2).name, http::field::unknown);
    EXPECT_EQ(r[http::field::authorization], "Bearer sk-1");
    EXPECT_EQ(r[http::field::content_type], "application/json");
    EXPECT_EQ(r["AUTHORIZATION"], "Bearer sk-1");
    EXPECT_EQ(r["x-stainless-timeout"], "600");
    EXPECT_EQ(r["X-Forwarded-For"], "10.0.0.1"); // the first of two
    EXPECT_EQ(r[http::field::origin], "");
    EXPECT_EQ(r["x-request-id"], "");
  }
}

TEST(request_parser, keep_alive_follows_the_version_and_the_connection_field) {
  const std::pair<std::string, bool> cases[] = {
      {"GET /health HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"GET /health HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n", false},
      {"GET /health HTTP/1.0\r\n\r\n", false},
      {"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
  };
  for (const auto& [wire, keep] : cases) {
    request r;
    const auto ec = feed(r, wire, 3);
    ASSERT_FALSE(ec) << ec.message() << " for " << wire;
    EXPECT_EQ(r.keep_alive(), keep) << wire;
    EXPECT_EQ(r.method(), http::verb::get);
    EXPECT_TRUE(r.body().empty());
  }
}

TEST(request_parser, a_chunked_body_gives_the_chunks_data_only) {
  const std::string wire = "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\n{\"a\":\r\n"
                           "3;ext=1\r\n1}\n\r\n0\r\n\r\n";
  for (const std::size_t step : {1u, 4096u}) {
    request r;
    const auto ec = feed(r, wire, step);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(r.body(), "{\"a\":1}\n");
  }
}

TEST(request_parser, an_unknown_method_keeps_its_spelling) {
  request r;
  const auto ec = feed(r, "BREW /pot HTTP/1.1\r\n\r\n", 64);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(r.method(), http::verb::unknown);
  EXPECT_EQ(r.method_string(), "BREW");
  EXPECT_EQ(r.target(), "/pot");
}

TEST(request_parser, a_short_request_stays_whole_when_moved) {
  // The request is moved out of the coroutine that read it: what it gives
  // must not point into the parser or the old object.
  request r;
  ASSERT_FALSE(feed(r, "GET / HTTP/1.1\r\nA: b\r\n\r\n", 64));
  request moved = std::move(r);
  EXPECT_EQ(moved.method_string(), "GET");
  EXPECT_EQ(moved.target(), "/");
  EXPECT_EQ(moved["a"], "b");
}

TEST(request_parser, a_copy_owns_its_head_and_body) {
  // The seed's GET /chat copies the caller's request and gives it a body of
  // its own: the copy must read the same head and outlive the original.
  auto r = std::make_unique<request>();
  ASSERT_FALSE(feed(*r, "GET /chat?query=hi HTTP/1.1\r\nX-Api-Key: k1\r\nConnection: close\r\n\r\n", 7));
  request copy = *r;
  copy.body() = "{}";
  EXPECT_TRUE(r->body().empty());
  r.reset();
  EXPECT_EQ(copy.method(), http::verb::get);
  EXPECT_EQ(copy.target(), "/chat?query=hi");
  EXPECT_EQ(copy["x-api-key"], "k1");
  EXPECT_FALSE(copy.keep_alive());
  EXPECT_EQ(copy.field_count(), 2u);
  EXPECT_EQ(copy.body(), "{}");
}

TEST(request_parser, a_head_past_its_first_room_stays_whole) {
  // The head's bytes are moved to a bigger block as they grow (256 bytes
  // first): the fields kept before the move must read the same after it.
  std::string wire = "POST /v1/chat/completions HTTP/1.1\r\n";
  for (int i = 0; i < 40; ++i) wire += "X-Field-" + std::to_string(i) + ": value-" + std::to_string(i) + "\r\n";
  wire += "Content-Length: 0\r\n\r\n";
  request r;
  ASSERT_FALSE(feed(r, wire, 4096));
  ASSERT_EQ(r.field_count(), 41u);
  EXPECT_EQ(r.target(), "/v1/chat/completions");
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(r.field_at(static_cast<std::size_t>(i)).name_string, "X-Field-" + std::to_string(i));
    EXPECT_EQ(r["x-field-" + std::to_string(i)], "value-" + std::to_string(i));
  }
}

TEST(request_parser, the_limits_are_beasts) {
  {
    request r;
    EXPECT_EQ(feed(r, "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", 64, 16 << 10, 8),
              http::error::body_limit);
  }
  {
    request r;
    const std::string wire = "GET / HTTP/1.1\r\nX-Big: " + std::string(200, 'x') + "\r\n\r\n";
    EXPECT_EQ(feed(r, wire, 64, 128), http::error::header_limit);
  }
  {
    request r;
    EXPECT_TRUE(feed(r, "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 64));
  }
}

TEST(request_parser, a_cleared_request_takes_the_next_one_with_nothing_left_of_the_first) {
  // A connection's requests share one request object, cleared between them
  // (its room kept): nothing of a longer first request may show in the next.
  request r;
  ASSERT_FALSE(feed(r,
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nX-Request-Id: first\r\n"
                    "Authorization: Bearer sk-1\r\nContent-Length: 11\r\n\r\n{\"a\":12345}",
                    4096));
  ASSERT_EQ(r.body(), "{\"a\":12345}");
  r.clear();
  EXPECT_EQ(r.field_count(), 0u);
  EXPECT_TRUE(r.body().empty());
  ASSERT_FALSE(feed(r, "GET /health HTTP/1.0\r\nHost: b\r\n\r\n", 4096));
  EXPECT_EQ(r.method(), http::verb::get);
  EXPECT_EQ(r.target(), "/health");
  EXPECT_EQ(r.version(), 10u);
  EXPECT_FALSE(r.keep_alive()) << "HTTP/1.0 without keep-alive, whatever the first said";
  EXPECT_EQ(r.field_count(), 1u);
  EXPECT_EQ(r[http::field::host], "b");
  EXPECT_EQ(r["x-request-id"], "") << "the first request's fields are gone";
  EXPECT_TRUE(r.body().empty());

  // A large request's room is given back rather than held by an idle connection.
  const std::string big(100000, 'x');
  r.clear();
  ASSERT_FALSE(feed(r, "POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + big, 4096));
  EXPECT_EQ(r.body().size(), big.size());
  r.clear();
  EXPECT_LT(r.body().capacity(), big.size());
  ASSERT_FALSE(feed(r, "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok", 4096));
  EXPECT_EQ(r.body(), "ok");
}

} // namespace
} // namespace llmgate::server
