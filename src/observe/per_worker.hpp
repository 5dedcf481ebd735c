#pragma once
// Per-worker shards of what every worker writes on every request: a
// worker's writes go to a shard of its own, on cache lines no other worker
// writes, and readers visit all shards. With one copy shared by all
// workers, each write was a cache line taken from the other cores (a miss
// per write with two workers on two cores; docs/BENCHMARKS.md, "Twelfth
// stop"). A worker thread says which it is once (set_shard); other threads
// share shard 0.
#include <cstddef>
#include <memory>
#include <mutex>

namespace llmgate::observe {

// Shards: 0 for threads that are not workers, 1 … k_shards - 1 for the
// workers (more workers than that share).
inline constexpr std::size_t k_shards = 8;
inline constexpr std::size_t k_line = 64; // bytes in a cache line
namespace detail {
inline thread_local std::size_t this_shard = 0;
}
// Called by a worker thread once, before it updates any shard.
inline void set_shard(std::size_t worker_index) noexcept { detail::this_shard = 1 + worker_index % (k_shards - 1); }

// A T per shard, each under a lock of its own (uncontended but for readers).
template <class T> class per_worker final {
public:
  // Every shard starts as a copy of `first`.
  explicit per_worker(const T& first) : cells_(std::make_unique<cell[]>(k_shards)) {
    for (std::size_t i = 0; i < k_shards; ++i) cells_[i].value = first;
  }
  // f(T&) on this thread's shard, under its lock.
  template <class F> decltype(auto) mine(F&& f) {
    auto& c = cells_[detail::this_shard];
    std::lock_guard lock(c.m);
    return f(c.value);
  }
  // f(const T&) on every shard in turn, each under its lock.
  template <class F> void each(F&& f) const {
    for (std::size_t i = 0; i < k_shards; ++i) {
      std::lock_guard lock(cells_[i].m);
      f(static_cast<const T&>(cells_[i].value));
    }
  }

private:
  struct alignas(k_line) cell {
    mutable std::mutex m;
    T value;
  };
  std::unique_ptr<cell[]> cells_;
};

} // namespace llmgate::observe
