#include "limit/redis_limiter.hpp"

#include "limit/redis_store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <fmt/format.h>
#include <random>
#include <spdlog/spdlog.h>

namespace llmgate::limit {

namespace net = boost::asio;

namespace {

// Announces a replica (member, score = expiry by Redis's clock) and counts the live ones.
constexpr std::string_view k_heartbeat_lua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
)lua";

std::string random_id() {
  std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

} // namespace

redis_limiter::link::link(net::any_io_executor ex, const control::redis_config& cfg)
    : client(std::move(ex), [&] {
        redis::client_options o;
        o.host = cfg.host;
        o.port = cfg.port;
        o.username = cfg.username;
        o.password = cfg.password;
        o.database = cfg.database;
        o.connect_timeout = cfg.connect_timeout;
        for (const auto& sentinel : cfg.sentinels) o.sentinels.emplace_back(sentinel.host, sentinel.port);
        o.master_name = cfg.master_name;
        return o;
      }()) {}

redis_limiter::redis_limiter(const control::config& cfg, const rule_set& rules, observe::registry& metrics)
    : cfg_(cfg), rules_(rules), replica_id_(random_id()), replicas_(cfg.redis.replicas),
      decisions_(metrics.counter("llmgate_redis_decisions_total",
                                 "Limit decisions with limits.store: redis, by outcome (redis; local, allow or deny: "
                                 "taken by redis.on_failure because Redis did not answer in time).",
                                 {"outcome"})),
      latency_(metrics
                   .histogram("llmgate_redis_decision_seconds", "Round trip of one limit decision to Redis.", {},
                              {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1})
                   .with({})),
      up_gauge_(metrics.gauge("llmgate_redis_up", "1 while Redis answers limit decisions in time.").with({})),
      replicas_gauge_(metrics
                          .gauge("llmgate_redis_replicas",
                                 "Live gateway replicas seen through their Redis heartbeats (the divisor of the "
                                 "local fallback).")
                          .with({})) {
  up_gauge_.set(1);
  replicas_gauge_.set(cfg.redis.replicas);
}

std::unique_ptr<redis_limiter::link> redis_limiter::connect(net::any_io_executor ex) {
  auto l = std::make_unique<link>(ex, cfg_.redis);
  net::co_spawn(
      ex,
      [this, &l = *l]() -> net::awaitable<void> {
        (void)co_await ensure_script(l, l.admit_sha, admit_script(), cfg_.redis.connect_timeout);
      },
      net::detached);
  return l;
}

net::awaitable<std::optional<std::string>> redis_limiter::ensure_script(link& l, std::string& sha, std::string_view src,
                                                                        control::duration budget) {
  if (!sha.empty()) co_return sha;
  auto load = redis::command({"SCRIPT", "LOAD", src});
  auto r = co_await l.client.call(std::move(load), std::max<control::duration>(budget, std::chrono::milliseconds(1)));
  if (!r || r->type != redis::reply::kind::string) co_return std::nullopt;
  sha = r->text;
  co_return sha;
}

void redis_limiter::note_failure(std::string_view why) {
  if (up_.exchange(false)) {
    up_gauge_.set(0);
    const char* policy = cfg_.redis.on_failure == control::redis_failure_policy::local   ? "local limits"
                         : cfg_.redis.on_failure == control::redis_failure_policy::allow ? "allow"
                                                                                         : "deny";
    spdlog::warn("redis {}:{} does not answer limit decisions in time ({}): {} until it does (fleet of {})",
                 cfg_.redis.host, cfg_.redis.port, why, policy, replicas_.load());
  }
}

void redis_limiter::note_success() {
  if (!up_.exchange(true)) {
    up_gauge_.set(1);
    spdlog::info("redis {}:{} answers again: limits are global again", cfg_.redis.host, cfg_.redis.port);
  }
}

// The local rules with every limit divided by the fleet size last seen: the
// fleet as a whole stays near its limit while each replica decides alone.
rule_set& redis_limiter::fallback() {
  std::lock_guard lock(fallback_mutex_);
  const int n = std::max(1, replicas_.load());
  auto& slot = fallbacks_[n]; // one per fleet size seen, kept: admissions point into them
  if (!slot) {
    control::config copy = cfg_; // rule_set copies what it needs
    auto share = [n](std::int64_t v) { return std::max<std::int64_t>(1, (v + n - 1) / n); };
    for (auto& r : copy.limits.rules) {
      r.count = share(r.count);
      if (r.burst > 0) r.burst = share(r.burst);
      for (auto& e : r.schedule) {
        e.count = share(e.count);
        e.burst = share(e.burst);
      }
    }
    slot = std::make_unique<rule_set>(copy);
  }
  return *slot;
}

net::awaitable<redis_limiter::decided> redis_limiter::admit(link& l, const request_facts& facts, nanos now) {
  decided out;
  const auto plan = rules_.plan(facts);
  if (plan.empty()) { // no rule applies: nothing to ask
    out.from = source::open;
    co_return out;
  }
  out.member = fmt::format("{}-{}", replica_id_, next_member_.fetch_add(1));
  const auto started = std::chrono::steady_clock::now();
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) { // a second time only after NOSCRIPT (Redis restarted)
    // Within the decision's budget: a Redis that does not answer never holds a request longer.
    const auto left =
        cfg_.redis.timeout - std::chrono::duration_cast<control::duration>(std::chrono::steady_clock::now() - started);
    auto sha = co_await ensure_script(l, l.admit_sha, admit_script(), left);
    if (!sha) {
      why = "cannot load the admit script";
      break;
    }
    auto cmd = admit_command(*sha, cfg_.redis.key_prefix, rules_, plan, out.member, cfg_.redis.lease);
    const auto budget =
        cfg_.redis.timeout - std::chrono::duration_cast<control::duration>(std::chrono::steady_clock::now() - started);
    auto r = co_await l.client.call(std::move(cmd), std::max<control::duration>(budget, std::chrono::milliseconds(1)));
    if (!r) {
      why = r.error().message();
      break;
    }
    if (r->is_error() && r->text.starts_with("NOSCRIPT")) {
      l.admit_sha.clear();
      continue;
    }
    auto verdicts = decode_admit(*r, plan.size(), plan);
    if (!verdicts) {
      why = r->is_error() ? r->text : "an answer of the wrong shape";
      break;
    }
    latency_.observe(seconds(std::chrono::steady_clock::now() - started));
    decisions_.with({"redis"}).inc();
    note_success();
    out.a = rules_.assemble(plan, *verdicts);
    co_return out;
  }
  note_failure(why);
  // The admit may still run in Redis after it timed out here: whatever
  // leases it took under this request's name are removed behind it (on the
  // same connection, so after it; ZREM of an absent lease is harmless).
  release_unanswered(l, plan, out.member);
  switch (cfg_.redis.on_failure) {
  case control::redis_failure_policy::local:
    decisions_.with({"local"}).inc();
    out.from = source::local_fallback;
    out.fallback = &fallback();
    out.a = out.fallback->admit(facts, now);
    break;
  case control::redis_failure_policy::allow:
    decisions_.with({"allow"}).inc();
    out.from = source::open;
    break;
  case control::redis_failure_policy::deny:
    decisions_.with({"deny"}).inc();
    out.from = source::open;
    out.unavailable = true;
    break;
  }
  co_return out;
}

