#include "limit/redis_limiter.hpp"
#include "io/io.hpp"

#include "limit/redis_store.hpp"
#include "redis/slot.hpp"
#include "tls/tls.hpp"

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

redis_limiter::link::link(io::executor ex, const control::redis_config& cfg, std::shared_ptr<const tls::context> tls)
    : redis(
          std::move(ex),
          [&] {
            redis::client_options o;
            o.host = cfg.host;
            o.port = cfg.port;
            o.username = cfg.username;
            o.password = cfg.password;
            o.database = cfg.database;
            o.connect_timeout = cfg.connect_timeout;
            for (const auto& sentinel : cfg.sentinels) o.sentinels.emplace_back(sentinel.host, sentinel.port);
            o.master_name = cfg.master_name;
            o.tls = std::move(tls);
            o.tls_server_name = cfg.tls.server_name;
            return o;
          }(),
          [&] {
            std::vector<std::pair<std::string, std::uint16_t>> seeds;
            for (const auto& node : cfg.cluster) seeds.emplace_back(node.host, node.port);
            return seeds;
          }()) {}

redis_limiter::redis_limiter(const control::config& cfg, observe::registry& metrics)
    : cfg_(cfg),
      tls_(cfg.redis.tls.enabled ? std::make_shared<const tls::context>(tls::context::client(cfg.redis.tls)) : nullptr),
      replica_id_(random_id()), replicas_(cfg.redis.replicas),
      decisions_(metrics.counter("llmgate_redis_decisions_total",
                                 "Limit decisions with limits.store: redis, by outcome (redis; local, allow or deny: "
                                 "taken by redis.on_failure because Redis did not answer in time).",
                                 {"outcome"})),
      rollbacks_(metrics
                     .counter("llmgate_redis_rollbacks_total",
                              "Requests whose rules span Redis Cluster slots, refused in one slot after others had "
                              "counted them: those counts were taken back.")
                     .with({})),
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

namespace {

std::string_view source_of(redis_limiter::script s) {
  switch (s) {
  case redis_limiter::script::admit: return admit_script();
  case redis_limiter::script::release: return release_script();
  case redis_limiter::script::renew: return renew_script();
  case redis_limiter::script::adjust: return adjust_script();
  case redis_limiter::script::undo: return undo_script();
  }
  return {};
}

std::vector<planned_rule> pick(const std::vector<planned_rule>& plan, const std::vector<std::size_t>& which) {
  std::vector<planned_rule> out;
  for (const auto i : which) out.push_back(plan[i]);
  return out;
}

// An EVALSHA command as EVAL (its SHA argument then holds the script's source).
std::string as_eval(std::string cmd) {
  constexpr std::string_view evalsha = "$7\r\nEVALSHA\r\n";
  const auto at = cmd.find("\r\n");
  if (at != std::string::npos && cmd.compare(at + 2, evalsha.size(), evalsha) == 0)
    cmd.replace(at + 2, evalsha.size(), "$4\r\nEVAL\r\n");
  return cmd;
}

control::duration until(std::chrono::steady_clock::time_point deadline) {
  return std::max<control::duration>(
      std::chrono::duration_cast<control::duration>(deadline - std::chrono::steady_clock::now()),
      std::chrono::milliseconds(1));
}

// Runs the calls at once on this loop and waits for every one (each ends by its own deadline).
io::task<std::vector<redis_limiter::answer>>
all_of(io::executor ex, std::vector<std::function<io::task<redis_limiter::answer>()>> calls) {
  struct state {
    explicit state(io::executor e, std::size_t n) : out(n), left(n), done(std::move(e), io::timer::time_point::max()) {}
    std::vector<redis_limiter::answer> out;
    std::size_t left;
    io::timer done;
  };
  auto st = std::make_shared<state>(ex, calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i)
    net::co_spawn(
        ex,
        [st, i, f = std::move(calls[i])]() -> io::task<void> {
          st->out[i] = co_await f();
          if (--st->left == 0) st->done.cancel();
        },
        net::detached);
  while (st->left > 0) co_await st->done.async_wait(io::k_tuple);
  co_return std::move(st->out);
}

} // namespace

