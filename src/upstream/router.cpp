#include "upstream/router.hpp"

#include <algorithm>
#include <stdexcept>

namespace llmgate::upstream {

router::router(const control::config& cfg)
    : cfg_(cfg), pools_(cfg.models.size()), balancers_(cfg.models.size(), balancer(balance_strategy::round_robin)) {
  for (std::size_t m = 0; m < cfg.models.size(); ++m)
    for (std::size_t b = 0; b < cfg.backends.size(); ++b) {
      const auto& served = cfg.backends[b].models;
      if (std::find(served.begin(), served.end(), cfg.models[m].name) != served.end()) pools_[m].push_back(b);
    }
}

const std::vector<std::size_t>& router::pool(std::string_view model) const {
  const auto it = cfg_.model_index.find(model);
  return it == cfg_.model_index.end() ? empty_ : pools_[it->second];
}

std::size_t router::pick(std::string_view model, std::size_t attempt, std::size_t& cursor) {
  const auto it = cfg_.model_index.find(model);
  if (it == cfg_.model_index.end() || pools_[it->second].empty())
    throw std::out_of_range("router::pick: no pool for this model"); // callers check pool() first
  const auto& p = pools_[it->second];
  if (attempt == 0) {
    loads_.assign(p.size(), backend_load{}); // health and load arrive with the resilience work
    cursor = balancers_[it->second].pick(loads_).value_or(0);
  }
  return p[(cursor + attempt) % p.size()];
}

} // namespace llmgate::upstream
