#include "limit/rule_set.hpp"

#include "limit/concurrency.hpp"
#include "limit/fixed_window.hpp"
#include "limit/gcra.hpp"
#include "limit/leaky_bucket.hpp"
#include "limit/sliding_log.hpp"
#include "limit/sliding_window.hpp"
#include "limit/token_bucket.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/container/small_vector.hpp>
#include <date/tz.h>
#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <optional>
#include <spdlog/spdlog.h>
#include <unordered_map>

namespace llmgate::limit {

namespace {

constexpr std::size_t k_shards = 64;
// Keys that no longer fit (max_tracked_keys reached, none idle) share this one.
constexpr std::string_view k_overflow_key = "\x01overflow";

} // namespace

// One rule's key states: k_shards maps, each with its own lock. The caller
// (rule_set) holds the shard's lock around every call below. The locks, the
// lines and the states live in shared parts: a rule set built by a reload
// (or a limit change) shares them with the one before for every rule whose
// name, key and algorithm did not change, so requests admitted by the old set
// and released later, and the new set's admissions, meet the same counts.
class rule_set::store {
public:
  struct common {
    std::array<std::mutex, k_shards> locks;
    // Requests waiting their turn, per key (on_limit: queue); guarded by the shard's lock.
    std::array<std::unordered_map<std::string, std::deque<std::uint64_t>>, k_shards> lines;
    std::atomic<std::uint64_t> overflowed{0};
    std::atomic<std::uint64_t> next_ticket{1};
  };

  explicit store(std::shared_ptr<common> c) : common_(c ? std::move(c) : std::make_shared<common>()) {}
  virtual ~store() = default;
  [[nodiscard]] std::size_t shard_of(std::string_view key) const {
    return std::hash<std::string_view>{}(key) % k_shards;
  }
  std::mutex& lock(std::size_t shard) { return common_->locks[shard]; }
  [[nodiscard]] common& shared() { return *common_; }
  [[nodiscard]] const std::shared_ptr<common>& shared_ptr() const { return common_; }

