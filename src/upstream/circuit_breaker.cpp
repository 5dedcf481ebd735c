#include "upstream/circuit_breaker.hpp"

#include <algorithm>

namespace llmgate::upstream {

circuit_breaker::state circuit_breaker::current(nanos now) const {
  if (state_ == state::open && now >= opened_at_ + cfg_.recovery_timeout) return state::half_open;
  return state_;
}

circuit_breaker::nanos circuit_breaker::retry_after(nanos now) const {
  if (current(now) != state::open) return nanos{0};
  return opened_at_ + cfg_.recovery_timeout - now;
}

std::optional<circuit_breaker::permit> circuit_breaker::allow(nanos now) {
  if (state_ == state::open) {
    if (now < opened_at_ + cfg_.recovery_timeout) return std::nullopt;
    state_ = state::half_open; // the recovery timeout has passed: try a few calls
    ++generation_;
    probes_in_flight_ = 0;
    probes_succeeded_ = 0;
  }
  if (state_ == state::half_open) {
    if (probes_in_flight_ + probes_succeeded_ >= cfg_.half_open_probes) return std::nullopt;
    ++probes_in_flight_;
    return permit{generation_, true};
  }
  return permit{generation_, false};
}

void circuit_breaker::on_success(const permit& p, nanos now, nanos took) {
  if (p.generation != generation_) return; // from before the last change of state
  if (p.probe) {
    probes_in_flight_ = std::max(0, probes_in_flight_ - 1);
    if (++probes_succeeded_ >= cfg_.half_open_probes) close();
    return;
  }
  if (state_ != state::closed) return;
  consecutive_failures_ = 0;
  record(false, took >= cfg_.slow_call_duration, now);
}

void circuit_breaker::on_failure(const permit& p, nanos now) {
  if (p.generation != generation_) return;
  if (p.probe) { // a failed probe: the backend is not back yet
    trip(now);
    return;
  }
  if (state_ != state::closed) return;
  ++consecutive_failures_;
  if (consecutive_failures_ >= cfg_.failure_threshold) {
    trip(now);
    return;
  }
  record(true, false, now);
}

void circuit_breaker::on_ignored(const permit& p) {
  if (p.generation == generation_ && p.probe) probes_in_flight_ = std::max(0, probes_in_flight_ - 1);
}

void circuit_breaker::record(bool failed, bool slow, nanos now) {
  outcomes_.push_back(static_cast<std::uint8_t>((failed ? 1 : 0) | (slow ? 2 : 0)));
  failures_in_window_ += failed;
  slow_in_window_ += slow;
  while (static_cast<int>(outcomes_.size()) > cfg_.window) {
    failures_in_window_ -= outcomes_.front() & 1;
    slow_in_window_ -= (outcomes_.front() >> 1) & 1;
    outcomes_.pop_front();
  }
  const auto calls = static_cast<int>(outcomes_.size());
  if (calls < cfg_.minimum_calls) return;
  const double failure_rate = static_cast<double>(failures_in_window_) / calls;
  const double slow_rate = static_cast<double>(slow_in_window_) / calls;
  if ((cfg_.failure_rate_threshold < 1.0 && failure_rate >= cfg_.failure_rate_threshold) ||
      (cfg_.slow_call_rate_threshold < 1.0 && slow_rate >= cfg_.slow_call_rate_threshold))
    trip(now);
}

void circuit_breaker::trip(nanos now) {
  state_ = state::open;
  ++generation_;
  opened_at_ = now;
  ++opened_count_;
  probes_in_flight_ = 0;
  probes_succeeded_ = 0;
}

void circuit_breaker::close() {
  state_ = state::closed;
  ++generation_;
  consecutive_failures_ = 0;
  outcomes_.clear();
  failures_in_window_ = 0;
  slow_in_window_ = 0;
}

} // namespace llmgate::upstream