void redis_limiter::settle_tokens(link& l, const decided& d, std::int64_t actual) {
  if (d.from == source::local_fallback) {
    d.fallback->settle_tokens(d.a, actual, std::chrono::steady_clock::now().time_since_epoch());
    return;
  }
  if (d.from != source::redis || !d.a.allowed) return;
  const bool corrects = std::any_of(d.a.holds.begin(), d.a.holds.end(), [&](const rule_hold& h) {
    return rules_.rule(h.rule).cost_tokens && h.cost > 0 && h.cost != actual;
  });
  if (!corrects) return; // no token rule, or the estimate was exact
  net::co_spawn(
      l.client.executor(),
      [this, &l, a = d.a, member = d.member, actual]() -> net::awaitable<void> {
        for (int attempt = 0; attempt < 2; ++attempt) {
          auto sha = co_await ensure_script(l, l.adjust_sha, adjust_script(), cfg_.redis.connect_timeout);
          if (!sha) co_return;
          auto cmd = adjust_command(*sha, cfg_.redis.key_prefix, rules_, a, member, actual);
          auto r = co_await l.client.call(std::move(cmd), cfg_.redis.connect_timeout);
          if (!(r && r->is_error() && r->text.starts_with("NOSCRIPT"))) co_return;
          l.adjust_sha.clear();
        }
      },
      net::detached);
}