std::unique_ptr<redis_limiter::link> redis_limiter::connect(io::executor ex) {
  auto l = std::make_unique<link>(ex, cfg_.redis, tls_);
  // The admit script loaded at once, so the first request does not pay for
  // it (on a cluster, on one master; the others load it at their first call).
  net::co_spawn(
      ex,
      [this, &l = *l]() -> io::task<void> {
        (void)co_await eval(
            l, script::admit, 0, [](std::string_view) { return std::string(); },
            clock::now() + cfg_.redis.connect_timeout);
      },
      net::detached);
  return l;
}

io::task<redis_limiter::answer> redis_limiter::eval(link& l, script s, std::uint16_t slot,
                                                    std::function<std::string(std::string_view)> build,
                                                    clock::time_point deadline) {
  auto& sha = l.shas[static_cast<std::size_t>(s)];
  if (sha.empty()) {
    auto load = redis::command({"SCRIPT", "LOAD", source_of(s)});
    auto r = co_await l.redis.call(slot, std::move(load), until(deadline));
    if (!r) co_return answer{std::nullopt, "cannot load a script: " + r.error().message()};
    if (r->type != redis::reply::kind::string) co_return answer{std::nullopt, "cannot load a script: " + r->text};
    sha = r->text;
  }
  auto cmd = build(sha);
  if (cmd.empty()) co_return answer{}; // nothing to send
  auto r = co_await l.redis.call(slot, std::move(cmd), until(deadline));
  if (!r) co_return answer{std::nullopt, r.error().message()};
  if (r->is_error() && r->text.starts_with("NOSCRIPT")) {
    // The node that answered has not got it (it restarted, it is a new
    // master, or the target of a slot being moved — which SCRIPT LOAD routed
    // by slot would not reach): EVAL carries the source, and leaves it cached
    // there for the next EVALSHA.
    auto full = as_eval(build(source_of(s)));
    r = co_await l.redis.call(slot, std::move(full), until(deadline));
    if (!r) co_return answer{std::nullopt, r.error().message()};
  }
  co_return answer{std::move(*r), {}};
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
rule_set& redis_limiter::fallback(const std::shared_ptr<const rule_set>& source) {
  std::lock_guard lock(fallback_mutex_);
  const auto& rules = *source;
  const int n = std::max(1, replicas_.load());
  auto& entry = fallbacks_[{&rules, n}];
  entry.first = source; // held, so no later rule set can take its address
  auto& slot = entry.second;
  if (!slot) {
    control::config copy; // rule_set copies what it needs
    copy.limits.max_tracked_keys = cfg_.limits.max_tracked_keys;
    auto share = [n](std::int64_t v) { return std::max<std::int64_t>(1, (v + n - 1) / n); };
    for (std::size_t i = 0; i < rules.size(); ++i) {
      auto r = rules.rule(i);
      r.count = share(r.count);
      if (r.burst > 0) r.burst = share(r.burst);
      for (auto& e : r.schedule) {
        e.count = share(e.count);
        e.burst = share(e.burst);
      }
      copy.limits.rules.push_back(std::move(r));
    }
    auto& latest = latest_fallback_[n];
    slot = std::make_unique<rule_set>(copy, latest); // what this fleet size counted carries over
    latest = slot.get();
  }
  return *slot;
}

io::task<redis_limiter::answer> redis_limiter::admit_slot(link& l, const rule_set& rules, std::vector<planned_rule> sub,
                                                          std::uint16_t slot, std::string member,
                                                          clock::time_point deadline) {
  co_return co_await eval(
      l, script::admit, slot,
      [&](std::string_view sha) {
        return admit_command(sha, cfg_.redis.key_prefix, rules, sub, member, cfg_.redis.lease);
      },
      deadline);
}

std::vector<slot_group> redis_limiter::slot_groups(const link& l, const rule_set& rules,
                                                   const std::vector<planned_rule>& plan) const {
  if (l.redis.is_cluster()) return group_by_slot(cfg_.redis.key_prefix, rules, plan);
  std::vector<slot_group> one{{0, {}}};
  for (std::size_t i = 0; i < plan.size(); ++i) one.front().rules.push_back(i);
  return one;
}

io::task<std::vector<redis_limiter::answer>>
redis_limiter::admit_all(link& l, const std::shared_ptr<const rule_set>& rules, const std::vector<slot_group>& groups,
                         const std::vector<std::vector<planned_rule>>& subs, const std::string& member,
                         clock::time_point deadline) {
  if (groups.size() == 1) {
    std::vector<answer> one;
    one.push_back(co_await admit_slot(l, *rules, subs.front(), groups.front().slot, member, deadline));
    co_return one;
  }
  std::vector<std::function<io::task<answer>()>> calls;
  for (std::size_t g = 0; g < groups.size(); ++g)
    calls.emplace_back([this, &l, rules, sub = subs[g], slot = groups[g].slot, member, deadline] {
      return admit_slot(l, *rules, sub, slot, member, deadline);
    });
  co_return co_await all_of(l.redis.executor(), std::move(calls));
}

io::task<redis_limiter::decided> redis_limiter::admit(link& l, std::shared_ptr<const rule_set> rules,
                                                      const request_facts& facts, nanos now) {
  decided out;
  out.rules = rules;
  const auto plan = rules->plan(facts);
  if (plan.empty()) { // no rule applies: nothing to ask
    out.from = source::open;
    co_return out;
  }
  out.member = fmt::format("{}-{}", replica_id_, next_member_.fetch_add(1));
  const auto started = clock::now();
  // Within the decision's budget: a Redis that does not answer never holds a request longer.
  const auto deadline = started + cfg_.redis.timeout;

  // One call per slot (one in all on a single server), all at once.
  const auto groups = slot_groups(l, *rules, plan);
  std::vector<std::vector<planned_rule>> subs;
  for (const auto& g : groups) subs.push_back(pick(plan, g.rules));
  const auto answers = co_await admit_all(l, rules, groups, subs, out.member, deadline);
  co_return conclude(l, facts, now, std::move(out), plan, groups, subs, answers, started);
}

// The answers of an admit's calls turned into its decision (out of the
// coroutine: g++ 12 warns falsely about code this size inside one).
redis_limiter::decided redis_limiter::conclude(link& l, const request_facts& facts, nanos now, decided out,
                                               const std::vector<planned_rule>& plan,
                                               const std::vector<slot_group>& groups,
                                               const std::vector<std::vector<planned_rule>>& subs,
                                               const std::vector<answer>& answers, clock::time_point started) {
  std::vector<decision> verdicts(plan.size());
  std::vector<std::optional<std::vector<decision>>> per_slot(groups.size());
  std::string why;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& r = answers[g].reply;
    if (r) per_slot[g] = decode_admit(*r, subs[g].size(), subs[g]);
    if (!per_slot[g]) {
      why = !r ? answers[g].why : r->is_error() ? r->text : "an answer of the wrong shape";
      continue;
    }
    for (std::size_t k = 0; k < groups[g].rules.size(); ++k) verdicts[groups[g].rules[k]] = (*per_slot[g])[k];
  }
  // What one slot's call committed (the script's first element: all its rules passed), when at (its second).
  auto committed = [&](std::size_t g) { return per_slot[g] && answers[g].reply->elements[0].integer == 1; };
  auto take_back = [&] {
    for (std::size_t g = 0; g < groups.size(); ++g)
      if (committed(g))
        send_undo(l, out.rules, subs[g], *per_slot[g], groups[g].slot, out.member,
                  answers[g].reply->elements[1].integer);
  };

  // A rule refused in a slot that answered: the request is refused whatever
  // the other slots did (as one server would have), not left to on_failure.
  bool refused = false;
  for (std::size_t i = 0; i < plan.size(); ++i)
    for (std::size_t g = 0; g < groups.size() && !refused; ++g)
      if (per_slot[g] && std::find(groups[g].rules.begin(), groups[g].rules.end(), i) != groups[g].rules.end() &&
          !verdicts[i].allowed && !out.rules->rule(plan[i].rule).shadow)
        refused = true;
  if (!why.empty() && refused) {
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (per_slot[g]) continue;
      release_unanswered(l, out.rules, subs[g], out.member);
      for (const auto i : groups[g].rules) verdicts[i].allowed = true; // unknown: the refusal decides
    }
    why.clear();
  }

  if (why.empty()) {
    latency_.observe(seconds(clock::now() - started));
    decisions_.with({"redis"}).inc();
    note_success();
    out.a = out.rules->assemble(plan, verdicts);
    bool counted = false;
    for (std::size_t g = 0; g < groups.size(); ++g) counted = counted || committed(g);
    if (!out.a.allowed && counted) { // refused in one slot: the others' counts are taken back
      rollbacks_.inc();
      take_back();
    }
    return out;
  }

  note_failure(why);
  take_back();
  // An admit may still run in Redis after it timed out here: whatever
  // leases it took under this request's name are removed behind it (on the
  // same connection, so after it; ZREM of an absent lease is harmless).
  for (std::size_t g = 0; g < groups.size(); ++g)
    if (!per_slot[g]) release_unanswered(l, out.rules, subs[g], out.member);
  switch (cfg_.redis.on_failure) {
  case control::redis_failure_policy::local:
    decisions_.with({"local"}).inc();
    out.from = source::local_fallback;
    out.fallback = &fallback(out.rules);
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
  return out;
}

