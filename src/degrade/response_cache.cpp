#include "degrade/response_cache.hpp"

#include <algorithm>
#include <bit>
#include <boost/intrusive/list.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <charconv>
#include <cstring>
#include <new>
#include <vector>

namespace llmgate::degrade {

std::string cache_key(std::string canonical_body, std::string_view model, std::string_view endpoint,
                      std::string_view caller) {
  // After the body (which is self-delimiting), each as its length and its
  // bytes: no two requests share a key.
  // Written through a pointer into room made once: each append was a call
  // (~40 instructions) and this runs for every request.
  std::string key = std::move(canonical_body);
  const std::size_t body = key.size();
  key.resize(body + 3 * 22 + model.size() + endpoint.size() + caller.size());
  char* at = key.data() + body;
  for (const std::string_view s : {model, endpoint, caller}) {
    *at++ = '\n';
    at = std::to_chars(at, at + 20, s.size()).ptr;
    *at++ = '"';
    if (!s.empty()) std::memcpy(at, s.data(), s.size()); // its data may be null, which memcpy must not get
    at += s.size();
  }
  key.resize(static_cast<std::size_t>(at - key.data()));
  return key;
}

// An entry is one block: this header, then its key, body, content type and
// model, back to back. One allocation instead of a list node, four strings
// and an index node, and a block to write the next entry into when this one
// is evicted for it: with distinct requests (real traffic) the cache is full
// and every store evicts, and the evicted entry's memory is cold, so each
// separate piece of it was a cache miss and a free, and each piece of the new
// one an allocation.
struct response_cache::table {
  struct slot : boost::intrusive::list_base_hook<> {
    std::size_t hash = 0;
    std::chrono::nanoseconds expires{0};
    std::uint64_t bytes = 0;  // what it counts against max_bytes
    std::size_t capacity = 0; // room for text after the header
    std::size_t key_size = 0, body_size = 0, type_size = 0, model_size = 0;
    int level = 0;

    [[nodiscard]] char* text() noexcept { return reinterpret_cast<char*>(this + 1); }
    [[nodiscard]] const char* text() const noexcept { return reinterpret_cast<const char*>(this + 1); }
    [[nodiscard]] std::string_view key() const noexcept { return {text(), key_size}; }
    [[nodiscard]] std::string_view body() const noexcept { return {text() + key_size, body_size}; }
    [[nodiscard]] std::string_view type() const noexcept { return {text() + key_size + body_size, type_size}; }
    [[nodiscard]] std::string_view model() const noexcept {
      return {text() + key_size + body_size + type_size, model_size};
    }
  };
  static_assert(sizeof(slot) + sizeof(slot*) + 8 <= k_entry_overhead, "an entry counts what its header holds");

  static slot* make(std::size_t capacity) {
    slot* s = new (::operator new(sizeof(slot) + capacity)) slot;
    s->capacity = capacity;
    return s;
  }
  static void destroy(slot* s) noexcept {
    s->~slot();
    ::operator delete(s);
  }
  // A block fits a text of n bytes when it has the room and not so much more
  // that the extra, uncounted, would stay held.
  static bool fits(const slot& s, std::size_t n) noexcept { return s.capacity >= n && s.capacity <= 2 * n + 256; }

  // Writes the answer after the key already in the block, which has the room.
  static void put_answer(slot& s, const entry_view& e, std::uint64_t bytes, std::chrono::nanoseconds expires) {
    s.expires = expires;
    s.bytes = bytes;
    s.level = e.level;
    s.body_size = e.body.size();
    s.type_size = e.content_type.size();
    s.model_size = e.model.size();
    char* out = s.text() + s.key_size;
    for (const std::string_view piece : {e.body, e.content_type, e.model}) {
      if (piece.empty()) continue; // its data may be null, which memcpy must not get
      std::memcpy(out, piece.data(), piece.size());
      out += piece.size();
    }
  }

  // The index holds the blocks and finds one by its key's hash, kept in the
  // block, so an evicted entry leaves the index without its key being read
  // or hashed again; a key's bytes are compared only when the hashes match.
  struct probe {
    std::string_view key;
    std::size_t hash;
  };
  struct by_hash {
    using is_transparent = void;
    std::size_t operator()(const slot* s) const noexcept { return s->hash; }
    std::size_t operator()(const probe& p) const noexcept { return p.hash; }
  };
  struct same {
    using is_transparent = void;
    bool operator()(const slot* a, const slot* b) const noexcept { return a == b; }
    bool operator()(const probe& p, const slot* s) const noexcept { return p.hash == s->hash && p.key == s->key(); }
    bool operator()(const slot* s, const probe& p) const noexcept { return (*this)(p, s); }
  };

  boost::intrusive::list<slot> lru; // most recently used first
  boost::unordered_flat_set<slot*, by_hash, same> index;
  std::uint64_t bytes = 0;

  // The doorkeeper: a fingerprint of each key offered, in the cell its hash
  // picks (a later key whose hash picks the same cell takes it over). It
  // admits a key into a full cache when its fingerprint is still there. With
  // distinct requests (real traffic) a store into a full cache evicted an
  // entry and wrote a block: ~6 of a request's ~10 last-level cache misses
  // (callgrind's cache simulation, docs/BENCHMARKS.md); a key asked once now
  // costs one cell.
  std::vector<std::uint32_t> seen;

