#include "degrade/response_cache.hpp"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <vector>

namespace llmgate::degrade {

namespace json = boost::json;

namespace {

void canonical(const json::value& v, std::string& out);

// A string as its length and its bytes: unambiguous, and no escaping (a key
// need not be JSON, only one per distinct request).
void text(std::string_view s, std::string& out) {
  out += std::to_string(s.size());
  out += '"';
  out += s;
}

// An object with its keys sorted, recursively (arrays keep their order); at
// the top level without the name the client used for the model, and `user`.
// Written straight into `out`: nothing of the body is copied.
void canonical(const json::object& o, std::string& out, bool top) {
  std::vector<const json::key_value_pair*> fields;
  fields.reserve(o.size());
  for (const auto& kv : o)
    if (!top || (kv.key() != "model" && kv.key() != "user")) fields.push_back(&kv);
  std::sort(fields.begin(), fields.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
  out += '{';
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    text(fields[i]->key(), out);
    out += ':';
    canonical(fields[i]->value(), out);
  }
  out += '}';
}

void canonical(const json::value& v, std::string& out) {
  if (v.is_object()) {
    canonical(v.get_object(), out, false);
  } else if (v.is_array()) {
    out += '[';
    const auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (i) out += ',';
      canonical(a[i], out);
    }
    out += ']';
  } else if (v.is_string()) {
    text(v.get_string(), out);
  } else {
    out += json::serialize(v);
  }
}

} // namespace

std::string cache_key(const json::object& body, std::string_view model, std::string_view endpoint,
                      std::string_view caller) {
  std::string out;
  out.reserve(256);
  out += model;
  out += '\n';
  out += endpoint;
  out += '\n';
  out += caller;
  out += '\n';
  canonical(body, out, true);
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

void response_cache::store(const std::string& key, entry e, std::chrono::nanoseconds now) {
  const std::uint64_t size = key.size() + e.body.size() + e.content_type.size() + e.model.size() + 64;
  if (size > max_bytes_) return; // larger than the whole cache: not worth evicting everything for
  std::lock_guard lock(m_);
  if (const auto at = index_.find(key); at != index_.end()) {
    // A fresh answer made at a better level stays: a degraded one must not
    // push out what full service made (it is what L0 callers may be served).
    if (at->second->expires > now && at->second->value.level < e.level) return;
    evict(at->second);
  }
  lru_.push_front({key, std::move(e), now + ttl_, size});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += size;
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