std::vector<std::pair<std::uint16_t, admission>> redis_limiter::by_slot(const link& l, const rule_set& rules,
                                                                        const admission& a) const {
  if (!l.redis.is_cluster()) return {{0, a}};
  return split_by_slot(cfg_.redis.key_prefix, rules, a);
}

void redis_limiter::send_by_slot(link& l, const rule_set& rules, script s, const admission& a,
                                 std::function<std::string(std::string_view, const admission&)> build) {
  for (auto& [slot, part] : by_slot(l, rules, a))
    net::co_spawn(
        l.redis.executor(),
        [this, &l, s, slot = slot, part = std::move(part), build]() -> io::task<void> {
          (void)co_await eval(
              l, s, slot, [&](std::string_view sha) { return build(sha, part); },
              clock::now() + cfg_.redis.connect_timeout);
        },
        net::detached);
}

void redis_limiter::settle_tokens(link& l, const decided& d, std::int64_t actual) {
  if (d.from == source::local_fallback) {
    d.fallback->settle_tokens(d.a, actual, std::chrono::steady_clock::now().time_since_epoch());
    return;
  }
  if (d.from != source::redis || !d.a.allowed) return;
  const bool corrects = std::any_of(d.a.holds.begin(), d.a.holds.end(), [&](const rule_hold& h) {
    return d.rules->rule(h.rule).cost_tokens && h.cost > 0 && h.cost != actual;
  });
  if (!corrects) return; // no token rule, or the estimate was exact
  send_by_slot(l, *d.rules, script::adjust, d.a,
               [this, rules = d.rules, member = d.member, actual](std::string_view sha, const admission& part) {
                 return adjust_command(sha, cfg_.redis.key_prefix, *rules, part, member, actual);
               });
}

