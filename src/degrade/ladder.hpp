#pragma once
// The degradation ladder of one model: L0 normal, L1 no streaming, L2 no
// thinking, L3 the fallback model, L4 the static reply — each level includes
// the ones below it. The level is set by hand (config or admin API; it
// overrides the triggers until released) or by the model's triggers, with
// hysteresis: it rises at once to what the triggers ask, and falls one step
// at a time, each after the triggers have asked for less for a whole dwell.
// Pure and thread-safe: the request path reads the level lock-free; the
// evaluator and the admin API change it. Time is injected.
#include "control/config.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <vector>

namespace llmgate::degrade {

using nanos = std::chrono::nanoseconds;
inline constexpr int k_max_level = 4;

// The level a request gets: its model's, if at least its tier's degrade_from; else L0.
[[nodiscard]] constexpr int applied_level(int model_level, int degrade_from) noexcept {
  return model_level >= degrade_from ? model_level : 0;
}

// One pool's measures at one moment, by control::signal; NaN where unknown.
using signal_values = std::array<double, 9>;
[[nodiscard]] inline signal_values unknown_signals() {
  signal_values v;
  v.fill(std::numeric_limits<double>::quiet_NaN());
  return v;
}
[[nodiscard]] inline double& at(signal_values& v, control::signal s) { return v[static_cast<std::size_t>(s)]; }
[[nodiscard]] inline double at(const signal_values& v, control::signal s) { return v[static_cast<std::size_t>(s)]; }

// The highest level asked for by a trigger whose signal is above its
// threshold (an unknown signal asks for nothing); 0 when none is.
[[nodiscard]] int target_level(const std::vector<control::trigger_config>& triggers, const signal_values& v);

// Up at once, down one step per dwell: the same hysteresis for the ladder and load-driven limits.
class hysteresis {
public:
  // The value after `target` was seen at `now`.
  int update(int target, nanos now, nanos dwell);
  [[nodiscard]] int value() const noexcept { return value_; }

private:
  int value_ = 0;
  bool falling_ = false;
  nanos lower_since_{0};
};

class model_ladder {
public:
  // configured: 0..4 set by config (a manual level), -1 auto.
  explicit model_ladder(int configured = -1);

  [[nodiscard]] int level() const noexcept { return level_.load(std::memory_order_relaxed); }

  // The triggers' target, every degrade.interval. Returns the new level when it changed.
  std::optional<int> on_target(int target, nanos now, nanos dwell);
  // Set by hand (admin API): overrides the triggers until released. Returns the new level when it changed.
  std::optional<int> set_manual(int level);
  std::optional<int> release();

  struct view {
    int level, automatic, target;
    std::optional<int> manual;
  };
  [[nodiscard]] view state() const;

private:
  std::optional<int> publish(); // level_ from manual_ or the hysteresis; the new level if it changed
  mutable std::mutex m_;
  std::atomic<int> level_{0};
  std::optional<int> manual_;
  hysteresis auto_;
  int target_ = 0;
};

} // namespace llmgate::degrade