  explicit table(std::size_t cells) : seen(cells) {}
  table(const table&) = delete;
  table& operator=(const table&) = delete;
  ~table() { lru.clear_and_dispose(destroy); }

  // Whether the key of this hash was offered before (by its fingerprint in
  // its cell); notes it either way.
  bool offered_before(std::size_t hash) noexcept {
    auto& cell = seen[hash & (seen.size() - 1)];
    const auto fingerprint = static_cast<std::uint32_t>(hash >> 32) | 1u; // 0 is an empty cell
    const bool before = cell == fingerprint;
    cell = fingerprint;
    return before;
  }

  // Takes the entry out of the LRU order and the index; the caller owns the block.
  slot* remove(slot* s) noexcept {
    index.erase(s);
    lru.erase(lru.iterator_to(*s));
    bytes -= s->bytes;
    return s;
  }
};

namespace {
std::size_t hash_of(std::string_view key) noexcept { return std::hash<std::string_view>{}(key); }

// The doorkeeper's cells: four for each entry the cache holds (a key asked
// again before ~4 × max_entries other keys were offered is still known), a
// power of two, 1,024 to 4 Mi (16 MiB).
std::size_t doorkeeper_cells(std::size_t max_entries) {
  return std::bit_ceil(std::clamp<std::size_t>(4 * max_entries, 1024, std::size_t{1} << 22));
}
} // namespace

response_cache::response_cache(std::size_t max_entries, std::uint64_t max_bytes, std::chrono::nanoseconds ttl)
    : max_entries_(std::max<std::size_t>(1, max_entries)), max_bytes_(max_bytes), ttl_(ttl),
      t_(std::make_unique<table>(doorkeeper_cells(max_entries_))) {}

response_cache::~response_cache() = default;

std::optional<response_cache::entry> response_cache::find(std::string_view key, int level,
                                                          std::chrono::nanoseconds now) {
  const table::probe p{key, hash_of(key)};
  std::lock_guard lock(m_);
  const auto at = t_->index.find(p);
  if (at == t_->index.end()) return std::nullopt;
  table::slot* s = *at;
  if (s->expires <= now) {
    table::destroy(t_->remove(s));
    return std::nullopt;
  }
  if (s->level > level) return std::nullopt; // this request would get a better answer
  t_->lru.splice(t_->lru.begin(), t_->lru, t_->lru.iterator_to(*s));
  return entry{std::string(s->body()), std::string(s->type()), std::string(s->model()), s->level};
}

bool response_cache::store(std::string_view key, const entry_view& e, std::chrono::nanoseconds now) {
  const std::size_t text = key.size() + e.body.size() + e.content_type.size() + e.model.size();
  const std::uint64_t size = text + k_entry_overhead;
  if (size > max_bytes_) return false; // larger than the whole cache: not worth evicting everything for
  const table::probe p{key, hash_of(key)};
  std::lock_guard lock(m_);
  auto& t = *t_;
  table::slot* block = nullptr; // a block to write into, out of the index and the LRU order
  if (const auto at = t.index.find(p); at != t.index.end()) {
    table::slot* old = *at;
    // A fresh answer made at a better level stays: a degraded one must not
    // push out what full service made (it is what L0 callers may be served).
    if (old->expires > now && old->level < e.level) return false;
    if (table::fits(*old, text)) { // the same request again: written over where it is, key and index kept
      t.bytes = t.bytes - old->bytes + size;
      table::put_answer(*old, e, size, now + ttl_);
      t.lru.splice(t.lru.begin(), t.lru, t.lru.iterator_to(*old));
      while (t.bytes > max_bytes_ && &t.lru.back() != old) table::destroy(t.remove(&t.lru.back()));
      return true;
    }
    block = t.remove(old);
  } else if (const bool full = t.lru.size() + 1 > max_entries_ || t.bytes + size > max_bytes_;
             !t.offered_before(p.hash) && full) {
    return false; // a key new to a full cache: noted, kept if it comes again
  }
  // Room for the new entry, least recently used first; the last block taken
  // out is kept to be written over.
  while (!t.lru.empty() && (t.lru.size() + 1 > max_entries_ || t.bytes + size > max_bytes_)) {
    if (block) table::destroy(block);
    block = t.remove(&t.lru.back());
  }
  if (block && !table::fits(*block, text)) {
    table::destroy(block);
    block = nullptr;
  }
  if (!block) block = table::make(text);
  block->hash = p.hash;
  block->key_size = key.size();
  if (!key.empty()) std::memcpy(block->text(), key.data(), key.size());
  table::put_answer(*block, e, size, now + ttl_);
  t.lru.push_front(*block);
  t.index.insert(block);
  t.bytes += size;
  return true;
}

std::size_t response_cache::size() const {
  std::lock_guard lock(m_);
  return t_->lru.size();
}

std::uint64_t response_cache::bytes() const {
  std::lock_guard lock(m_);
  return t_->bytes;
}

} // namespace llmgate::degrade
