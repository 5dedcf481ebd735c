#include "upstream/router.hpp"

#include <algorithm>

namespace llmgate::upstream {

router::router(const control::config& cfg, const std::vector<std::unique_ptr<backend_state>>& states,
               std::uint64_t seed)
    : states_(states), pools_(cfg.models.size()) {
  for (std::size_t m = 0; m < cfg.models.size(); ++m) {
    balancers_.emplace_back(cfg.models[m].balance, seed + m);
    for (std::size_t b = 0; b < cfg.backends.size(); ++b) {
      const auto& served = cfg.backends[b].models;
      if (std::find(served.begin(), served.end(), cfg.models[m].name) != served.end()) pools_[m].push_back(b);
    }
  }
}

router::choice router::choose(std::size_t model, std::string_view prompt_key, const std::vector<std::size_t>& tried,
                              std::chrono::nanoseconds now) {
  const auto& p = pools_[model];
  candidate_.assign(p.size(), false);
  bool any = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    // A retry goes to another backend: the one that just failed or hung is not asked twice.
    if (!states_[p[i]]->routable(now) || std::find(tried.begin(), tried.end(), p[i]) != tried.end()) continue;
    candidate_[i] = true;
    any = true;
  }
  if (!any) return {choice::down, 0};

  // First choice: the strategy's pick among candidates with a free slot.
  loads_.assign(p.size(), backend_load{});
  for (std::size_t i = 0; i < p.size(); ++i) {
    auto& s = *states_[p[i]];
    const auto f = s.slots.read();
    const auto e = s.engine();
    loads_[i] = {s.config().weight, static_cast<int>(f.in_flight), e.waiting.value_or(0), e.kv_usage.value_or(0),
                 candidate_[i] && s.slots.has_free_slot()};
  }
  for (;;) {
    const auto picked = balancers_[model].pick(loads_, prompt_key);
    if (!picked) break;
    auto& s = *states_[p[*picked]];
    loads_[*picked].available = false;    // whatever happens next, not again in this choice
    if (!s.slots.try_acquire()) continue; // taken by another worker meanwhile
    if (!s.admit(now)) {                  // half-open and its probes are out
      s.slots.release();
      continue;
    }
    return {choice::slot, p[*picked]};
  }

  // Every slot is taken: the shortest line with room.
  for (;;) {
    std::size_t best = SIZE_MAX;
    std::uint32_t best_len = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (!candidate_[i]) continue;
      auto& s = *states_[p[i]];
      if (!s.slots.capped() || !s.slots.line_has_room()) continue;
      const auto len = s.slots.read().queued;
      if (best == SIZE_MAX || len < best_len) {
        best = i;
        best_len = len;
      }
    }
    if (best == SIZE_MAX) return {choice::busy, 0};
    candidate_[best] = false;
    if (states_[p[best]]->admit(now)) return {choice::line, p[best]};
  }
}

} // namespace llmgate::upstream