void redis_limiter::keep_leases(link& l, decided& d) {
  if (d.from != source::redis || !d.a.allowed) return;
  if (!holds_leases(*d.rules, d.a)) return;
  d.renewing = std::make_shared<bool>(true);
  net::co_spawn(
      l.redis.executor(),
      [this, &l, flag = d.renewing, rules = d.rules, parts = by_slot(l, *d.rules, d.a),
       member = d.member]() -> io::task<void> {
        io::timer timer(l.redis.executor());
        for (;;) {
          timer.expires_after(cfg_.redis.lease / 3);
          co_await timer.async_wait(io::k_tuple);
          if (!*flag) co_return;
          // Each slot's at once, each within a third of the lease: one master
          // that does not answer must not hold up the others' renewals.
          std::vector<std::function<io::task<answer>()>> calls;
          for (const auto& [slot, part] : parts)
            calls.emplace_back([this, &l, rules, slot = slot, part = part, member]() {
              return eval(
                  l, script::renew, slot,
                  [this, rules, part, member](std::string_view sha) {
                    return renew_command(sha, cfg_.redis.key_prefix, *rules, part, member, cfg_.redis.lease);
                  },
                  clock::now() + std::min<clock::duration>(cfg_.redis.connect_timeout, cfg_.redis.lease / 3));
            });
          (void)co_await all_of(l.redis.executor(), std::move(calls));
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
  if (!holds_leases(*d.rules, d.a)) return;
  send_release(l, d.rules, d.a, d.member);
}

void redis_limiter::release_unanswered(link& l, const std::shared_ptr<const rule_set>& rules,
                                       const std::vector<planned_rule>& plan, const std::string& member) {
  admission taken;
  for (std::size_t i = 0; i < plan.size(); ++i)
    if (rules->rule(plan[i].rule).algorithm == control::limit_algorithm::concurrency)
      taken.holds.push_back({plan[i].rule, plan[i].key, 1, {}, plan[i].variant, 0, i});
  if (!taken.holds.empty()) send_release(l, rules, taken, member);
}

// Fire and forget on the worker's loop: a lease that cannot be removed expires after redis.lease.
void redis_limiter::send_release(link& l, const std::shared_ptr<const rule_set>& rules, const admission& a,
                                 const std::string& member) {
  send_by_slot(l, *rules, script::release, a, [this, rules, member](std::string_view sha, const admission& part) {
    return release_command(sha, cfg_.redis.key_prefix, *rules, part, member);
  });
}

void redis_limiter::send_undo(link& l, const std::shared_ptr<const rule_set>& rules, std::vector<planned_rule> sub,
                              std::vector<decision> verdicts, std::uint16_t slot, const std::string& member,
                              std::int64_t at_us) {
  net::co_spawn(
      l.redis.executor(),
      [this, &l, rules, sub = std::move(sub), verdicts = std::move(verdicts), slot, member, at_us]() -> io::task<void> {
        (void)co_await eval(
            l, script::undo, slot,
            [&](std::string_view sha) {
              return undo_command(sha, cfg_.redis.key_prefix, *rules, sub, verdicts, member, at_us);
            },
            clock::now() + cfg_.redis.connect_timeout);
      },
      net::detached);
}

io::task<void> redis_limiter::heartbeat(link& l, const std::atomic<bool>& stop) {
  io::timer timer(co_await net::this_coro::executor);
  const auto ttl =
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.redis.heartbeat * 3).count());
  const auto key = cfg_.redis.key_prefix + "replicas";
  while (!stop.load()) {
    auto cmd = redis::command({"EVAL", k_heartbeat_lua, "1", key, replica_id_, ttl});
    auto r = co_await l.redis.call(redis::key_slot(key), std::move(cmd), cfg_.redis.connect_timeout);
    if (r && r->type == redis::reply::kind::integer && r->integer > 0) {
      replicas_.store(static_cast<int>(r->integer));
      replicas_gauge_.set(static_cast<double>(r->integer));
    }
    timer.expires_after(cfg_.redis.heartbeat);
    auto [ec] = co_await timer.async_wait(io::k_tuple);
    if (ec) co_return;
  }
}

} // namespace llmgate::limit
