#pragma once
// A client's request as the server loop reads it, and its parser.
//
// Why not Beast's request_parser<string_body>: its message keeps the head in
// a field set, an allocation and a tree insertion per field (~330
// instructions each, on top of Beast's own ~370 to tokenize it), and every
// lookup by name then walks that tree with case-insensitive compares. A Node
// client (the openai SDK) sends a dozen fields and the gateway reads five.
// Here the method, the target and the fields are kept back to back in one
// block of bytes, the fields as positions in it; a lookup is a scan of a dozen
// entries. The framing (Content-Length, chunked, keep-alive, the limits)
// stays Beast's basic_parser's. Include only from the translation units that
// speak HTTP (Beast is slow to compile).
#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::server {

class request_parser;

class request final {
public:
  struct field {
    boost::beast::http::field name; // field::unknown for a name Beast does not know
    std::string_view name_string;   // as the client spelled it
    std::string_view value;
  };

  request() = default;
  request(request&&) noexcept = default;
  request& operator=(request&&) noexcept = default;
  request(const request& o)
      : method_(o.method_), version_(o.version_), keep_alive_(o.keep_alive_), method_text_(o.method_text_),
        target_(o.target_), fields_(o.fields_), body_(o.body_) {
    if (o.head_size_ > 0) {
      grow(o.head_size_);
      std::memcpy(head_.get(), o.head_.get(), o.head_size_);
      head_size_ = o.head_size_;
    }
  }
  request& operator=(const request&) = delete; // copies are made by construction only (the seed's GET /chat)
  ~request() = default;

  // Empty again, for the connection's next request: the head's block, the
  // field list and the body keep their room (three allocations a request
  // fewer on a keep-alive connection), unless a large request left them
  // large (an idle connection would hold it).
  void clear() noexcept {
    method_ = boost::beast::http::verb::unknown;
    version_ = 11;
    keep_alive_ = true;
    method_text_ = target_ = {};
    head_size_ = 0;
    if (head_room_ > k_kept_room) {
      head_.reset();
      head_room_ = 0;
    }
    if (fields_.capacity() > 64)
      std::vector<stored_field>().swap(fields_);
    else
      fields_.clear();
    if (body_.capacity() > k_kept_room)
      std::string().swap(body_);
    else
      body_.clear();
  }

  [[nodiscard]] boost::beast::http::verb method() const noexcept { return method_; }
  [[nodiscard]] std::string_view method_string() const noexcept { return view(method_text_); }
  [[nodiscard]] std::string_view target() const noexcept { return view(target_); }
  [[nodiscard]] unsigned version() const noexcept { return version_; }
  // What the head asks for: HTTP/1.1 unless "Connection: close", HTTP/1.0
  // only with "Connection: keep-alive".
  [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
  [[nodiscard]] std::string& body() noexcept { return body_; }
  [[nodiscard]] const std::string& body() const noexcept { return body_; }

  // The first field of that name (names compare without case), or empty.
  [[nodiscard]] std::string_view operator[](boost::beast::http::field name) const noexcept {
    for (const auto& f : fields_)
      if (f.name == name) return view(f.value);
    return {};
  }
  [[nodiscard]] std::string_view operator[](std::string_view name) const noexcept {
    for (const auto& f : fields_)
      if (f.name_string.size == name.size() && boost::beast::iequals(view(f.name_string), name)) return view(f.value);
    return {};
  }

  [[nodiscard]] std::size_t field_count() const noexcept { return fields_.size(); }
  [[nodiscard]] field field_at(std::size_t i) const noexcept {
    const auto& f = fields_[i];
    return {f.name, view(f.name_string), view(f.value)};
  }
  // for (const auto f : req.fields()) — the fields in the order they came.
  class field_range {
  public:
    class iterator {
    public:
      iterator(const request& r, std::size_t i) : r_(&r), i_(i) {}
      field operator*() const noexcept { return r_->field_at(i_); }
      iterator& operator++() noexcept {
        ++i_;
        return *this;
      }
      bool operator!=(const iterator& o) const noexcept { return i_ != o.i_; }

    private:
      const request* r_;
      std::size_t i_;
    };
    explicit field_range(const request& r) : r_(r) {}
    [[nodiscard]] iterator begin() const noexcept { return {r_, 0}; }
    [[nodiscard]] iterator end() const noexcept { return {r_, r_.field_count()}; }

  private:
    const request& r_;
  };
  [[nodiscard]] field_range fields() const noexcept { return field_range(*this); }

private:
  friend class request_parser;
  // Positions in head_: it moves when it grows while the head is parsed, so
  // views are made on demand.
  struct piece {
    std::uint32_t at = 0, size = 0;
  };
  struct stored_field {
    boost::beast::http::field name;
    piece name_string, value;
  };
  [[nodiscard]] std::string_view view(piece p) const noexcept { return {head_.get() + p.at, p.size}; }
  // Copies s to the end of the head's bytes. By hand rather than
  // std::string::append, which is out of line (~50 instructions a call, two
  // calls a field).
  piece keep(boost::beast::string_view s) {
    const piece p{head_size_, static_cast<std::uint32_t>(s.size())};
    if (s.empty()) return p; // its data may be null, which memcpy must not get
    if (head_room_ - head_size_ < s.size()) [[unlikely]]
      grow(s.size());
    std::memcpy(head_.get() + head_size_, s.data(), s.size());
    head_size_ += p.size;
    return p;
  }
  [[gnu::noinline]] void grow(std::size_t n) {
    const auto room =
        static_cast<std::uint32_t>(std::max<std::size_t>({256, 2 * std::size_t{head_room_}, head_size_ + n}));
    auto bigger = std::make_unique_for_overwrite<char[]>(room);
    if (head_size_ > 0) std::memcpy(bigger.get(), head_.get(), head_size_);
    head_ = std::move(bigger);
    head_room_ = room;
  }

  // What clear() leaves an idle connection holding at most, for each of the
  // head and the body: a larger request is rare enough to allocate again.
  static constexpr std::uint32_t k_kept_room = 4096;

  boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  piece method_text_, target_;
  std::unique_ptr<char[]> head_; // the method, the target, the fields' names and values
  std::uint32_t head_size_ = 0, head_room_ = 0;
  std::vector<stored_field> fields_;
  std::string body_;
};

// Parses one request into `out` (which should be fresh or cleared). The head's size is
// bounded by header_limit, so positions fit in 32 bits.
class request_parser final : public boost::beast::http::basic_parser<true> {
public:
  explicit request_parser(request& out) : out_(out) {}

private:
  using error_code = boost::system::error_code;
  using string_view = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb method, string_view method_text, string_view target, int version,
                       error_code&) override {
    out_.fields_.reserve(16);
    out_.method_ = method;
    out_.version_ = static_cast<unsigned>(version);
    out_.method_text_ = out_.keep(method_text);
    out_.target_ = out_.keep(target);
  }
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value, error_code&) override {
    const auto n = out_.keep(name_string);
    const auto v = out_.keep(value);
    out_.fields_.push_back({name, n, v});
  }
  // The head is whole: keep-alive as it says (Beast's flags, set by now).
  void on_header_impl(error_code&) override { out_.keep_alive_ = keep_alive(); }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    // Beast has already refused a Content-Length over the body limit.
    if (length) out_.body_.reserve(static_cast<std::size_t>(*length));
  }
  std::size_t on_body_impl(string_view body, error_code&) override {
    out_.body_.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    out_.body_.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  request& out_;
};

} // namespace llmgate::server
