// Limit decisions against a real Redis, as one gateway makes them: the admit
// script over N pipelined connections (one per worker thread), beside the
// seed's sliding-window script on the same server in the same run.
//   throughput: decisions/s with C calls in flight per connection, for S seconds
//   latency:    p50/p99 of decisions paced at half that rate
//   memory:     MEMORY USAGE of one key per algorithm after 30 admissions
// Usage: redis_bench PORT [--connections N] [--concurrency C] [--seconds S]
// (bench/redis_limits.sh starts the redis-server and runs it.)
#include "control/config.hpp"
#include "io/io.hpp"
#include "limit/redis_store.hpp"
#include "limit/rule_set.hpp"
#include "redis/client.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace llmgate;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::string_view k_seed_script =
    "redis.call('zremrangebyscore', KEYS[1], 0, ARGV[1] - ARGV[2]) "
    "local current_count = redis.call('zcard', KEYS[1]) "
    "if current_count < tonumber(ARGV[3]) then redis.call('zadd', KEYS[1], ARGV[1], ARGV[1]) "
    "redis.call('expire', KEYS[1], ARGV[2]) return 1 else return 0 end";

const std::string k_rules = R"(backends: [{name: a, url: "http://127.0.0.1:1", models: [m]}]
limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: sliding_window, limit: 1000/minute}
)";

redis::client_options local_redis(std::uint16_t port) {
  redis::client_options o;
  o.port = port;
  return o;
}

template <class T> T run(net::io_context& ioc, io::task<T> a) {
  auto f = net::co_spawn(ioc, std::move(a), net::use_future);
  ioc.restart();
  while (f.wait_for(0s) != std::future_status::ready) ioc.run_for(5ms);
  return f.get();
}

struct shared_setup {
  std::uint16_t port = 0;
  std::shared_ptr<const control::config> cfg = control::load_config(k_rules, "bench.yaml");
  limit::rule_set rules{*cfg};
  std::string sha, seed_sha;
};

// One command for one decision of the given kind, for a key among 10,000.
std::string decision(const shared_setup& s, bool seed, std::uint64_t n) {
  const auto ip = fmt::format("10.{}.{}.{}", (n % 10000) / 65536, (n % 10000) / 256 % 256, n % 256);
  if (seed) {
    const auto now = std::to_string(std::time(nullptr));
    return redis::command({"EVALSHA", s.seed_sha, "1", "seed:" + ip, now, "60", "1000"});
  }
  limit::request_facts f{
      ip, "ip", "default", "m", "/v1/chat/completions", [](std::string_view) { return std::string_view{}; }, 1};
  const auto plan = s.rules.plan(f);
  return limit::admit_command(s.sha, "bench:", s.rules, plan, fmt::format("b{}", n), 30s);
}

// Decisions/s over `connections` threads, each one connection with `concurrency` calls in flight.
double throughput(const shared_setup& s, bool seed, int connections, int concurrency, std::chrono::seconds length) {
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::vector<std::thread> threads;
  const auto until = clock_type::now() + length;
  for (int c = 0; c < connections; ++c)
    threads.emplace_back([&, c] {
      net::io_context ioc;
      redis::client client(ioc.get_executor(), local_redis(s.port));
      std::atomic<int> running{concurrency};
      for (int k = 0; k < concurrency; ++k)
        net::co_spawn(
            ioc,
            [&, k]() -> io::task<void> {
              std::uint64_t n =
                  static_cast<std::uint64_t>(c) * 1'000'000'000ull + static_cast<std::uint64_t>(k) * 1'000'000ull;
              while (clock_type::now() < until) {
                auto cmd = decision(s, seed, n++);
                auto r = co_await client.call(std::move(cmd), 1s);
                if (r && !r->is_error())
                  ++done;
                else
                  ++failed;
              }
              --running;
            },
            net::detached);
      while (running.load() > 0) ioc.run_for(10ms);
      client.close();
      ioc.run_for(10ms);
    });
  for (auto& t : threads) t.join();
  if (failed.load() > 0)
    std::fprintf(stderr, "  (%llu calls failed)\n", static_cast<unsigned long long>(failed.load()));
  return static_cast<double>(done.load()) / static_cast<double>(length.count());
}

