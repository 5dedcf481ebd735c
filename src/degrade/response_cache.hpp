#pragma once
// The response cache: whole answers (a JSON completion, or a stream's SSE
// once it completed) by the normalised request — model, messages or prompt,
// tools, sampling parameters, whether it streams — in LRU order, with a TTL
// and bounds on entries and bytes. Each entry remembers the model that
// produced it and the ladder level it was made at, and is served only to a
// request at that level or a worse one. Once full, a new request's answer
// displaces the least recently used entry only if the same request was
// answered before (a doorkeeper: most prompts are asked once, and each one
// stored would push out an answer that is asked again). Pure and thread-safe
// (one lock; lookups are rare: when a pool cannot answer, or temperature-0
// repeats; stores are not: every whole answer in the default mode).
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::degrade {

// The request as a cache key: its body in canonical form (object keys
// sorted, recursively, without `model` and `user`, which do not change the
// answer: request_view::canonical), the model's canonical name, the endpoint
// and the caller (scope: key).
[[nodiscard]] std::string cache_key(std::string canonical_body, std::string_view model, std::string_view endpoint,
                                    std::string_view caller);

class response_cache {
public:
  response_cache(std::size_t max_entries, std::uint64_t max_bytes, std::chrono::nanoseconds ttl);
  ~response_cache();
  response_cache(const response_cache&) = delete;
  response_cache& operator=(const response_cache&) = delete;

  struct entry {
    std::string body;
    std::string content_type;
    std::string model; // the model that produced it
    int level = 0;     // the ladder level it was made at
  };
  // What store() copies in.
  struct entry_view {
    std::string_view body;
    std::string_view content_type;
    std::string_view model;
    int level = 0;
  };
  // What an entry counts against max_bytes beyond its key and texts: its
  // block's header and its place in the index.
  static constexpr std::uint64_t k_entry_overhead = 112;

  // A copy of the entry if one is fresh and was made at `level` or below.
  [[nodiscard]] std::optional<entry> find(std::string_view key, int level, std::chrono::nanoseconds now);
  // Replaces the entry of `key` unless that one is fresh and made at a better
  // (lower) level. A key not in the cache is added while there is room; when
  // adding it would evict, only if this key was offered before (its hash is
  // noted in the doorkeeper, a table of fingerprints that forgets as others
  // take their cells). Every answer is offered in the default mode, so this
  // runs for every request: an entry is one block (its key and texts after a
  // header) and the block of the entry evicted for it, or of the one it
  // replaces, is written over when the new one fits. True when stored.
  bool store(std::string_view key, const entry_view& e, std::chrono::nanoseconds now);

  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::uint64_t bytes() const;

private:
  struct table; // the entries, their LRU order and their index (response_cache.cpp)
  const std::size_t max_entries_;
  const std::uint64_t max_bytes_;
  const std::chrono::nanoseconds ttl_;
  mutable std::mutex m_;
  std::unique_ptr<table> t_;
};

} // namespace llmgate::degrade
