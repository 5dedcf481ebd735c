#pragma once
// A backend's cap on requests in flight (max_in_flight: what its GPU holds)
// with a bounded first-in-first-out line of waiters behind it: a request
// either takes a free slot, joins the line while it has room, or is refused
// at once — never an unbounded pile-up in front of a GPU. A finishing request
// hands its slot straight to the first waiter. Thread-safe: every worker's
// requests to one backend share it. Pure: waking a waiter is the caller's
// callback, so the event loops stay out of here.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace llmgate::upstream {

class bulkhead final {
public:
  // One request waiting in line. `wake` runs (outside the lock, on the
  // releasing thread) when a slot was handed to it; the waiter then learns
  // the outcome from leave().
  struct waiter {
    std::function<void()> wake;

  private:
    friend class bulkhead;
    bool granted = false; // guarded by the bulkhead's mutex
  };

  enum class outcome { acquired, queued, full };

  // max_in_flight 0: no cap (every acquire succeeds, nothing ever waits).
  bulkhead(std::uint32_t max_in_flight, std::uint32_t queue_max) : max_(max_in_flight), queue_max_(queue_max) {}

  // A slot now, a place in line (then wait for wake), or neither.
  outcome acquire(const std::shared_ptr<waiter>& w);
  // A slot now or nothing (never queues).
  bool try_acquire();
  // Out of the line (timed out, or the client left). True when a slot was
  // handed over first: the caller holds it and must release() it.
  bool leave(const std::shared_ptr<waiter>& w);
  // A slot is done with: the first waiter gets it, else it is free.
  void release();

  [[nodiscard]] bool capped() const noexcept { return max_ > 0; }
  [[nodiscard]] bool has_free_slot() const;
  [[nodiscard]] bool line_has_room() const;

  struct figures {
    std::uint32_t in_flight = 0;
    std::uint32_t queued = 0;
    std::uint32_t peak_in_flight = 0; // since start
    std::uint32_t peak_queued = 0;
    std::uint64_t queued_total = 0;   // requests that had to wait
    std::uint64_t rejected_total = 0; // refused with the line full
  };
  [[nodiscard]] figures read() const;

private:
  const std::uint32_t max_;
  const std::uint32_t queue_max_;
  mutable std::mutex mutex_;
  std::uint32_t in_flight_ = 0;
  std::deque<std::shared_ptr<waiter>> line_;
  figures stats_;
};

} // namespace llmgate::upstream
