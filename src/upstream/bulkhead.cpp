#include "upstream/bulkhead.hpp"

#include <algorithm>

namespace llmgate::upstream {

bulkhead::outcome bulkhead::acquire(const std::shared_ptr<waiter>& w) {
  std::lock_guard lock(mutex_);
  w->granted = false;
  if (max_ == 0 || (in_flight_ < max_ && line_.empty())) {
    ++in_flight_;
    stats_.peak_in_flight = std::max(stats_.peak_in_flight, in_flight_);
    return outcome::acquired;
  }
  if (line_.size() >= queue_max_) {
    ++stats_.rejected_total;
    return outcome::full;
  }
  line_.push_back(w);
  ++stats_.queued_total;
  stats_.peak_queued = std::max(stats_.peak_queued, static_cast<std::uint32_t>(line_.size()));
  return outcome::queued;
}

bool bulkhead::try_acquire() {
  std::lock_guard lock(mutex_);
  if (max_ != 0 && (in_flight_ >= max_ || !line_.empty())) return false;
  ++in_flight_;
  stats_.peak_in_flight = std::max(stats_.peak_in_flight, in_flight_);
  return true;
}

bool bulkhead::leave(const std::shared_ptr<waiter>& w) {
  std::lock_guard lock(mutex_);
  if (w->granted) return true;
  if (auto it = std::find(line_.begin(), line_.end(), w); it != line_.end()) line_.erase(it);
  return false;
}

void bulkhead::release() {
  std::shared_ptr<waiter> next;
  {
    std::lock_guard lock(mutex_);
    if (!line_.empty()) { // the slot passes on: in_flight stays the same
      next = std::move(line_.front());
      line_.pop_front();
      next->granted = true;
    } else if (in_flight_ > 0) {
      --in_flight_;
    }
  }
  if (next && next->wake) next->wake();
}

bool bulkhead::has_free_slot() const {
  std::lock_guard lock(mutex_);
  return max_ == 0 || (in_flight_ < max_ && line_.empty());
}

bool bulkhead::line_has_room() const {
  std::lock_guard lock(mutex_);
  return line_.size() < queue_max_;
}

bulkhead::figures bulkhead::read() const {
  std::lock_guard lock(mutex_);
  auto f = stats_;
  f.in_flight = in_flight_;
  f.queued = static_cast<std::uint32_t>(line_.size());
  return f;
}

} // namespace llmgate::upstream
