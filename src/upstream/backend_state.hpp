#pragma once
// What the gateway knows of one backend, shared by every worker: whether
// active health checks pass, its circuit breaker (passive detection from
// live traffic), its in-flight cap and waiting line, and the load figures
// scraped from its metrics. Pure (time passed in); thread-safe.
#include "control/config.hpp"
#include "observe/scrape.hpp"
#include "upstream/bulkhead.hpp"
#include "upstream/circuit_breaker.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace llmgate::upstream {

// How one exchange with the backend ended, for the breaker.
struct call_result {
  unsigned failure = 0;             // a control::failure_kind, or 0: the backend did its part
  bool ignored = false;             // no verdict (the client left first)
  std::chrono::nanoseconds took{0}; // to the response head or first token
};

class backend_state final {
public:
  using nanos = std::chrono::nanoseconds;
  using breaker_state = circuit_breaker::state;

  explicit backend_state(const control::backend_config& cfg); // cfg must outlive the state
  explicit backend_state(control::backend_config&&) = delete;

  [[nodiscard]] const control::backend_config& config() const noexcept { return cfg_; }

  // Worth offering traffic: health checks pass and the breaker is not open.
  [[nodiscard]] bool routable(nanos now) const;
  using permit = circuit_breaker::permit;
  // The breaker's consent for one call (half-open: takes a probe slot, which
  // report() gives back). half_opened: set when this call moved the breaker
  // from open to half-open.
  [[nodiscard]] std::optional<permit> admit(nanos now, bool* half_opened = nullptr);
  // The outcome of a call admitted with `p`. Returns the breaker's new state when it changed.
  std::optional<breaker_state> report(nanos now, const permit& p, const call_result& r);

  [[nodiscard]] breaker_state breaker(nanos now) const;
  [[nodiscard]] nanos breaker_retry_after(nanos now) const;
  [[nodiscard]] std::uint64_t breaker_opened_total() const;

  // An active check's verdict. Returns the new health when it changed.
  std::optional<bool> health_result(bool passed);
  [[nodiscard]] bool healthy() const noexcept { return healthy_.load(std::memory_order_relaxed); }

  // Scraped load (engine metrics and GPU); read by least_busy and /metrics.
  void set_engine(const observe::engine_figures& f);
  void set_gpu(const observe::gpu_figures& f);
  void clear_engine(); // the scrape failed: stale figures must not steer traffic
  [[nodiscard]] observe::engine_figures engine() const;
  // Requests sent since the engine figures were last scraped (they are not in them yet).
  void count_sent() noexcept { sent_since_scrape_.fetch_add(1, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t sent_since_scrape() const noexcept {
    return sent_since_scrape_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] observe::gpu_figures gpu() const;

  bulkhead slots;

private:
  void note_breaker(breaker_state now_in); // under breaker_mutex_: keeps breaker_closed_

  const control::backend_config& cfg_;
  mutable std::mutex breaker_mutex_;
  circuit_breaker breaker_;
  // Read by every request (routable), written when they change: a cache line
  // of their own, not the one of the breaker's lock and counts, which every
  // call writes (with several workers, each read there was a miss).
  alignas(64) std::atomic<bool> healthy_{true}; // until checks say otherwise, so a start needs no warm-up
  // The breaker was closed after its last call (admit, report): routable()
  // needs no lock then. Only report() closes or opens it; admit() still
  // decides under the lock whether a call may go.
  std::atomic<bool> breaker_closed_{true};
  alignas(64) std::mutex health_mutex_;
  int passes_ = 0, fails_ = 0;
  mutable std::mutex figures_mutex_;
  observe::engine_figures engine_;
  observe::gpu_figures gpu_;
  std::atomic<std::int64_t> sent_since_scrape_{0};
};

} // namespace llmgate::upstream
