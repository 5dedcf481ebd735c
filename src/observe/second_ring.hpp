#pragma once
// A ring of one-second slots: the slot of second s is ring[s % size], and a
// slot still holding an older second is started afresh when it is written.
// A window of the last `size` seconds is read by skipping the slots whose
// second is outside it. Slot: a type with an `std::int64_t second` member,
// made afresh by Slot{second}. degrade::window_stats and the retry budget
// count in rings like this, one per worker (observe::per_worker).
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace llmgate::observe {

[[nodiscard]] inline std::int64_t second_of(std::chrono::nanoseconds t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t).count();
}

// The slot of `now`'s second, afresh if it held a second gone by.
template <class Ring> [[nodiscard]] auto& slot_at(Ring& ring, std::chrono::nanoseconds now) {
  const auto second = second_of(now);
  auto& s = ring[static_cast<std::size_t>(second) % ring.size()];
  if (s.second != second) s = typename Ring::value_type{second};
  return s;
}

// Whether a slot counts in the window of the ring's seconds that ends at `now`.
template <class Ring, class Slot>
[[nodiscard]] bool in_window(const Ring& ring, const Slot& s, std::chrono::nanoseconds now) {
  const auto second = second_of(now);
  return s.second > second - static_cast<std::int64_t>(ring.size()) && s.second <= second;
}

} // namespace llmgate::observe