  // `variant` picks the limit in force (a schedule's override, or the rule's own).
  virtual decision check(std::size_t shard, const std::string& key, nanos now, std::int64_t cost,
                         std::size_t variant) = 0;
  // Commits under `key`, or under the overflow key when the store is full; returns the key used.
  virtual std::string commit(std::size_t shard, const std::string& key, nanos now, std::int64_t cost,
                             std::size_t variant) = 0;
  virtual void adjust(std::size_t shard, const std::string& key, nanos now, std::int64_t delta,
                      std::size_t variant) = 0;
  virtual void release(std::size_t shard, const std::string& key, std::int64_t cost) = 0;
  [[nodiscard]] virtual std::size_t size() = 0; // takes each shard's lock
  virtual std::size_t sweep(std::size_t shard, nanos now) = 0;

private:
  std::shared_ptr<common> common_;
};

namespace {

template <class Algo> class algo_store final : public rule_set::store {
public:
  struct states {
    std::array<std::unordered_map<std::string, typename Algo::state>, k_shards> shards;
    std::array<nanos, k_shards> last_scan{}; // when each full shard was last scanned for idle keys
  };

  // previous: the same rule's store in the set before (its states are shared), or null.
  algo_store(std::vector<typename Algo::params> variants, std::size_t max_keys, std::string rule,
             const rule_set::store* previous)
      : store(previous ? previous->shared_ptr() : nullptr), variants_(std::move(variants)),
        max_per_shard_(std::max<std::size_t>(1, max_keys / k_shards)), rule_(std::move(rule)),
        states_(previous ? static_cast<const algo_store&>(*previous).states_ : std::make_shared<states>()) {}

  decision check(std::size_t shard, const std::string& key, nanos now, std::int64_t cost,
                 std::size_t variant) override {
    const auto& map = states_->shards[shard];
    auto it = map.find(key);
    if (it == map.end() && map.size() >= max_per_shard_) it = map.find(std::string(k_overflow_key));
    static const typename Algo::state fresh{};
    return Algo::check(variants_[variant], it == map.end() ? fresh : it->second, now, cost);
  }

  std::string commit(std::size_t shard, const std::string& key, nanos now, std::int64_t cost,
                     std::size_t variant) override {
    const auto& p = variants_[variant];
    auto& map = states_->shards[shard];
    auto& last_scan = states_->last_scan;
    auto it = map.find(key);
    std::string used = key;
    if (it == map.end()) {
      // A full shard is scanned for idle keys at most once a second: under a
      // flood of new keys the overflow bucket takes them without a scan each.
      if (map.size() >= max_per_shard_ && now - last_scan[shard] >= std::chrono::seconds(1)) {
        last_scan[shard] = now;
        std::erase_if(map, [&](const auto& kv) { return Algo::idle(p, kv.second, now); });
      }
      if (map.size() >= max_per_shard_) {
        // Every tracked key is busy: new ones share one bucket, so a flood of
        // fresh keys can neither exhaust memory nor buy itself fresh quota.
        if (shared().overflowed.fetch_add(1) == 0)
          spdlog::warn("rule {}: max_tracked_keys reached with no idle key; new keys share one overflow bucket", rule_);
        used = std::string(k_overflow_key);
      }
      it = map.try_emplace(used).first;
    }
    Algo::commit(p, it->second, now, cost);
    return used;
  }

  void adjust(std::size_t shard, const std::string& key, nanos now, std::int64_t delta, std::size_t variant) override {
    if constexpr (!std::is_same_v<Algo, concurrency>) {
      auto& map = states_->shards[shard];
      if (auto it = map.find(key); it != map.end()) Algo::adjust(variants_[variant], it->second, now, delta);
    }
  }

  void release(std::size_t shard, const std::string& key, std::int64_t cost) override {
    if constexpr (std::is_same_v<Algo, concurrency>) {
      auto& map = states_->shards[shard];
      if (auto it = map.find(key); it != map.end()) {
        Algo::release(variants_.front(), it->second, cost);
        if (it->second.in_flight == 0) map.erase(it); // an idle concurrency key holds nothing worth keeping
      }
    }
  }

  std::size_t sweep(std::size_t shard, nanos now) override {
    const auto& p = variants_.front(); // idle means "as good as new" under any of the rule's limits
    return std::erase_if(states_->shards[shard], [&](const auto& kv) { return Algo::idle(p, kv.second, now); });
  }

  std::size_t size() override {
    std::size_t n = 0;
    for (std::size_t i = 0; i < k_shards; ++i) {
      std::lock_guard lock(this->lock(i));
      n += states_->shards[i].size();
    }
    return n;
  }

private:
  std::vector<typename Algo::params> variants_; // the rule's own limit, then one per schedule entry
  std::size_t max_per_shard_;
  std::string rule_;
  std::shared_ptr<states> states_;
};

// The rule's own limit and one per schedule entry (same period, own count and burst).
template <class Algo, class Make> std::unique_ptr<rule_set::store>
store_of(const control::rule_config& r, std::size_t max_keys, const rule_set::store* previous, Make make) {
  std::vector<typename Algo::params> variants{make(r.count, r.burst)};
  for (const auto& e : r.schedule) variants.push_back(make(e.count, e.burst));
  return std::make_unique<algo_store<Algo>>(std::move(variants), max_keys, r.name, previous);
}

// previous: the store of the same rule (same name, key and algorithm) in the set before, whose states carry over.
std::unique_ptr<rule_set::store> make_store(const control::rule_config& r, std::size_t max_keys,
                                            const rule_set::store* previous) {
  using control::limit_algorithm;
  const nanos period = r.period;
  switch (r.algorithm) {
  case limit_algorithm::fixed_window:
    return store_of<fixed_window>(r, max_keys, previous, [&](std::int64_t n, std::int64_t) {
      return fixed_window::params{n, period};
    });
  case limit_algorithm::sliding_window:
    return store_of<sliding_window>(r, max_keys, previous, [&](std::int64_t n, std::int64_t) {
      return sliding_window::params{n, period};
    });
  case limit_algorithm::sliding_log:
    return store_of<sliding_log>(r, max_keys, previous, [&](std::int64_t n, std::int64_t) {
      return sliding_log::params{n, period};
    });
  case limit_algorithm::token_bucket:
    return store_of<token_bucket>(r, max_keys, previous, [&](std::int64_t n, std::int64_t b) {
      return token_bucket::params{{n, period}, b};
    });
  case limit_algorithm::gcra:
    return store_of<gcra>(r, max_keys, previous, [&](std::int64_t n, std::int64_t b) {
      return gcra::params{{n, period}, b};
    });
  case limit_algorithm::leaky_bucket:
    return store_of<leaky_bucket>(r, max_keys, previous, [&](std::int64_t n, std::int64_t b) {
      return leaky_bucket::params{
          {n, period}, b, r.shape ? leaky_bucket::mode::shaper : leaky_bucket::mode::meter, r.delay, r.max_wait};
    });
  case limit_algorithm::concurrency:
    return store_of<concurrency>(r, max_keys, previous,
                                 [&](std::int64_t n, std::int64_t) { return concurrency::params{n}; });
  }
  return nullptr;
}

bool applies(const control::rule_config& r, std::string_view tier) {
  return r.tiers.empty() || std::find(r.tiers.begin(), r.tiers.end(), tier) != r.tiers.end();
}

} // namespace

rule_set::rule_set(const control::config& cfg, const rule_set* previous) : rules_(cfg.limits.rules) {
  for (const auto& r : rules_) {
    const store* carried = nullptr;
    if (previous)
      for (std::size_t i = 0; i < previous->rules_.size(); ++i)
        if (const auto& old = previous->rules_[i];
            old.name == r.name && old.key == r.key && old.algorithm == r.algorithm && old.shape == r.shape)
          carried = previous->stores_[i].get();
    stores_.push_back(make_store(r, cfg.limits.max_tracked_keys, carried));
    zones_.push_back(r.schedule.empty() ? nullptr : date::locate_zone(r.timezone)); // checked when loading
    needs_body_ = needs_body_ || r.cost_tokens || std::find(r.key.begin(), r.key.end(), "model") != r.key.end();
  }
}

std::size_t rule_set::variant(std::size_t rule, std::chrono::system_clock::time_point wall) const {
  const auto& schedule = rules_[rule].schedule;
  if (schedule.empty()) return 0;
  const auto* zone = static_cast<const date::time_zone*>(zones_[rule]);
  const auto local = zone->to_local(std::chrono::time_point_cast<std::chrono::seconds>(wall));
  const auto since_midnight = local - date::floor<date::days>(local);
  const int minute = static_cast<int>(std::chrono::duration_cast<std::chrono::minutes>(since_midnight).count());
  for (std::size_t i = 0; i < schedule.size(); ++i)
    if (schedule[i].covers(minute)) return i + 1;
  return 0;
}

rule_set::~rule_set() = default;

std::string rule_set::key_for(const control::rule_config& r, const request_facts& f) {
  std::string key;
  for (const auto& part : r.key) {
    if (!key.empty()) key += '\x1f';
    if (part == "client_ip")
      key += f.client_ip;
    else if (part == "api_key")
      key += f.caller;
    else if (part == "model")
      key += f.model;
    else if (part == "route")
      key += f.route;
    else if (part.starts_with("header:") && f.header)
      key += f.header(std::string_view(part).substr(7));
    // "global": one bucket for everyone, nothing to add
  }
  return key;
}

queue_ticket rule_set::enqueue(std::size_t rule, const std::string& key) {
  auto& s = *stores_[rule];
  const auto shard = s.shard_of(key);
  queue_ticket t{rule, key, s.shared().next_ticket.fetch_add(1)};
  std::lock_guard lock(s.lock(shard));
  s.shared().lines[shard][key].push_back(t.id);
  return t;
}

void rule_set::leave(const queue_ticket& t) {
  auto& s = *stores_[t.rule];
  const auto shard = s.shard_of(t.key);
  std::lock_guard lock(s.lock(shard));
  auto& lines = s.shared().lines[shard];
  const auto it = lines.find(t.key);
  if (it == lines.end()) return;
  std::erase(it->second, t.id);
  if (it->second.empty()) lines.erase(it);
}

admission rule_set::admit(const request_facts& facts, nanos now, const queue_ticket* ticket) {
  admission out;
  struct pending {
    std::size_t rule;
    std::size_t shard;
    std::string key;
    std::int64_t cost;
    std::size_t variant;
  };
  // The wall clock only for rules with a schedule (a clock read per request otherwise).
  std::optional<std::chrono::system_clock::time_point> wall;
  if (facts.wall != std::chrono::system_clock::time_point{}) wall = facts.wall;
  // A request meets a few rules: the working lists live on the stack (an
  // allocation each was a third of a one-rule admission).
  boost::container::small_vector<pending, 4> todo;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const auto& r = rules_[i];
    if (!applies(r, facts.tier)) continue;
    auto key = key_for(r, facts);
    const auto shard = stores_[i]->shard_of(key);
    if (!r.schedule.empty() && !wall) wall = std::chrono::system_clock::now();
    todo.push_back({i, shard, std::move(key), r.cost_tokens ? std::max<std::int64_t>(1, facts.token_cost) : 1,
                    r.schedule.empty() ? 0 : variant(i, *wall)});
  }
  if (todo.empty()) return out;

