// io::answer_parser, fed a backend's answer as bytes the way the gateway
// feeds it (head first, then the body into room it gives, a piece at a
// time): the status, the Content-Type, the body exactly as sent whatever its
// framing, keep-alive as the head says, and the body limit.
#include "io/answer_parser.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>
#include <string>

namespace llmgate::io {
namespace {

namespace http = boost::beast::http;
namespace net = boost::asio;

struct parsed {
  boost::system::error_code ec;
  std::string body;
};

// Feeds `wire` to the parser `step` bytes of input at a time, the body into
// room of `room` bytes at a time.
parsed feed(answer_parser& p, std::string_view wire, std::size_t step, std::size_t room) {
  parsed out;
  std::string pending;
  std::size_t at = 0;
  while (!p.is_done()) {
    if (at < wire.size()) {
      const auto n = std::min(step, wire.size() - at);
      pending.append(wire.substr(at, n));
      at += n;
    } else if (pending.empty()) {
      break; // the input ran out before the message did
    }
    for (;;) {
      const auto had = out.body.size();
      out.body.resize(had + room);
      p.read_into(out.body.data() + had, room);
      boost::system::error_code ec;
      const auto used = p.put(net::buffer(pending), ec);
      pending.erase(0, used);
      out.body.resize(had + room - p.room());
      if (ec == http::error::need_more) break;
      if (ec && ec != http::error::need_buffer) {
        out.ec = ec;
        return out;
      }
      if (p.is_done() || (used == 0 && ec != http::error::need_buffer)) break;
    }
  }
  return out;
}

TEST(answer_parser, a_content_length_answer_in_small_pieces) {
  const std::string body = R"({"id":"x","choices":[{"message":{"content":"hello"}}]})";
  const std::string wire = "HTTP/1.1 200 OK\r\nServer: vllm\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nDate: today\r\n\r\n" + body;
  for (const std::size_t step : {1u, 7u, 4096u})
    for (const std::size_t room : {1u, 5u, 16384u}) {
      answer_parser p;
      const auto got = feed(p, wire, step, room);
      EXPECT_FALSE(got.ec) << got.ec.message();
      EXPECT_TRUE(p.is_done());
      EXPECT_EQ(p.status(), 200);
      EXPECT_EQ(p.content_type(), "application/json");
      EXPECT_EQ(got.body, body) << "step " << step << ", room " << room;
      EXPECT_TRUE(p.keep_alive());
    }
}

TEST(answer_parser, a_chunked_stream_gives_the_chunks_data_only) {
  const std::string wire = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n"
                           "f\r\ndata: {\"a\":1}\n\n\r\n"
                           "e;ext=1\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
  for (const std::size_t room : {3u, 1024u}) {
    answer_parser p;
    const auto got = feed(p, wire, 5, room);
    EXPECT_FALSE(got.ec) << got.ec.message();
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(p.content_type(), "text/event-stream; charset=utf-8");
    EXPECT_EQ(got.body, "data: {\"a\":1}\n\ndata: [DONE]\n\n");
  }
}

TEST(answer_parser, connection_close_is_not_kept_alive_and_an_error_status_is_kept) {
  answer_parser p;
  const auto got =
      feed(p, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy", 64, 64);
  EXPECT_FALSE(got.ec) << got.ec.message();
  EXPECT_EQ(p.status(), 503);
  EXPECT_EQ(p.content_type(), "");
  EXPECT_EQ(got.body, "busy");
  EXPECT_FALSE(p.keep_alive());
}

TEST(answer_parser, a_body_with_no_room_stops_with_need_buffer) {
  answer_parser p;
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  boost::system::error_code ec;
  auto used = p.put(net::buffer(wire), ec); // the head
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_header_done());
  used = p.put(net::buffer(wire.substr(used)), ec); // no room given
  EXPECT_EQ(ec, http::error::need_buffer);
  EXPECT_EQ(used, 0u);
  EXPECT_FALSE(p.is_done());
}

TEST(answer_parser, a_body_past_the_limit_is_refused) {
  answer_parser p;
  p.body_limit(8);
  const auto got = feed(p, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789", 64, 64);
  EXPECT_EQ(got.ec, http::error::body_limit) << got.ec.message();
}

TEST(answer_parser, a_malformed_head_is_an_error) {
  answer_parser p;
  const auto got = feed(p, "HTTP/1.1 2x0 OK\r\n\r\n", 64, 64);
  EXPECT_TRUE(got.ec);
}

} // namespace
} // namespace llmgate::io
