#pragma once
// A circuit breaker for one backend, as the seed's section 6.1 and
// Resilience4j describe it: closed → open after `failure_threshold`
// consecutive failures, or when the failure rate or the slow-call rate over
// the last `window` calls passes its threshold (once `minimum_calls` were
// seen); open for `recovery_timeout`; then half-open, letting `half_open_probes`
// calls through: all succeed → closed, any fails → open again.
// Pure (time passed in); not thread-safe (one per backend and worker, or
// guarded by the caller: upstream::backend_state holds one per backend).
#include "control/config.hpp"

#include <chrono>
#include <cstdint>
#include <deque>

namespace llmgate::upstream {

using breaker_config = control::breaker_config;

class circuit_breaker final {
public:
  enum class state { closed, open, half_open };
  using nanos = std::chrono::nanoseconds;

  explicit circuit_breaker(breaker_config cfg) : cfg_(cfg) {}

  // May a call go to the backend now? In half-open this takes a probe slot,
  // which on_success/on_failure gives back.
  [[nodiscard]] bool allow(nanos now);
  void on_success(nanos now, nanos took);
  void on_failure(nanos now);
  // The call ended with no verdict on the backend (the client left): a
  // half-open probe slot is given back, nothing is counted.
  void on_ignored();

  [[nodiscard]] state current(nanos now) const;
  // Open: how long until probes are let through; otherwise zero.
  [[nodiscard]] nanos retry_after(nanos now) const;
  [[nodiscard]] std::uint64_t times_opened() const noexcept { return opened_count_; }

private:
  void record(bool failed, bool slow, nanos now);
  void trip(nanos now);
  void close();

  breaker_config cfg_;
  state state_ = state::closed;
  nanos opened_at_{0};
  int consecutive_failures_ = 0;
  int probes_in_flight_ = 0;
  int probes_succeeded_ = 0;
  std::deque<std::uint8_t> outcomes_; // bit 0: failed, bit 1: slow; newest last
  int failures_in_window_ = 0;
  int slow_in_window_ = 0;
  std::uint64_t opened_count_ = 0;
};

} // namespace llmgate::upstream