  // Lock every shard involved, in (rule, shard) order, each once.
  boost::container::small_vector<std::pair<std::size_t, std::size_t>, 4> order;
  for (const auto& p : todo) order.emplace_back(p.rule, p.shard);
  std::sort(order.begin(), order.end());
  order.erase(std::unique(order.begin(), order.end()), order.end());
  boost::container::small_vector<std::unique_lock<std::mutex>, 4> locks;
  for (const auto& [rule, shard] : order) locks.emplace_back(stores_[rule]->lock(shard));

  boost::container::small_vector<decision, 4> verdicts(todo.size());
  for (std::size_t j = 0; j < todo.size(); ++j) {
    const auto& p = todo[j];
    verdicts[j] = stores_[p.rule]->check(p.shard, p.key, now, p.cost, p.variant);
    // FIFO: while requests of this key wait in line, only the first of them may pass.
    bool behind = false;
    if (rules_[p.rule].queue && verdicts[j].allowed) {
      const auto& lines = stores_[p.rule]->shared().lines[p.shard];
      if (const auto it = lines.find(p.key); it != lines.end() && !it->second.empty()) {
        const bool first = ticket && ticket->rule == p.rule && ticket->key == p.key && it->second.front() == ticket->id;
        if (!first) {
          behind = true;
          verdicts[j].allowed = false;
          verdicts[j].retry_after = nanos{0}; // its turn comes after the others'
        }
      }
    }
    if (verdicts[j].allowed) continue;
    if (rules_[p.rule].shadow) {
      out.shadow_refusals.push_back(rules_[p.rule].name);
      continue;
    }
    if (out.allowed) { // the first enforced refusal is the one reported
      out.allowed = false;
      out.refused_by = &rules_[p.rule];
      out.refused_rule = p.rule;
      out.refused_key = p.key;
      out.refusal = verdicts[j];
      out.behind_others = behind;
    }
  }
  if (!out.allowed) {
    // Report the others' state too (for the headers), without committing anything.
    for (std::size_t j = 0; j < todo.size(); ++j)
      if (!rules_[todo[j].rule].shadow)
        out.holds.push_back({todo[j].rule, todo[j].key, 0, verdicts[j], todo[j].variant, todo[j].shard});
    return out;
  }
  for (std::size_t j = 0; j < todo.size(); ++j) {
    auto& p = todo[j];
    if (!verdicts[j].allowed) continue; // a shadow rule that would refuse: counted, not committed
    auto used = stores_[p.rule]->commit(p.shard, p.key, now, p.cost, p.variant);
    // A shadow rule is counted, not enforced; its concurrency slot is still
    // held (and released with the others), or it would leak.
    if (rules_[p.rule].shadow && rules_[p.rule].algorithm != control::limit_algorithm::concurrency) continue;
    out.delay = std::max(out.delay, verdicts[j].delay);
    out.holds.push_back({p.rule, std::move(used), p.cost, verdicts[j], p.variant, p.shard});
  }
  return out;
}

