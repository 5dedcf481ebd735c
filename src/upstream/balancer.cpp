#include "upstream/balancer.hpp"

#include <algorithm>
#include <limits>

namespace llmgate::upstream {

namespace {

std::uint64_t mix(std::uint64_t x) { // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t hash_text(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

} // namespace

std::optional<std::size_t> balancer::pick(std::span<const backend_load> pool, std::string_view prompt_key) {
  switch (strategy_) {
  case balance_strategy::round_robin: return round_robin(pool);
  case balance_strategy::weighted: return weighted(pool);
  case balance_strategy::least_outstanding: return least_outstanding(pool);
  case balance_strategy::least_busy: return least_busy(pool);
  case balance_strategy::prefix_affinity: return prefix_affinity(pool, prompt_key);
  }
  return std::nullopt;
}

std::optional<std::size_t> balancer::round_robin(std::span<const backend_load> pool) {
  for (std::size_t tried = 0; tried < pool.size(); ++tried) {
    const auto i = next_++ % pool.size();
    if (pool[i].available) return i;
  }
  return std::nullopt;
}

// nginx's smooth weighted round robin: every available backend gains its
// weight, the largest is chosen and pays the total back — 5:1:1 goes
// a a b a c a a rather than a a a a a b c.
std::optional<std::size_t> balancer::weighted(std::span<const backend_load> pool) {
  current_weight_.resize(pool.size(), 0);
  long long total = 0;
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    if (!pool[i].available || pool[i].weight <= 0) continue;
    current_weight_[i] += pool[i].weight;
    total += pool[i].weight;
    if (!best || current_weight_[i] > current_weight_[*best]) best = i;
  }
  if (best) current_weight_[*best] -= total;
  return best;
}

// Two random available backends; the one with fewer requests in flight wins.
std::optional<std::size_t> balancer::least_outstanding(std::span<const backend_load> pool) {
  std::vector<std::size_t> up;
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (pool[i].available) up.push_back(i);
  if (up.empty()) return std::nullopt;
  if (up.size() == 1) return up[0];
  std::uniform_int_distribution<std::size_t> d(0, up.size() - 1);
  const auto a = up[d(rng_)];
  auto b = up[d(rng_)];
  if (b == a) b = up[(std::find(up.begin(), up.end(), a) - up.begin() + 1) % up.size()];
  return pool[b].outstanding < pool[a].outstanding ? b : a;
}

// The backend whose own queue is shortest, then whose KV cache is least
// full, then with the fewest requests from us in flight.
std::optional<std::size_t> balancer::least_busy(std::span<const backend_load> pool) {
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    if (!pool[i].available) continue;
    if (!best) {
      best = i;
      continue;
    }
    const auto& x = pool[i];
    const auto& y = pool[*best];
    if (x.waiting != y.waiting     ? x.waiting < y.waiting
        : x.kv_usage != y.kv_usage ? x.kv_usage < y.kv_usage
                                   : x.outstanding < y.outstanding)
      best = i;
  }
  return best;
}

// Rendezvous hashing: each backend scores hash(prompt start, backend); the
// highest-scoring backend that is not over its bounded load wins. Removing a
// backend moves only the prompts it owned.
std::optional<std::size_t> balancer::prefix_affinity(std::span<const backend_load> pool, std::string_view key) {
  const auto h = hash_text(key);
  long long total = 0, up = 0;
  for (const auto& b : pool)
    if (b.available) {
      total += b.outstanding;
      ++up;
    }
  if (up == 0) return std::nullopt;
  const double bound = (1.0 + k_load_epsilon) * static_cast<double>(total) / static_cast<double>(up) + 1.0;
  std::vector<std::pair<std::uint64_t, std::size_t>> ranked;
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (pool[i].available) ranked.emplace_back(mix(h ^ mix(i + 1)), i);
  std::sort(ranked.begin(), ranked.end(), std::greater<>());
  for (const auto& [score, i] : ranked)
    if (static_cast<double>(pool[i].outstanding) + 1.0 <= bound) return i;
  return ranked.front().second;
}

} // namespace llmgate::upstream
