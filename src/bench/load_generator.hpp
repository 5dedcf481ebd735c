#pragma once
// `llmgate bench`'s engine: sends chat completions to an OpenAI-compatible
// server, closed loop (N users, each waiting for its answer) or open loop
// (Poisson arrivals at a rate, never waiting on answers, so a slow server
// cannot slow the offered load), and measures every answer: status, time to
// first token, gaps between tokens, the whole request. Each thread runs its
// own event loop and tally; they are merged at the end.
#include "bench/report.hpp"
#include "bench/workload.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace llmgate::bench {

struct load_options {
  std::string url = "http://127.0.0.1:8080/v1/chat/completions";
  std::string api_key; // sent as a bearer token when set
  request_shape shape;
  length_dist prompt{length_dist::shape::fixed, 256, 0};
  length_dist output{length_dist::shape::fixed, 128, 0};
  std::size_t users = 0;      // > 0: closed loop
  double rate = 0;            // > 0: open loop, requests per second
  double duration_s = 0;      // stop sending after this long (0: by count)
  std::uint64_t requests = 0; // stop after sending this many (0: by time)
  double drain_s = 30;        // then wait this long for answers in flight; the rest count as unfinished
  double warmup_s = 0;        // answers that come in the first seconds are not counted (a closed loop's ramp)
  // Count the requests sent between the end of the warm-up and the end of
  // duration_s (answered during the drain or before), per second of that
  // window: a steady rate, the same for a closed loop and an open one,
  // neither cut at the end nor diluted by the drain. Needs duration_s.
  bool steady = false;
  double timeout_s = 600; // one request's whole time
  unsigned threads = 1;
  std::uint64_t seed = 1;
  slo goal;
};

// Shared with the thread that reports progress.
struct live_counts {
  std::atomic<std::uint64_t> sent{0}, done{0}, ok{0}, refused{0}, errors{0}, output_tokens{0}, in_flight{0};
  [[nodiscard]] progress_snapshot snapshot() const;
};

struct load_result {
  tally total;
  double seconds = 0; // from the end of the warm-up (the start without one) to the last answer; steady: the window
};

// Checks the options; the reason when they do not make a run.
[[nodiscard]] std::string validate(const load_options& opts);

// Runs the load to its end. `tick` is called on the calling thread every
// `interval` while it runs (for a progress line).
[[nodiscard]] load_result run_load(const load_options& opts, live_counts& live, const std::function<void()>& tick,
                                   std::chrono::milliseconds interval);

} // namespace llmgate::bench
