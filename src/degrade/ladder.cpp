#include "degrade/ladder.hpp"

#include <algorithm>

namespace llmgate::degrade {

int target_level(const std::vector<control::trigger_config>& triggers, const signal_values& v) {
  int out = 0;
  for (const auto& t : triggers) {
    const double value = at(v, t.what);
    if (!std::isnan(value) && value > t.above) out = std::max(out, t.level);
  }
  return std::clamp(out, 0, k_max_level);
}

int hysteresis::update(int target, nanos now, nanos dwell) {
  if (target >= value_) { // up at once (or steady)
    value_ = target;
    falling_ = false;
    return value_;
  }
  if (!falling_) { // lower from now on: the dwell starts
    falling_ = true;
    lower_since_ = now;
    return value_;
  }
  if (now - lower_since_ >= dwell) { // one step down, and the next one after another dwell
    --value_;
    lower_since_ = now;
    if (value_ <= target) falling_ = false;
  }
  return value_;
}

model_ladder::model_ladder(int configured) {
  if (configured >= 0) manual_ = std::clamp(configured, 0, k_max_level);
  publish();
}

std::optional<int> model_ladder::publish() {
  const int next = manual_ ? *manual_ : auto_.value();
  if (level_.exchange(next) == next) return std::nullopt;
  return next;
}

std::optional<int> model_ladder::on_target(int target, nanos now, nanos dwell) {
  std::lock_guard lock(m_);
  target_ = target;
  auto_.update(target, now, dwell);
  return publish();
}

std::optional<int> model_ladder::set_manual(int level) {
  std::lock_guard lock(m_);
  manual_ = std::clamp(level, 0, k_max_level);
  return publish();
}

std::optional<int> model_ladder::release() {
  std::lock_guard lock(m_);
  manual_.reset();
  return publish();
}

model_ladder::view model_ladder::state() const {
  std::lock_guard lock(m_);
  return {level_.load(), auto_.value(), target_, manual_};
}

} // namespace llmgate::degrade
