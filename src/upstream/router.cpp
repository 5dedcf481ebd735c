#include "upstream/router.hpp"

#include <algorithm>
#include <cmath>

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

bool router::has_candidate(std::size_t model, std::span<const std::size_t> tried, std::chrono::nanoseconds now) const {
  for (const auto b : pools_[model])
    if (std::find(tried.begin(), tried.end(), b) == tried.end() && states_[b]->routable(now)) return true;
  return false;
}

void router::weigh(const std::vector<std::size_t>& p) {
  // least_busy reads the engines' own queues. A backend whose figures are
  // missing (scrape failing: often overload) counts as the busiest seen, and
  // requests sent since its last scrape count as waiting, so a stale zero
  // does not draw every request until the next scrape.
  engines_.clear();
  double worst_waiting = 0;
  for (const auto b : p) {
    engines_.push_back(states_[b]->engine());
    if (const auto w = engines_.back().waiting) worst_waiting = std::max(worst_waiting, *w);
  }
  for (std::size_t i = 0; i < p.size(); ++i) {
    auto& s = *states_[p[i]];
    const auto f = s.slots.read();
    const auto& e = engines_[i];
    const double waiting =
        e.waiting ? *e.waiting + static_cast<double>(s.sent_since_scrape()) : worst_waiting; // none scraped: all 0
    // KV use in 5% steps: finer differences are noise, and the tie goes to requests in flight.
    const double kv = std::floor(e.kv_usage.value_or(1.0) * 20) / 20;
    loads_[i] = {s.config().weight, static_cast<int>(f.in_flight), waiting, kv,
                 candidate_[i] && s.slots.has_free_slot()};
  }
}

router::choice router::choose(std::size_t model, std::string_view prompt_key, std::span<const std::size_t> tried,
                              std::chrono::nanoseconds now) {
  const auto& p = pools_[model];
  candidate_.assign(p.size(), false);
  std::size_t candidates = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    // A retry goes to another backend: the one that just failed or hung is not asked twice.
    if (!states_[p[i]]->routable(now) || std::find(tried.begin(), tried.end(), p[i]) != tried.end()) continue;
    candidate_[i] = true;
    ++candidates;
  }
  if (candidates == 0) return {choice::down, 0, {}, false};

  // First choice: the strategy's pick among candidates with a free slot.
  // A lone candidate is not weighed: its slot is tried at once (its figures
  // are four reads under its locks, about a third of the choice's
  // instructions, and would change nothing).
  loads_.assign(p.size(), backend_load{});
  if (candidates == 1) {
    for (std::size_t i = 0; i < p.size(); ++i)
      loads_[i] = {states_[p[i]]->config().weight, 0, 0, 0, static_cast<bool>(candidate_[i])};
  } else {
    weigh(p);
  }
  int refused_by_breaker = 0, offered = 0;
  for (;;) {
    const auto picked = balancers_[model].pick(loads_, prompt_key);
    if (!picked) break;
    auto& s = *states_[p[*picked]];
    loads_[*picked].available = false;    // whatever happens next, not again in this choice
    if (!s.slots.try_acquire()) continue; // taken by another worker meanwhile
    ++offered;
    bool half_opened = false;
    const auto permit = s.admit(now, &half_opened);
    if (!permit) { // half-open and its probes are out
      s.slots.release();
      ++refused_by_breaker;
      continue;
    }
    s.count_sent();
    return {choice::slot, p[*picked], *permit, half_opened};
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
    if (best == SIZE_MAX) break;
    candidate_[best] = false;
    ++offered;
    bool half_opened = false;
    if (const auto permit = states_[p[best]]->admit(now, &half_opened)) {
      states_[p[best]]->count_sent();
      return {choice::line, p[best], *permit, half_opened};
    }
    ++refused_by_breaker;
  }
  // Only half-open breakers with their probes out said no: nothing is available, rather than full.
  if (offered > 0 && refused_by_breaker == offered) return {choice::down, 0, {}, false};
  return {choice::busy, 0, {}, false};
}

} // namespace llmgate::upstream
