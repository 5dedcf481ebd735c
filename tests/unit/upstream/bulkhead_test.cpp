#include "upstream/bulkhead.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <gtest/gtest.h>
#include <memory>
#include <thread>
#include <vector>

namespace llmgate::upstream {
namespace {

using outcome = bulkhead::outcome;

// A waiter whose wake records its id in `woken`, in the order slots were handed over.
std::shared_ptr<bulkhead::waiter> waiter_for(int id, std::vector<int>& woken) {
  auto w = std::make_shared<bulkhead::waiter>();
  w->wake = [id, &woken] { woken.push_back(id); };
  return w;
}

TEST(bulkhead, free_slots_then_a_line_then_full) {
  bulkhead b{2, 2};
  std::vector<int> woken;
  EXPECT_TRUE(b.capped());
  EXPECT_EQ(b.acquire(waiter_for(0, woken)), outcome::acquired);
  EXPECT_TRUE(b.has_free_slot());
  EXPECT_EQ(b.acquire(waiter_for(1, woken)), outcome::acquired);
  EXPECT_FALSE(b.has_free_slot());
  EXPECT_TRUE(b.line_has_room());

  const auto first = waiter_for(2, woken);
  const auto second = waiter_for(3, woken);
  EXPECT_EQ(b.acquire(first), outcome::queued);
  EXPECT_EQ(b.acquire(second), outcome::queued);
  EXPECT_FALSE(b.line_has_room());
  EXPECT_EQ(b.acquire(waiter_for(4, woken)), outcome::full);
  EXPECT_EQ(b.acquire(waiter_for(5, woken)), outcome::full);

  const auto f = b.read();
  EXPECT_EQ(f.in_flight, 2u);
  EXPECT_EQ(f.queued, 2u);
  EXPECT_EQ(f.queued_total, 2u);
  EXPECT_EQ(f.rejected_total, 2u);
  EXPECT_TRUE(woken.empty()); // nobody got a slot yet
}

TEST(bulkhead, try_acquire_takes_a_free_slot_or_nothing) {
  bulkhead b{1, 4};
  EXPECT_TRUE(b.try_acquire());
  EXPECT_FALSE(b.try_acquire());
  const auto f = b.read();
  EXPECT_EQ(f.in_flight, 1u);
  EXPECT_EQ(f.queued, 0u); // never queues
  EXPECT_EQ(f.queued_total, 0u);
  b.release();
  EXPECT_TRUE(b.try_acquire());
}

TEST(bulkhead, try_acquire_does_not_jump_the_line) {
  bulkhead b{1, 2};
  std::vector<int> woken;
  ASSERT_TRUE(b.try_acquire());
  const auto w = waiter_for(1, woken);
  ASSERT_EQ(b.acquire(w), outcome::queued);
  b.release(); // the slot goes to the waiter, not to whoever asks next
  EXPECT_EQ(woken, std::vector<int>{1});
  EXPECT_FALSE(b.try_acquire());
  EXPECT_TRUE(b.leave(w));
  b.release();
  EXPECT_TRUE(b.try_acquire());
}

TEST(bulkhead, release_hands_the_slot_to_the_first_waiter) {
  bulkhead b{1, 3};
  std::vector<int> woken;
  ASSERT_EQ(b.acquire(waiter_for(0, woken)), outcome::acquired);
  const auto w1 = waiter_for(1, woken);
  const auto w2 = waiter_for(2, woken);
  const auto w3 = waiter_for(3, woken);
  ASSERT_EQ(b.acquire(w1), outcome::queued);
  ASSERT_EQ(b.acquire(w2), outcome::queued);
  ASSERT_EQ(b.acquire(w3), outcome::queued);

  b.release();
  EXPECT_EQ(woken, std::vector<int>{1});
  auto f = b.read();
  EXPECT_EQ(f.in_flight, 1u); // passed on, not freed
  EXPECT_EQ(f.queued, 2u);
  EXPECT_TRUE(b.leave(w1)); // the slot was handed over first: w1 holds it

  b.release();
  EXPECT_EQ(woken, (std::vector<int>{1, 2}));
  EXPECT_TRUE(b.leave(w2));
  b.release();
  EXPECT_EQ(woken, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(b.leave(w3));

  b.release(); // nobody waits: the slot is free
  f = b.read();
  EXPECT_EQ(f.in_flight, 0u);
  EXPECT_EQ(f.queued, 0u);
  EXPECT_TRUE(b.has_free_slot());
  EXPECT_EQ(woken.size(), 3u);
}

TEST(bulkhead, wake_runs_outside_the_lock) {
  bulkhead b{1, 1};
  ASSERT_TRUE(b.try_acquire());
  auto w = std::make_shared<bulkhead::waiter>();
  bool handed_over = false;
  // Calling back into the bulkhead from wake would deadlock if wake ran under its mutex.
  w->wake = [&] { handed_over = b.leave(w); };
  ASSERT_EQ(b.acquire(w), outcome::queued);
  b.release();
  EXPECT_TRUE(handed_over);
  EXPECT_EQ(b.read().in_flight, 1u);
}

TEST(bulkhead, leave_takes_a_waiter_out_of_the_line) {
  bulkhead b{1, 2};
  std::vector<int> woken;
  ASSERT_TRUE(b.try_acquire());
  const auto w1 = waiter_for(1, woken);
  const auto w2 = waiter_for(2, woken);
  ASSERT_EQ(b.acquire(w1), outcome::queued);
  ASSERT_EQ(b.acquire(w2), outcome::queued);
  EXPECT_FALSE(b.line_has_room());

  EXPECT_FALSE(b.leave(w1)); // timed out: no slot was handed over
  EXPECT_EQ(b.read().queued, 1u);
  EXPECT_TRUE(b.line_has_room());

  b.release(); // the slot skips w1, who left
  EXPECT_EQ(woken, std::vector<int>{2});
  EXPECT_TRUE(b.leave(w2));
  EXPECT_FALSE(b.leave(w1)); // leaving twice changes nothing
  b.release();
  EXPECT_EQ(b.read().in_flight, 0u);
  EXPECT_EQ(woken, std::vector<int>{2});
}

TEST(bulkhead, no_line_means_full_at_once) {
  bulkhead b{1, 0};
  std::vector<int> woken;
  ASSERT_EQ(b.acquire(waiter_for(0, woken)), outcome::acquired);
  EXPECT_FALSE(b.line_has_room());
  EXPECT_EQ(b.acquire(waiter_for(1, woken)), outcome::full);
  const auto f = b.read();
  EXPECT_EQ(f.rejected_total, 1u);
  EXPECT_EQ(f.queued_total, 0u);
}

TEST(bulkhead, uncapped_never_queues) {
  bulkhead b{0, 0};
  std::vector<int> woken;
  EXPECT_FALSE(b.capped());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b.acquire(waiter_for(i, woken)), outcome::acquired) << i;
  EXPECT_TRUE(b.try_acquire());
  EXPECT_TRUE(b.has_free_slot());
  auto f = b.read();
  EXPECT_EQ(f.in_flight, 101u);
  EXPECT_EQ(f.queued, 0u);
  EXPECT_EQ(f.queued_total, 0u);
  EXPECT_EQ(f.rejected_total, 0u);
  for (int i = 0; i < 101; ++i) b.release();
  EXPECT_EQ(b.read().in_flight, 0u);
  EXPECT_TRUE(woken.empty());
}

TEST(bulkhead, a_release_with_nothing_in_flight_does_not_underflow) {
  bulkhead b{2, 2};
  b.release();
  EXPECT_EQ(b.read().in_flight, 0u);
  EXPECT_TRUE(b.try_acquire());
  EXPECT_TRUE(b.try_acquire());
  EXPECT_FALSE(b.try_acquire());
}

TEST(bulkhead, peaks_are_kept_after_the_load_is_gone) {
  bulkhead b{2, 3};
  std::vector<int> woken;
  std::vector<std::shared_ptr<bulkhead::waiter>> line;
  ASSERT_TRUE(b.try_acquire());
  ASSERT_TRUE(b.try_acquire());
  for (int i = 0; i < 3; ++i) {
    line.push_back(waiter_for(i, woken));
    ASSERT_EQ(b.acquire(line.back()), outcome::queued);
  }
  for (const auto& w : line) {
    b.release();
    ASSERT_TRUE(b.leave(w));
  }
  b.release();
  b.release();

  const auto f = b.read();
  EXPECT_EQ(f.in_flight, 0u);
  EXPECT_EQ(f.queued, 0u);
  EXPECT_EQ(f.peak_in_flight, 2u);
  EXPECT_EQ(f.peak_queued, 3u);
  EXPECT_EQ(f.queued_total, 3u);
  EXPECT_EQ(woken, (std::vector<int>{0, 1, 2}));
}

TEST(bulkhead, threads_never_exceed_the_cap) {
  constexpr std::uint32_t k_cap = 3;
  constexpr int k_threads = 4;
  constexpr int k_cycles = 2000;
  bulkhead b{k_cap, 2};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_seen{0};
  std::atomic<int> holds{0};

  auto hold = [&] {
    const int now = in_flight.fetch_add(1) + 1;
    int seen = max_seen.load();
    while (now > seen && !max_seen.compare_exchange_weak(seen, now)) {
    }
    holds.fetch_add(1);
    std::this_thread::yield();
    in_flight.fetch_sub(1);
    b.release();
  };

  auto worker = [&] {
    for (int i = 0; i < k_cycles; ++i) {
      if (i % 3 == 0) { // a slot now or nothing
        if (b.try_acquire()) hold();
        continue;
      }
      // The flag is shared with wake, which may run on another thread after leave() returned.
      auto woken = std::make_shared<std::atomic<bool>>(false);
      auto w = std::make_shared<bulkhead::waiter>();
      w->wake = [woken] { woken->store(true); };
      auto got = b.acquire(w);
      while (got == outcome::full) {
        std::this_thread::yield();
        got = b.acquire(w);
      }
      if (got == outcome::acquired) {
        hold();
      } else if (i % 3 == 1) { // wait for the hand-over
        while (!woken->load()) std::this_thread::yield();
        if (b.leave(w))
          hold();
        else
          ADD_FAILURE() << "woken but no slot";
      } else if (b.leave(w)) { // give up at once; a slot may have been handed over first
        hold();
      }
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();

  EXPECT_LE(max_seen.load(), static_cast<int>(k_cap));
  EXPECT_GE(max_seen.load(), 1);
  EXPECT_GT(holds.load(), 0);
  EXPECT_EQ(in_flight.load(), 0);
  const auto f = b.read();
  EXPECT_EQ(f.in_flight, 0u);
  EXPECT_EQ(f.queued, 0u);
  EXPECT_LE(f.peak_in_flight, k_cap);
}

} // namespace
} // namespace llmgate::upstream
