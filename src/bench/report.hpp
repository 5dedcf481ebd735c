#pragma once
// What `llmgate bench` measured: latency histograms with 1% resolution
// (constant memory however long the run), counts by outcome, and the end
// summary as a table for people and as JSON for scripts. Pure; not
// thread-safe (one tally per load thread, merged at the end).
#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace llmgate::bench {

// Durations from 1 µs to about 3 hours in buckets 1% wide.
class latency_histogram final {
public:
  latency_histogram();
  void add(double seconds);
  void merge(const latency_histogram& other);
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] double mean() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  [[nodiscard]] double max() const noexcept { return max_; }
  // The q-quantile (0..1) in seconds, within 1% (exact for the largest); 0 when empty.
  [[nodiscard]] double quantile(double q) const;

private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
  double max_ = 0;
};

struct tally {
  std::uint64_t sent = 0;
  std::uint64_t ok = 0;           // 200 and a whole answer
  std::uint64_t met_slo = 0;      // ok, and within the SLO
  std::uint64_t rate_limited = 0; // 429
  std::uint64_t busy = 0;         // 503
  std::uint64_t other_status = 0; // any other status
  std::uint64_t errors = 0;       // connect or I/O errors, timeouts, streams cut short
  std::uint64_t unfinished = 0;   // still running when the run's drain time was over
  std::uint64_t output_tokens = 0;
  std::uint64_t met_slo_tokens = 0; // output tokens of the answers within the SLO (useful tokens)
  std::uint64_t prompt_tokens = 0;
  latency_histogram ttft; // time to first token (a whole answer: its arrival)
  latency_histogram itl;  // between successive token events of a stream
  latency_histogram e2e;  // the whole request
  void merge(const tally& other);
};

struct slo {
  double ttft_s = 2.0; // first token within this
  double e2e_s = 0;    // and, when > 0, the whole answer within this
};

struct run_description {
  std::string target; // the URL
  std::string mode;   // "closed loop, 64 users" / "open loop, 40 req/s (Poisson)"
  bool stream = true;
  std::string prompt_tokens, output_tokens; // distributions as given
  slo goal;
};

// seconds: from the first request sent to the last answer.
[[nodiscard]] std::string format_summary(const run_description& run, const tally& t, double seconds);
[[nodiscard]] boost::json::object summary_json(const run_description& run, const tally& t, double seconds);

} // namespace llmgate::bench

namespace llmgate::bench {

// Counts while a run goes (read from another thread: plain numbers copied out of atomics).
struct progress_snapshot {
  std::uint64_t sent = 0, done = 0, ok = 0, refused = 0, errors = 0, output_tokens = 0, in_flight = 0;
};

// One status line: with a bar for a terminal (fraction 0..1 of the run), plain otherwise.
[[nodiscard]] std::string progress_line(const progress_snapshot& p, double elapsed_s, double fraction, bool bar);

} // namespace llmgate::bench
