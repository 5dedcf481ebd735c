#include "degrade/response_cache.hpp"

#include <algorithm>
#include <array>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstring>
#include <span>
#include <vector>

namespace llmgate::degrade {

namespace json = boost::json;

namespace {

// Appends to a string through a raw pointer into room made ahead (the string
// is sized up and trimmed at the end): std::string's append checks its
// capacity and calls out of line for every piece, and a key is many small
// pieces (this runs for every request while the cache is on).
class key_writer {
public:
  explicit key_writer(std::string& out) : out_(out), at_(out.size()) {
    out_.resize(std::max<std::size_t>(at_ + 256, 2 * at_));
  }
  ~key_writer() { out_.resize(at_); }
  key_writer(const key_writer&) = delete;
  key_writer& operator=(const key_writer&) = delete;

  // Inlined: a key is written a few bytes at a time, and a call per piece
  // cost as much as the piece.
  [[gnu::always_inline]] void put(char c) {
    room(1);
    out_[at_++] = c;
  }
  [[gnu::always_inline]] void put(std::string_view s) {
    if (s.empty()) return; // its data may be null, which memcpy must not get
    room(s.size());
    std::memcpy(out_.data() + at_, s.data(), s.size());
    at_ += s.size();
  }
  template <class Number> void number(Number n) {
    room(24);
    at_ = static_cast<std::size_t>(std::to_chars(out_.data() + at_, out_.data() + out_.size(), n).ptr - out_.data());
  }

private:
  [[gnu::always_inline]] void room(std::size_t n) {
    if (at_ + n > out_.size()) [[unlikely]]
      grow(n);
  }
  [[gnu::noinline]] void grow(std::size_t n) { out_.resize(std::max(2 * out_.size(), at_ + n)); }
  std::string& out_;
  std::size_t at_;
};

void canonical(const json::value& v, key_writer& out);

// A string as its length and its bytes: unambiguous, and no escaping (a key
// need not be JSON, only one per distinct request).
void text(std::string_view s, key_writer& out) {
  if (s.size() < 100) { // most keys and values: their length in one or two digits, without to_chars
    if (s.size() >= 10) out.put(static_cast<char>('0' + s.size() / 10));
    out.put(static_cast<char>('0' + s.size() % 10));
  } else {
    out.number(s.size());
  }
  out.put('"');
  out.put(s);
}

// An object with its keys sorted, recursively (arrays keep their order); at
// the top level without the name the client used for the model, and `user`.
// Written straight into `out`: nothing of the body is copied.
void canonical(const json::object& o, key_writer& out, bool top) {
  // The fields' order, on the stack for the objects requests are made of
  // (this runs for every request while the cache is on).
  constexpr std::size_t k_small = 16;
  std::array<const json::key_value_pair*, k_small> small;
  std::vector<const json::key_value_pair*> large;
  if (o.size() > k_small) large.resize(o.size());
  const std::span<const json::key_value_pair*> room = large.empty() ? std::span(small) : std::span(large);
  std::size_t n = 0;
  for (const auto& kv : o)
    if (!top || (kv.key() != "model" && kv.key() != "user")) room[n++] = &kv;
  const auto fields = room.first(n);
  const auto before = [](const json::key_value_pair* a, const json::key_value_pair* b) {
    const std::string_view x = a->key(), y = b->key();
    if (!x.empty() && !y.empty() && x[0] != y[0]) // most keys differ at once; bytes compare unsigned, as in x < y
      return static_cast<unsigned char>(x[0]) < static_cast<unsigned char>(y[0]);
    return x < y;
  };
  if (n > k_small) {
    std::sort(fields.begin(), fields.end(), before);
  } else { // an insertion sort: a handful of fields, often already in order
    for (std::size_t i = 1; i < n; ++i) {
      const auto* x = fields[i];
      std::size_t j = i;
      for (; j > 0 && before(x, fields[j - 1]); --j) fields[j] = fields[j - 1];
      fields[j] = x;
    }
  }
  out.put('{');
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out.put(',');
    text(fields[i]->key(), out);
    out.put(':');
    canonical(fields[i]->value(), out);
  }
  out.put('}');
}

// A scalar as JSON, without a temporary string for the common kinds.
void scalar(const json::value& v, key_writer& out) {
  switch (v.kind()) {
  case json::kind::int64: out.number(v.get_int64()); break;
  case json::kind::uint64: out.number(v.get_uint64()); break;
  case json::kind::bool_: out.put(v.get_bool() ? "true" : "false"); break;
  case json::kind::null: out.put("null"); break;
  default: out.put(json::serialize(v));
  }
}

void canonical(const json::value& v, key_writer& out) {
  if (v.is_object()) {
    canonical(v.get_object(), out, false);
  } else if (v.is_array()) {
    out.put('[');
    const auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (i) out.put(',');
      canonical(a[i], out);
    }
    out.put(']');
  } else if (v.is_string()) {
    text(v.get_string(), out);
  } else {
    scalar(v, out);
  }
}

} // namespace

