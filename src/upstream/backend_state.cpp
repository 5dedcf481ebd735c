#include "upstream/backend_state.hpp"

namespace llmgate::upstream {

backend_state::backend_state(const control::backend_config& cfg)
    : slots(cfg.max_in_flight, cfg.queue_max), cfg_(cfg), breaker_(cfg.breaker) {}

bool backend_state::routable(nanos now) const {
  if (!healthy()) return false;
  if (!cfg_.breaker.enabled || breaker_closed_.load(std::memory_order_relaxed)) return true;
  std::lock_guard lock(breaker_mutex_);
  return breaker_.current(now) != breaker_state::open;
}

void backend_state::note_breaker(breaker_state now_in) {
  const bool closed = now_in == breaker_state::closed;
  if (breaker_closed_.load(std::memory_order_relaxed) != closed) // written on a change only
    breaker_closed_.store(closed, std::memory_order_relaxed);
}

std::optional<backend_state::permit> backend_state::admit(nanos now, bool* half_opened) {
  if (!cfg_.breaker.enabled) return permit{};
  std::lock_guard lock(breaker_mutex_);
  const auto era = breaker_.generation();
  auto p = breaker_.allow(now);
  if (breaker_.generation() != era) note_breaker(breaker_.current(now));
  if (half_opened) *half_opened = breaker_.generation() != era; // allow() changes state only open → half-open
  return p;
}

std::optional<backend_state::breaker_state> backend_state::report(nanos now, const permit& p, const call_result& r) {
  if (!cfg_.breaker.enabled) return std::nullopt;
  std::lock_guard lock(breaker_mutex_);
  const auto before = breaker_.current(now);
  if (r.ignored)
    breaker_.on_ignored(p);
  else if (r.failure & cfg_.breaker.failure_on)
    breaker_.on_failure(p, now);
  else
    breaker_.on_success(p, now, r.took); // a failure the breaker is told not to count is the backend alive
  const auto after = breaker_.current(now);
  note_breaker(after);
  if (after == before) return std::nullopt;
  return after;
}

backend_state::breaker_state backend_state::breaker(nanos now) const {
  if (!cfg_.breaker.enabled) return breaker_state::closed;
  std::lock_guard lock(breaker_mutex_);
  return breaker_.current(now);
}

backend_state::nanos backend_state::breaker_retry_after(nanos now) const {
  std::lock_guard lock(breaker_mutex_);
  return breaker_.retry_after(now);
}

std::uint64_t backend_state::breaker_opened_total() const {
  std::lock_guard lock(breaker_mutex_);
  return breaker_.times_opened();
}

std::optional<bool> backend_state::health_result(bool passed) {
  std::lock_guard lock(health_mutex_);
  const bool was = healthy();
  if (passed) {
    ++passes_;
    fails_ = 0;
    if (!was && passes_ >= cfg_.health.healthy_threshold) {
      healthy_.store(true);
      return true;
    }
  } else {
    ++fails_;
    passes_ = 0;
    if (was && fails_ >= cfg_.health.unhealthy_threshold) {
      healthy_.store(false);
      return false;
    }
  }
  return std::nullopt;
}

void backend_state::set_engine(const observe::engine_figures& f) {
  std::lock_guard lock(figures_mutex_);
  engine_ = f;
  sent_since_scrape_.store(0, std::memory_order_relaxed);
}

void backend_state::set_gpu(const observe::gpu_figures& f) {
  std::lock_guard lock(figures_mutex_);
  gpu_ = f;
}

void backend_state::clear_engine() {
  std::lock_guard lock(figures_mutex_);
  engine_ = {};
}

observe::engine_figures backend_state::engine() const {
  std::lock_guard lock(figures_mutex_);
  return engine_;
}

observe::gpu_figures backend_state::gpu() const {
  std::lock_guard lock(figures_mutex_);
  return gpu_;
}

} // namespace llmgate::upstream