std::vector<planned_rule> rule_set::plan(const request_facts& facts) const {
  const auto wall =
      facts.wall == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now() : facts.wall;
  std::vector<planned_rule> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const auto& r = rules_[i];
    if (!applies(r, facts.tier)) continue;
    planned_rule p;
    p.rule = i;
    p.key = key_for(r, facts);
    p.cost = r.algorithm == control::limit_algorithm::concurrency ? 1
             : r.cost_tokens                                      ? std::max<std::int64_t>(1, facts.token_cost)
                                                                  : 1;
    p.variant = variant(i, wall);
    p.count = p.variant == 0 ? r.count : r.schedule[p.variant - 1].count;
    p.burst = p.variant == 0 ? r.burst : r.schedule[p.variant - 1].burst;
    if (p.burst <= 0) p.burst = p.count;
    p.period = r.period;
    out.push_back(std::move(p));
  }
  return out;
}

admission rule_set::assemble(const std::vector<planned_rule>& plan, const std::vector<decision>& verdicts) const {
  admission out;
  for (std::size_t j = 0; j < plan.size(); ++j) {
    const auto& r = rules_[plan[j].rule];
    if (verdicts[j].allowed) continue;
    if (r.shadow) {
      out.shadow_refusals.push_back(r.name);
      continue;
    }
    if (out.allowed) {
      out.allowed = false;
      out.refused_by = &r;
      out.refused_rule = plan[j].rule;
      out.refused_key = plan[j].key;
      out.refusal = verdicts[j];
    }
  }
  for (std::size_t j = 0; j < plan.size(); ++j) {
    const auto& r = rules_[plan[j].rule];
    if (r.shadow) { // counted by the store; only a concurrency lease needs to be given back
      if (r.algorithm == control::limit_algorithm::concurrency && out.allowed && verdicts[j].allowed)
        out.holds.push_back({plan[j].rule, plan[j].key, plan[j].cost, verdicts[j], plan[j].variant, 0, j});
      continue;
    }
    out.holds.push_back(
        {plan[j].rule, plan[j].key, out.allowed ? plan[j].cost : 0, verdicts[j], plan[j].variant, 0, j});
    if (out.allowed) out.delay = std::max(out.delay, verdicts[j].delay);
  }
  return out;
}

