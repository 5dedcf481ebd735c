#pragma once
// How many retries the gateway may send, so that retries cannot multiply an
// outage (as Finagle's and Linkerd's retry budgets): over the last `window`,
// retries may be at most `ratio` × the requests seen plus `min_per_second` ×
// the window's seconds. And how long to wait before a retry: "full jitter"
// exponential backoff (a uniform draw below base × 2^(retry-1), capped).
// Pure (time passed in); thread-safe: one budget serves every worker. Every
// request is counted, by every worker: each counts in a ring of its own
// (observe::per_worker); a retry, rare, reads them all under the budget's lock.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <vector>

#include "observe/per_worker.hpp"

namespace llmgate::upstream {

class retry_budget final {
public:
  using nanos = std::chrono::nanoseconds;

  retry_budget(double ratio, double min_per_second, nanos window);

  void on_request(nanos now); // a first attempt
  // May one more retry go now? If so it is counted.
  [[nodiscard]] bool try_retry(nanos now);

  struct figures {
    std::uint64_t requests = 0; // in the window
    std::uint64_t retries = 0;
  };
  [[nodiscard]] figures in_window(nanos now);

private:
  struct bucket {
    std::int64_t second = -1;
    std::uint64_t count = 0; // requests, or retries
  };
  using ring = std::vector<bucket>; // one per second of the window
  static bucket& current(ring& r, nanos now);
  static std::uint64_t sum(const ring& r, nanos now);
  figures sum(nanos now) const; // under mutex_

  double ratio_;
  double min_per_second_;
  observe::per_worker<ring> requests_;
  ring retries_; // under mutex_
  std::mutex mutex_;
};

// The wait before retry number `retry` (1 for the first retry).
[[nodiscard]] std::chrono::nanoseconds full_jitter_backoff(int retry, std::chrono::nanoseconds base,
                                                           std::chrono::nanoseconds cap, std::mt19937_64& rng);

} // namespace llmgate::upstream
