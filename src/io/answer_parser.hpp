#pragma once
// The parser of a backend's answer: its status, its Content-Type, and its
// body written into room the caller gives, as Beast's buffer_body does.
//
// Why not response_parser<buffer_body>: it keeps every field of the head in a
// field set (an allocation and a tree insertion each) and Content-Type then
// has to be looked up again by name, ~1k instructions of a proxied request
// (docs/BENCHMARKS.md). Nothing else of a backend's head is used: the framing
// (Content-Length, chunked, keep-alive) is the base parser's own. Include
// only from the translation units that speak HTTP (Beast is slow to compile).
#include "io/media_type.hpp"

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace llmgate::io {

class answer_parser : public boost::beast::http::basic_parser<false> {
public:
  using error_code = boost::system::error_code;

  [[nodiscard]] int status() const noexcept { return status_; }
  [[nodiscard]] std::string_view content_type() const noexcept { return content_type_.view(); }

  // Where the next bytes of the body go: `size` bytes at `data`. Parsing a
  // body with no room left stops with http::error::need_buffer.
  void read_into(char* data, std::size_t size) noexcept {
    data_ = data;
    room_ = size;
  }
  // The room not yet written since read_into.
  [[nodiscard]] std::size_t room() const noexcept { return room_; }

  // Reading the answer's next bytes from a connection and its buffer, as
  // Beast's http::async_read_some does, without its composed operation
  // (whose handler hops, and a post when the buffer already held the bytes,
  // were a tenth of a token event's instructions) and without a coroutine
  // frame of its own (one a call). The caller's loop, its one wait the
  // socket's read:
  //
  //   while (!parser.parse_buffered(conn.buffer, ec)) {
  //     auto [rec, n] = co_await conn.stream.async_read_some(answer_parser::room_in(conn.buffer), k_tuple);
  //     if (parser.took_read(conn.buffer, rec, n, ec)) break;
  //   }
  //
  // Afterwards ec is clear when bytes were parsed (need_buffer when they
  // filled the room given by read_into), or says why the read ended.
  //
  // Parses what `buffer` holds; false when it holds too little to go on.
  template <class Buffer> bool parse_buffered(Buffer& buffer, error_code& ec) {
    if (buffer.size() == 0) return false;
    buffer.consume(put(buffer.data(), ec));
    if (ec != boost::beast::http::error::need_more) return true;
    ec = {};
    return false;
  }
  // Where the socket's next read goes: the buffer's room, as Beast sizes it.
  template <class Buffer> static auto room_in(Buffer& buffer) {
    return buffer.prepare(boost::beast::read_size(buffer, 65536));
  }
  // Takes a read of `n` bytes into room_in(buffer) that ended with `rec`;
  // true when that ends the read: the connection closed (the end of a body
  // that nothing else delimits) or failed.
  template <class Buffer> bool took_read(Buffer& buffer, const error_code& rec, std::size_t n, error_code& ec) {
    buffer.commit(n);
    if (rec == boost::asio::error::eof) {
      if (got_some())
        put_eof(ec);
      else
        ec = boost::beast::http::error::end_of_stream;
      return true;
    }
    if (rec) {
      ec = rec;
      return true;
    }
    return false;
  }

private:
  using string_view = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb, string_view, string_view, int, error_code&) override {}
  void on_response_impl(int code, string_view, int, error_code&) override { status_ = code; }
  void on_field_impl(boost::beast::http::field name, string_view, string_view value, error_code&) override {
    if (name == boost::beast::http::field::content_type) content_type_.assign({value.data(), value.size()});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(string_view body, error_code& ec) override { return take(body, ec); }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override { return take(body, ec); }
  void on_finish_impl(error_code&) override {}

  std::size_t take(string_view body, error_code& ec) {
    const std::size_t n = std::min(body.size(), room_);
    if (n > 0) std::memcpy(data_, body.data(), n);
    data_ += n;
    room_ -= n;
    if (n < body.size()) ec = boost::beast::http::error::need_buffer;
    return n;
  }

  int status_ = 0;
  media_type content_type_;
  char* data_ = nullptr;
  std::size_t room_ = 0;
};

} // namespace llmgate::io