// p50 and p99 of decisions paced at `rate` per second on one connection.
std::pair<double, double> latency(const shared_setup& s, bool seed, double rate, std::chrono::seconds length) {
  net::io_context ioc;
  redis::client client(ioc.get_executor(), local_redis(s.port));
  std::vector<double> us;
  std::mutex m;
  int in_flight = 0;
  auto pace = [&]() -> io::task<int> {
    io::timer t(ioc.get_executor());
    const auto gap = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate));
    auto next = clock_type::now();
    const auto until = next + length;
    std::uint64_t n = 0;
    while (next < until) {
      t.expires_at(next);
      co_await t.async_wait(io::k_tuple);
      next += gap;
      ++in_flight;
      net::co_spawn(
          ioc,
          [&, cmd = decision(s, seed, n++)]() mutable -> io::task<void> {
            const auto start = clock_type::now();
            auto r = co_await client.call(std::move(cmd), 1s);
            if (r && !r->is_error())
              us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
            --in_flight;
          },
          net::detached);
    }
    while (in_flight > 0) {
      t.expires_after(1ms);
      co_await t.async_wait(io::k_tuple);
    }
    co_return 0;
  };
  run(ioc, pace());
  std::sort(us.begin(), us.end());
  if (us.empty()) return {0, 0};
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: redis_bench PORT [--connections N] [--concurrency C] [--seconds S]\n");
    return 2;
  }
  shared_setup s;
  s.port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  int connections = 2, concurrency = 64;
  std::chrono::seconds length{5};
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--connections")) connections = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--concurrency")) concurrency = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seconds")) length = std::chrono::seconds(std::atoi(argv[i + 1]));
  }
  net::io_context ioc;
  redis::client c(ioc.get_executor(), local_redis(s.port));
  s.sha = run(ioc, c.call(redis::command({"SCRIPT", "LOAD", limit::admit_script()}), 5s))->text;
  s.seed_sha = run(ioc, c.call(redis::command({"SCRIPT", "LOAD", k_seed_script}), 5s))->text;

  fmt::print("| script | decisions/s ({} connections × {} in flight) | p50 µs at half that rate | p99 µs |\n",
             connections, concurrency);
  fmt::print("| --- | ---: | ---: | ---: |\n");
  for (const bool seed : {false, true}) {
    const double rate = throughput(s, seed, connections, concurrency, length);
    const auto [p50, p99] = latency(s, seed, rate / 2, length);
    fmt::print("| {} | {:.0f} | {:.0f} | {:.0f} |\n", seed ? "seed's ZSET script (wrong)" : "llmgate admit", rate, p50,
               p99);
  }

  // Memory: one key per algorithm after 30 admissions (limit 30/minute).
  fmt::print("\n| algorithm | bytes per key after 30 requests (MEMORY USAGE) |\n| --- | ---: |\n");
  for (const char* algo : {"fixed_window", "sliding_window", "sliding_log", "gcra", "token_bucket", "concurrency"}) {
    const std::string limit = std::string(algo) == "concurrency" ? "100" : "30/minute";
    auto cfg = control::load_config(fmt::format(R"(backends: [{{name: a, url: "http://127.0.0.1:1", models: [m]}}]
limits:
  rules:
    - {{name: mem-{}, key: client_ip, algorithm: {}, limit: {}}}
)",
                                                algo, algo, limit),
                                    "mem.yaml");
    limit::rule_set rules(*cfg);
    limit::request_facts f{
        "192.0.2.1", "ip", "default", "m", "/", [](std::string_view) { return std::string_view{}; }, 1};
    for (int i = 0; i < 30; ++i) {
      const auto plan = rules.plan(f);
      (void)run(ioc, c.call(limit::admit_command(s.sha, "mem:", rules, plan, fmt::format("m{}", i), 30s), 5s));
    }
    auto keys = run(ioc, c.call(redis::command({"KEYS", fmt::format("mem:*:mem-{}:*", algo)}), 5s));
    std::int64_t bytes = 0;
    if (keys)
      for (const auto& k : keys->elements)
        if (auto m = run(ioc, c.call(redis::command({"MEMORY", "USAGE", k.text}), 5s)); m) bytes += m->integer;
    fmt::print("| {} | {} |\n", algo, bytes);
  }
  // The seed's script at its best: one entry per distinct second (30 requests in 30 seconds).
  const auto now = std::time(nullptr);
  for (int i = 0; i < 30; ++i)
    (void)run(
        ioc,
        c.call(redis::command({"EVALSHA", s.seed_sha, "1", "seedmem", std::to_string(now - 29 + i), "60", "30"}), 5s));
  auto m = run(ioc, c.call(redis::command({"MEMORY", "USAGE", "seedmem"}), 5s));
  fmt::print("| seed's ZSET script (30 requests, 30 distinct seconds) | {} |\n", m ? m->integer : 0);
  c.close();
  return 0;
}
