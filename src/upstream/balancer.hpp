#pragma once
// How a model's pool picks a backend, for the strategies of the resilience
// work: round_robin, weighted (nginx's smooth weighted round robin),
// least_outstanding (power of two random choices), least_busy (from the
// backends' own queue and KV-cache figures) and prefix_affinity (rendezvous
// hashing of the prompt's start with bounded load, so a backend's prefix
// cache stays warm without overloading it). Pure; one per worker and model
// (not thread-safe).
#include "control/config.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string_view>
#include <vector>

namespace llmgate::upstream {

using balance_strategy = control::balance_strategy;

// What the balancer knows of one backend of the pool at the moment of choice.
struct backend_load {
  int weight = 1;
  int outstanding = 0;   // requests this gateway has in flight there
  double waiting = 0;    // vLLM num_requests_waiting (scraped)
  double kv_usage = 0;   // vLLM kv_cache_usage_perc, 0..1 (scraped)
  bool available = true; // healthy and breaker not open
};

class balancer final {
public:
  explicit balancer(balance_strategy s, std::uint64_t seed = 1) : strategy_(s), rng_(seed) {}

  // The index (into pool) to use, or nullopt when no backend is available.
  // prompt_key: the start of the prompt, for prefix_affinity.
  [[nodiscard]] std::optional<std::size_t> pick(std::span<const backend_load> pool, std::string_view prompt_key = {});

  // Bounded load for prefix_affinity: a backend may take at most
  // (1 + epsilon) × the mean outstanding + 1 before the next one is used.
  static constexpr double k_load_epsilon = 0.25;

private:
  std::optional<std::size_t> round_robin(std::span<const backend_load> pool);
  std::optional<std::size_t> weighted(std::span<const backend_load> pool);
  std::optional<std::size_t> least_outstanding(std::span<const backend_load> pool);
  std::optional<std::size_t> least_busy(std::span<const backend_load> pool);
  std::optional<std::size_t> prefix_affinity(std::span<const backend_load> pool, std::string_view key);

  balance_strategy strategy_;
  std::mt19937_64 rng_;
  std::size_t next_ = 0;
  std::vector<long long> current_weight_; // smooth weighted round robin state
};

} // namespace llmgate::upstream
