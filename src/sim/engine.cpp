#include "sim/engine.hpp"

#include <algorithm>

namespace llmgate::sim {

bool find_profile(std::string_view name, profile& out) {
  if (name == "instant") {
    out = profile{};
    out.name = "instant";
    out.instant = true;
    return true;
  }
  if (name == "slow") { // many long-lived streams: a token every 500 ms for every sequence, no batch limit
    out = profile{};
    out.name = "slow";
    out.step_base = std::chrono::milliseconds(500);
    out.step_per_seq = std::chrono::microseconds(0);
    out.prefill_per_token = std::chrono::nanoseconds(0);
    out.max_running = std::size_t{1} << 20;
    out.kv_capacity_tokens = std::int64_t{1} << 40;
    return true;
  }
  if (name == "default" || name == "qwen3-1.7b-l4") {
    out = profile{};
    out.name = "qwen3-1.7b-l4";
    return true;
  }
  return false;
}

void engine::add(std::uint64_t id, std::int64_t prompt_tokens, std::int64_t output_tokens) {
  sequences_[id] = sequence{prompt_tokens, std::max<std::int64_t>(output_tokens, 1)};
  waiting_.push_back(id);
}

void engine::cancel(std::uint64_t id) {
  const auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  if (const auto r = std::find(running_.begin(), running_.end(), id); r != running_.end()) {
    kv_tokens_ -= it->second.prompt_tokens + it->second.generated;
    running_.erase(r);
  }
  if (const auto w = std::find(waiting_.begin(), waiting_.end(), id); w != waiting_.end()) waiting_.erase(w);
  sequences_.erase(it);
}

std::chrono::nanoseconds engine::begin_step() {
  std::chrono::nanoseconds prefill{0};
  while (!waiting_.empty() && running_.size() < profile_.max_running) {
    const auto id = waiting_.front();
    const auto& s = sequences_.at(id);
    if (kv_tokens_ + s.prompt_tokens > profile_.kv_capacity_tokens && !running_.empty()) break; // KV cache full
    waiting_.pop_front();
    running_.push_back(id);
    kv_tokens_ += s.prompt_tokens;
    prefill += profile_.prefill_per_token * s.prompt_tokens;
  }
  stepping_ = running_;
  if (stepping_.empty()) return std::chrono::nanoseconds{0};
  return profile_.step_base + profile_.step_per_seq * static_cast<std::int64_t>(stepping_.size()) + prefill;
}

std::vector<engine::progress> engine::end_step() {
  std::vector<progress> out;
  out.reserve(stepping_.size());
  for (const auto id : stepping_) {
    const auto it = sequences_.find(id);
    if (it == sequences_.end()) continue; // cancelled during the step
    auto& s = it->second;
    ++s.generated;
    ++kv_tokens_;
    const bool done = s.generated >= s.output_tokens;
    out.push_back({id, s.generated, done});
    if (done) {
      kv_tokens_ -= s.prompt_tokens + s.generated;
      running_.erase(std::find(running_.begin(), running_.end(), id));
      sequences_.erase(it);
    }
  }
  stepping_.clear();
  return out;
}

double engine::kv_usage() const noexcept {
  return profile_.kv_capacity_tokens > 0
             ? std::min(1.0, static_cast<double>(kv_tokens_) / static_cast<double>(profile_.kv_capacity_tokens))
             : 0.0;
}

} // namespace llmgate::sim
