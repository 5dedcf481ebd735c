#pragma once
// Which backends may serve a model, and which one an attempt goes to: the
// model's balancing strategy over the backends that are routable (health
// checks pass, breaker not open) and have a free slot; when every slot is
// taken, the shortest waiting line with room. A router is per worker (its
// balancers are not thread-safe); the backend states it reads are shared.
#include "control/config.hpp"
#include "upstream/backend_state.hpp"
#include "upstream/balancer.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace llmgate::upstream {

class router final {
public:
  router(const control::config& cfg, const std::vector<std::unique_ptr<backend_state>>& states, std::uint64_t seed = 1);

  // Backend indices (into config::backends) serving this model (by index into config::models).
  [[nodiscard]] const std::vector<std::size_t>& pool(std::size_t model) const { return pools_[model]; }

  struct choice {
    enum kind_t {
      slot, // a slot on `backend` is held (release it through backend_state::slots)
      line, // every slot is taken: wait in `backend`'s line (the breaker has admitted the call)
      busy, // routable backends exist but every slot and line is full
      down  // no backend is routable (all unhealthy, breakers open, or already tried)
    } kind = down;
    std::size_t backend = 0;      // into config::backends
    backend_state::permit permit; // the breaker's (slot, line): report the outcome with it
    bool half_opened = false;     // this choice moved the backend's breaker to half-open
  };

  // The backend for one attempt. tried: backends (by config index) this
  // request already used; a retry never goes back to them.
  [[nodiscard]] choice choose(std::size_t model, std::string_view prompt_key, std::span<const std::size_t> tried,
                              std::chrono::nanoseconds now);
  // Whether choose() could find a routable backend not yet tried (takes nothing).
  [[nodiscard]] bool has_candidate(std::size_t model, std::span<const std::size_t> tried,
                                   std::chrono::nanoseconds now) const;

private:
  // Fills loads_ for the pool p (by its members' figures) and candidate_'s availability.
  void weigh(const std::vector<std::size_t>& p);

  const std::vector<std::unique_ptr<backend_state>>& states_;
  std::vector<std::vector<std::size_t>> pools_;  // by model index
  std::vector<balancer> balancers_;              // by model index
  std::vector<backend_load> loads_;              // scratch: one entry per pool member
  std::vector<bool> candidate_;                  // scratch
  std::vector<observe::engine_figures> engines_; // scratch: the pool's engine figures, read once each
};

} // namespace llmgate::upstream