std::string cache_key(const json::object& body, std::string_view model, std::string_view endpoint,
                      std::string_view caller) {
  std::string out;
  {
    key_writer w(out);
    w.put(model);
    w.put('\n');
    w.put(endpoint);
    w.put('\n');
    w.put(caller);
    w.put('\n');
    canonical(body, w, true);
  }
  return out;
}

response_cache::response_cache(std::size_t max_entries, std::uint64_t max_bytes, std::chrono::nanoseconds ttl)
    : max_entries_(std::max<std::size_t>(1, max_entries)), max_bytes_(max_bytes), ttl_(ttl) {}

void response_cache::evict(std::list<slot>::iterator it) {
  index_.erase(it->key);
  bytes_ -= it->bytes;
  lru_.erase(it);
}

std::optional<response_cache::entry> response_cache::find(const std::string& key, int level,
                                                          std::chrono::nanoseconds now) {
  std::lock_guard lock(m_);
  const auto at = index_.find(key);
  if (at == index_.end()) return std::nullopt;
  auto it = at->second;
  if (it->expires <= now) {
    evict(it);
    return std::nullopt;
  }
  if (it->value.level > level) return std::nullopt; // this request would get a better answer
  lru_.splice(lru_.begin(), lru_, it);
  return it->value;
}

void response_cache::store(std::string_view key, const entry_view& e, std::chrono::nanoseconds now) {
  const std::uint64_t size = key.size() + e.body.size() + e.content_type.size() + e.model.size() + 64;
  if (size > max_bytes_) return; // larger than the whole cache: not worth evicting everything for
  std::lock_guard lock(m_);
  if (const auto at = index_.find(key); at != index_.end()) {
    const auto it = at->second;
    // A fresh answer made at a better level stays: a degraded one must not
    // push out what full service made (it is what L0 callers may be served).
    if (it->expires > now && it->value.level < e.level) return;
    auto& v = it->value;
    // Reused in place, unless the old answer was much larger (its capacity would stay held, uncounted).
    if (v.body.capacity() > 2 * e.body.size() + 256)
      v.body = std::string(e.body);
    else
      v.body.assign(e.body);
    v.content_type.assign(e.content_type);
    v.model.assign(e.model);
    v.level = e.level;
    it->expires = now + ttl_;
    bytes_ = bytes_ - it->bytes + size;
    it->bytes = size;
    lru_.splice(lru_.begin(), lru_, it);
  } else {
    lru_.push_front({std::string(key),
                     {std::string(e.body), std::string(e.content_type), std::string(e.model), e.level},
                     now + ttl_,
                     size});
    index_.emplace(lru_.front().key, lru_.begin());
    bytes_ += size;
  }
  while (!lru_.empty() && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) evict(std::prev(lru_.end()));
}

std::size_t response_cache::size() const {
  std::lock_guard lock(m_);
  return lru_.size();
}

std::uint64_t response_cache::bytes() const {
  std::lock_guard lock(m_);
  return bytes_;
}

} // namespace llmgate::degrade
