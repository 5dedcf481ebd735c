// server::format_head, the head of every answer the gateway writes, byte for
// byte: the status line, Content-Type, the added headers in order, the
// framing (Content-Length, chunked, neither) and Connection: close; and
// server::assemble, which it is built on, when a piece is empty or large.
#include "server/http_session.hpp"

#include <gtest/gtest.h>
#include <optional>
#include <string>

namespace llmgate::server {
namespace {

TEST(format_head, a_sized_answer_lists_its_headers_in_order) {
  const header_list headers{{"x-request-id", "abc"}, {"x-ratelimit-remaining-requests", "9"}, {"Vary", ""}};
  EXPECT_EQ(format_head(200, "application/json", headers, 17, true), "HTTP/1.1 200 OK\r\n"
                                                                     "Content-Type: application/json\r\n"
                                                                     "x-request-id: abc\r\n"
                                                                     "x-ratelimit-remaining-requests: 9\r\n"
                                                                     "Vary: \r\n"
                                                                     "Content-Length: 17\r\n\r\n");
}

TEST(format_head, a_replys_own_headers_follow_the_requests) {
  const header_list request_headers{{"x-request-id", "abc"}};
  const header_list reply_headers{{"Retry-After", "2"}, {"retry-after-ms", "1500"}};
  EXPECT_EQ(format_head(429, "application/json", request_headers, 2, true, true, &reply_headers),
            "HTTP/1.1 429 Too Many Requests\r\n"
            "Content-Type: application/json\r\n"
            "x-request-id: abc\r\n"
            "Retry-After: 2\r\n"
            "retry-after-ms: 1500\r\n"
            "Content-Length: 2\r\n\r\n");
}

TEST(format_head, no_content_has_no_length_and_close_is_said) {
  EXPECT_EQ(format_head(204, {}, {}, 0, false), "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(format_head(304, {}, {}, 12, true), "HTTP/1.1 304 Not Modified\r\n\r\n");
}

TEST(format_head, a_stream_is_chunked_unless_the_client_cannot_read_chunks) {
  EXPECT_EQ(format_head(200, "text/event-stream", {}, std::nullopt, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(format_head(200, "text/event-stream", {}, std::nullopt, false, false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
}

TEST(format_head, large_values_and_lengths_are_whole) {
  const std::string big(5000, 'v');
  const auto head = format_head(429, "application/json", {{"retry-after-ms", big}}, 18446744073709551615ull, true);
  EXPECT_EQ(head, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nretry-after-ms: " + big +
                      "\r\nContent-Length: 18446744073709551615\r\n\r\n");
}

TEST(assemble, counts_then_copies_every_piece) {
  const std::string long_piece(300, 'x');
  const auto text = assemble([&](auto&& put) {
    put("a");
    put(std::string_view{});
    put(long_piece);
    put(decimal(0).view());
    put(decimal(1234567890123).view());
  });
  EXPECT_EQ(text, "a" + long_piece + "0" + "1234567890123");
  EXPECT_EQ(assemble([](auto&&) {}), "");
}

TEST(response_head, hex64_writes_sixteen_lowercase_digits_zero_padded) {
  EXPECT_EQ(hex64(0).view(), "0000000000000000");
  EXPECT_EQ(hex64(0xabc).view(), "0000000000000abc");
  EXPECT_EQ(hex64(0x0123456789abcdefULL).view(), "0123456789abcdef");
  EXPECT_EQ(hex64(~0ULL).view(), "ffffffffffffffff");
}

} // namespace
} // namespace llmgate::server