void redis_limiter::keep_leases(link& l, decided& d) {
  if (d.from != source::redis || !d.a.allowed) return;
  if (!holds_leases(rules_, d.a)) return;
  d.renewing = std::make_shared<bool>(true);
  net::co_spawn(
      l.client.executor(),
      [this, &l, flag = d.renewing, a = d.a, member = d.member]() -> net::awaitable<void> {
        net::steady_timer timer(l.client.executor());
        for (;;) {
          timer.expires_after(cfg_.redis.lease / 3);
          co_await timer.async_wait(net::as_tuple(net::use_awaitable));
          if (!*flag) co_return;
          auto sha = co_await ensure_script(l, l.renew_sha, renew_script(), cfg_.redis.connect_timeout);
          if (!sha) continue;
          auto cmd = renew_command(*sha, cfg_.redis.key_prefix, rules_, a, member, cfg_.redis.lease);
          auto r = co_await l.client.call(std::move(cmd), cfg_.redis.connect_timeout);
          if (r && r->is_error() && r->text.starts_with("NOSCRIPT")) l.renew_sha.clear();
        }
      },
      net::detached);
}

void redis_limiter::release(link& l, const decided& d) {
  if (d.renewing) *d.renewing = false;
  if (!d.a.allowed) return;
  if (d.from == source::local_fallback) {
    d.fallback->release(d.a);
    return;
  }
  if (d.from != source::redis) return;
  const bool leases = std::any_of(d.a.holds.begin(), d.a.holds.end(), [&](const rule_hold& h) {
    return rules_.rule(h.rule).algorithm == control::limit_algorithm::concurrency && h.cost > 0;
  });
  if (!leases) return;
  send_release(l, d.a, d.member);
}

void redis_limiter::release_unanswered(link& l, const std::vector<planned_rule>& plan, const std::string& member) {
  admission taken;
  for (std::size_t i = 0; i < plan.size(); ++i)
    if (rules_.rule(plan[i].rule).algorithm == control::limit_algorithm::concurrency)
      taken.holds.push_back({plan[i].rule, plan[i].key, 1, {}, plan[i].variant, 0, i});
  if (!taken.holds.empty()) send_release(l, taken, member);
}

// Fire and forget on the worker's loop: a lease that cannot be removed expires after redis.lease.
void redis_limiter::send_release(link& l, const admission& a, const std::string& member) {
  net::co_spawn(
      l.client.executor(),
      [this, &l, a, member]() -> net::awaitable<void> {
        for (int attempt = 0; attempt < 2; ++attempt) { // again after NOSCRIPT (Redis restarted)
          auto sha = co_await ensure_script(l, l.release_sha, release_script(), cfg_.redis.connect_timeout);
          if (!sha) co_return;
          auto cmd = release_command(*sha, cfg_.redis.key_prefix, rules_, a, member);
          if (cmd.empty()) co_return;
          auto r = co_await l.client.call(std::move(cmd), cfg_.redis.connect_timeout);
          if (!(r && r->is_error() && r->text.starts_with("NOSCRIPT"))) co_return;
          l.release_sha.clear();
        }
      },
      net::detached);
}

net::awaitable<void> redis_limiter::heartbeat(link& l, const std::atomic<bool>& stop) {
  net::steady_timer timer(co_await net::this_coro::executor);
  const auto ttl =
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.redis.heartbeat * 3).count());
  const auto key = cfg_.redis.key_prefix + "replicas";
  while (!stop.load()) {
    auto cmd = redis::command({"EVAL", k_heartbeat_lua, "1", key, replica_id_, ttl});
    auto r = co_await l.client.call(std::move(cmd), cfg_.redis.connect_timeout);
    if (r && r->type == redis::reply::kind::integer && r->integer > 0) {
      replicas_.store(static_cast<int>(r->integer));
      replicas_gauge_.set(static_cast<double>(r->integer));
    }
    timer.expires_after(cfg_.redis.heartbeat);
    auto [ec] = co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    if (ec) co_return;
  }
}

} // namespace llmgate::limit
