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
#include <optional>

namespace llmgate::upstream {

using breaker_config = control::breaker_config;

class circuit_breaker final {
public:
  enum class state { closed, open, half_open };
  using nanos = std::chrono::nanoseconds;

  explicit circuit_breaker(breaker_config cfg) : cfg_(cfg) {}

  // A call's admission: which era of the breaker let it through, and
  // whether it is a half-open probe. An outcome reported with a permit from
  // an earlier era (the breaker opened, half-opened or closed since) is
  // ignored: a long call admitted before an outage cannot close the breaker
  // after it, nor take a probe's place.
  struct permit {
    std::uint64_t generation = 0;
    bool probe = false;
  };

  // May a call go to the backend now? In half-open this takes a probe slot,
  // which the call's outcome gives back.
  [[nodiscard]] std::optional<permit> allow(nanos now);
  void on_success(const permit& p, nanos now, nanos took);
  void on_failure(const permit& p, nanos now);
  // The call ended with no verdict on the backend (the client left): a
  // half-open probe slot is given back, nothing is counted.
  void on_ignored(const permit& p);
  // The same for a call admitted in the breaker's present era.
  void on_success(nanos now, nanos took) { on_success(present(), now, took); }
  void on_failure(nanos now) { on_failure(present(), now); }

  [[nodiscard]] state current(nanos now) const;
  // Open: how long until probes are let through; otherwise zero.
  [[nodiscard]] nanos retry_after(nanos now) const;
  [[nodiscard]] std::uint64_t times_opened() const noexcept { return opened_count_; }
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

private:
  [[nodiscard]] permit present() const { return {generation_, state_ == state::half_open}; }
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
  std::uint64_t generation_ = 0; // +1 on every change of state
};

} // namespace llmgate::upstream