void rule_set::release(const admission& a) {
  if (!a.allowed) return;
  for (const auto& h : a.holds) {
    if (rules_[h.rule].algorithm != control::limit_algorithm::concurrency || h.cost == 0) continue;
    auto& s = *stores_[h.rule];
    const auto shard = h.shard;
    std::lock_guard lock(s.lock(shard));
    s.release(shard, h.key, h.cost);
  }
}

template <class Delta> void rule_set::adjust_holds(const admission& a, nanos now, Delta delta) {
  if (!a.allowed) return;
  for (const auto& h : a.holds) {
    const std::int64_t d = delta(h);
    if (d == 0) continue;
    auto& s = *stores_[h.rule];
    std::lock_guard lock(s.lock(h.shard));
    s.adjust(h.shard, h.key, now, d, h.variant);
  }
}

void rule_set::settle_tokens(const admission& a, std::int64_t actual_tokens, nanos now) {
  adjust_holds(a, now, [&](const rule_hold& h) { return rules_[h.rule].cost_tokens ? actual_tokens - h.cost : 0; });
}

void rule_set::refund(const admission& a, nanos now) {
  // Shadow rules' counts are not held, so they keep the request: they only log.
  adjust_holds(a, now, [&](const rule_hold& h) {
    return rules_[h.rule].algorithm == control::limit_algorithm::concurrency ? 0 : -h.cost;
  });
}

std::size_t rule_set::sweep(nanos now) {
  std::size_t dropped = 0;
  for (auto& s : stores_)
    for (std::size_t shard = 0; shard < k_shards; ++shard) {
      std::lock_guard lock(s->lock(shard));
      dropped += s->sweep(shard, now);
    }
  return dropped;
}

std::size_t rule_set::tracked_keys(std::size_t rule) const { return stores_[rule]->size(); }
std::uint64_t rule_set::overflowed(std::size_t rule) const { return stores_[rule]->shared().overflowed.load(); }

std::string format_reset(nanos d) {
  using namespace std::chrono;
  if (d <= nanos{0}) return "0s";
  const auto ms = duration_cast<milliseconds>(d + nanos{999'999}).count(); // round up
  // The common cases without fmt: this runs for every admitted request
  // (the x-ratelimit-reset-* headers).
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms < 60'000) {
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    std::string s = fmt::format("{:.3f}", static_cast<double>(ms) / 1000);
    while (s.back() == '0') s.pop_back();
    return s + "s";
  }
  const auto total_s = (ms + 999) / 1000;
  const auto h = total_s / 3600, m = (total_s % 3600) / 60, sec = total_s % 60;
  if (h > 0) return fmt::format("{}h{}m{}s", h, m, sec);
  return fmt::format("{}m{}s", m, sec);
}

} // namespace llmgate::limit
