#include "limit/concurrency.hpp"

#include <algorithm>

namespace llmgate::limit {

decision concurrency::check(const params& p, const state& s, nanos, std::int64_t cost) {
  decision d;
  d.limit = p.limit;
  d.allowed = s.in_flight + cost <= p.limit;
  d.remaining = std::max<std::int64_t>(0, p.limit - s.in_flight - (d.allowed ? cost : 0));
  if (!d.allowed) d.retry_after = cost > p.limit ? k_never : k_retry_hint;
  return d;
}

void concurrency::commit(const params&, state& s, nanos, std::int64_t cost) { s.in_flight += cost; }

void concurrency::release(const params&, state& s, std::int64_t cost) {
  s.in_flight = std::max<std::int64_t>(0, s.in_flight - cost);
}

bool concurrency::idle(const params&, const state& s, nanos) { return s.in_flight == 0; }

} // namespace llmgate::limit
