#pragma once
// The simulator's timing: a continuous-batching engine like vLLM's. Waiting
// sequences join the running batch (up to max_running) at the start of a
// step; a step produces one token for every running sequence and lasts
// step_base + step_per_seq × batch, plus the prefill of the sequences that
// joined. Pure: the caller sleeps for the step's duration. Not thread-safe.
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

namespace llmgate::sim {

struct profile {
  std::string name;
  bool instant = false;                              // no engine: every token at once
  std::chrono::microseconds step_base{15000};        // one sequence: 15 ms a token (Qwen3-1.7B on one L4 under vLLM)
  std::chrono::microseconds step_per_seq{192};       // 256 sequences: 64 ms a step, about 4,000 tokens/s
  std::chrono::nanoseconds prefill_per_token{85000}; // 8k prompt: about 0.7 s to first token
  std::size_t max_running = 256;
  std::int64_t kv_capacity_tokens = 262144;
};

// "instant" (proxy benchmarks), "slow" (a token every 500 ms for any number
// of sequences: holding many streams open) or "default"/"qwen3-1.7b-l4"
// (calibrated above).
[[nodiscard]] bool find_profile(std::string_view name, profile& out);

class engine final {
public:
  explicit engine(profile p) : profile_(std::move(p)) {}

  void add(std::uint64_t id, std::int64_t prompt_tokens, std::int64_t output_tokens);
  void cancel(std::uint64_t id);

  // Starts a step: admits waiting sequences and returns how long the step takes
  // (zero when idle).
  [[nodiscard]] std::chrono::nanoseconds begin_step();

  struct progress {
    std::uint64_t id;
    std::int64_t generated; // total so far
    bool finished;
  };
  // Ends the step begun last: one token for each sequence that ran in it.
  [[nodiscard]] std::vector<progress> end_step();

  [[nodiscard]] std::size_t running() const noexcept { return running_.size(); }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiting_.size(); }
  [[nodiscard]] bool idle() const noexcept { return running_.empty() && waiting_.empty(); }
  [[nodiscard]] double kv_usage() const noexcept;
  [[nodiscard]] const profile& settings() const noexcept { return profile_; }

private:
  struct sequence {
    std::int64_t prompt_tokens;
    std::int64_t output_tokens;
    std::int64_t generated = 0;
  };
  profile profile_;
  std::unordered_map<std::uint64_t, sequence> sequences_;
  std::deque<std::uint64_t> waiting_;
  std::vector<std::uint64_t> running_;
  std::vector<std::uint64_t> stepping_; // the batch of the current step
  std::int64_t kv_tokens_ = 0;
};

} // namespace llmgate::sim
