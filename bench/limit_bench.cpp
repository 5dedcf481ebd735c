// ns per decision of each limit algorithm (one thread, and contended through
// rule_set across threads), and bytes per tracked key. Not a test:
// `make bench-limits` builds and runs it.
#include "limit/concurrency.hpp"
#include "limit/fixed_window.hpp"
#include "limit/gcra.hpp"
#include "limit/leaky_bucket.hpp"
#include "limit/rule_set.hpp"
#include "limit/sliding_log.hpp"
#include "limit/sliding_window.hpp"
#include "limit/token_bucket.hpp"

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <malloc.h>

namespace {

using namespace llmgate;
using namespace std::chrono_literals;
using limit::nanos;

// check + commit on one key, the clock advancing 1 µs per request.
template <class Algo> void decide(benchmark::State& state, typename Algo::params p) {
  typename Algo::state s{};
  nanos now{1'000'000'000};
  for (auto _ : state) {
    now += 1us;
    const auto d = Algo::check(p, s, now, 1);
    if (d.allowed) Algo::commit(p, s, now, 1);
    benchmark::DoNotOptimize(d);
  }
}

void fixed_window_decision(benchmark::State& s) { decide<limit::fixed_window>(s, {30, 60s}); }
void sliding_window_decision(benchmark::State& s) { decide<limit::sliding_window>(s, {30, 60s}); }
void sliding_log_decision(benchmark::State& s) { decide<limit::sliding_log>(s, {30, 60s}); }
void token_bucket_decision(benchmark::State& s) { decide<limit::token_bucket>(s, {{5, 1s}, 10}); }
void gcra_decision(benchmark::State& s) { decide<limit::gcra>(s, {{5, 1s}, 10}); }
void leaky_meter_decision(benchmark::State& s) { decide<limit::leaky_bucket>(s, {{5, 1s}, 10}); }
void leaky_shaper_decision(benchmark::State& s) {
  decide<limit::leaky_bucket>(s, {{5, 1s}, 10, limit::leaky_bucket::mode::shaper, 2, 3s});
}
void concurrency_decision(benchmark::State& state) {
  limit::concurrency::params p{4};
  limit::concurrency::state s;
  for (auto _ : state) {
    const auto d = limit::concurrency::check(p, s, nanos{0});
    limit::concurrency::commit(p, s, nanos{0});
    limit::concurrency::release(p, s);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(fixed_window_decision);
BENCHMARK(sliding_window_decision);
BENCHMARK(sliding_log_decision);
BENCHMARK(token_bucket_decision);
BENCHMARK(gcra_decision);
BENCHMARK(leaky_meter_decision);
BENCHMARK(leaky_shaper_decision);
BENCHMARK(concurrency_decision);

control::config one_rule(control::limit_algorithm a) {
  control::config c;
  control::rule_config r;
  r.name.push_back('r'); // not = "r": GCC 12 warns of a memcpy of 2^63 bytes there (a known false positive)
  r.algorithm = a;
  r.count = 1'000'000;
  r.period = 60s;
  r.burst = r.count;
  c.limits.rules = {r};
  return c;
}

// The whole admission through rule_set (key string, shard lock, check, commit),
// from 1, 2 and 4 threads on a shared rule set, each thread with its own keys.
void rule_set_admit(benchmark::State& state) {
  static limit::rule_set* rs = nullptr;
  static control::config cfg = one_rule(control::limit_algorithm::token_bucket);
  if (state.thread_index() == 0) rs = new limit::rule_set(cfg);
  std::vector<std::string> ips;
  for (int i = 0; i < 1024; ++i) ips.push_back(fmt::format("10.{}.{}.{}", state.thread_index(), i / 256, i % 256));
  std::size_t i = 0;
  nanos now{1'000'000'000};
  for (auto _ : state) {
    limit::request_facts f;
    f.client_ip = ips[i++ % ips.size()];
    f.tier = "default";
    now += 1us;
    benchmark::DoNotOptimize(rs->admit(f, now));
  }
  if (state.thread_index() == 0) {
    delete rs;
    rs = nullptr;
  }
}
BENCHMARK(rule_set_admit)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// Heap bytes per tracked key, 1M distinct client addresses, one rule.
void bytes_per_key(benchmark::State& state) {
  const auto algo = static_cast<control::limit_algorithm>(state.range(0));
  for (auto _ : state) {
    const auto before = mallinfo2().uordblks;
    auto cfg = one_rule(algo);
    cfg.limits.max_tracked_keys = 2'000'000;
    auto* rs = new limit::rule_set(cfg);
    constexpr int k_keys = 1'000'000;
    for (int i = 0; i < k_keys; ++i) {
      const auto ip = fmt::format("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
      limit::request_facts f;
      f.client_ip = ip;
      f.tier = "default";
      benchmark::DoNotOptimize(rs->admit(f, nanos{1'000'000'000}));
    }
    const auto after = mallinfo2().uordblks;
    state.counters["bytes_per_key"] = static_cast<double>(after - before) / k_keys;
    state.counters["keys"] = static_cast<double>(rs->tracked_keys(0));
    delete rs;
  }
}
BENCHMARK(bytes_per_key)
    ->Arg(static_cast<int>(control::limit_algorithm::fixed_window))
    ->Arg(static_cast<int>(control::limit_algorithm::sliding_window))
    ->Arg(static_cast<int>(control::limit_algorithm::token_bucket))
    ->Arg(static_cast<int>(control::limit_algorithm::gcra))
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// How decisions/s and memory grow with the keys a rule tracks: N distinct
// client addresses admitted once (bytes per key), then admissions cycling over
// all N in a scattered order (so caches see the whole table).
void key_growth(benchmark::State& state) {
  const auto keys = static_cast<std::size_t>(state.range(0));
  const auto algo = static_cast<control::limit_algorithm>(state.range(1));
  std::vector<std::string> ips;
  ips.reserve(keys);
  for (std::size_t i = 0; i < keys; ++i) ips.push_back(fmt::format("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
  auto cfg = one_rule(algo);
  cfg.limits.max_tracked_keys = keys * 2;
  const auto before = mallinfo2().uordblks;
  auto rs = std::make_unique<limit::rule_set>(cfg);
  nanos now{1'000'000'000};
  limit::request_facts f;
  f.tier = "default";
  for (const auto& ip : ips) {
    f.client_ip = ip;
    benchmark::DoNotOptimize(rs->admit(f, now));
  }
  const auto after = mallinfo2().uordblks;
  constexpr std::size_t k_stride = 7919; // a prime: visits every key once per cycle, far apart
  std::size_t i = 0;
  for (auto _ : state) {
    i = (i + k_stride) % keys;
    f.client_ip = ips[i];
    now += 1us;
    benchmark::DoNotOptimize(rs->admit(f, now));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["bytes_per_key"] = static_cast<double>(after - before) / static_cast<double>(keys);
  state.counters["keys"] = static_cast<double>(rs->tracked_keys(0));
}
BENCHMARK(key_growth)
    ->ArgsProduct({{1'000, 10'000, 100'000, 1'000'000},
                   {static_cast<int>(control::limit_algorithm::fixed_window),
                    static_cast<int>(control::limit_algorithm::gcra)}})
    ->ArgNames({"keys", "algorithm"});

} // namespace

BENCHMARK_MAIN();
