#include "limit/redis_store.hpp"

#include "redis/slot.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace llmgate::limit {

namespace generated {
extern const std::string_view k_admit_lua;
extern const std::string_view k_release_lua;
extern const std::string_view k_renew_lua;
extern const std::string_view k_adjust_lua;
extern const std::string_view k_undo_lua;
} // namespace generated

std::string_view admit_script() { return generated::k_admit_lua; }
std::string_view release_script() { return generated::k_release_lua; }
std::string_view renew_script() { return generated::k_renew_lua; }
std::string_view adjust_script() { return generated::k_adjust_lua; }
std::string_view undo_script() { return generated::k_undo_lua; }

std::string_view script_algorithm(const control::rule_config& r) {
  using a = control::limit_algorithm;
  switch (r.algorithm) {
  case a::fixed_window: return "fixed_window";
  case a::sliding_window: return "sliding_window";
  case a::sliding_log: return "sliding_log";
  case a::token_bucket:
  case a::gcra: return "meter";
  case a::leaky_bucket: return r.shape ? "shaper" : "meter";
  case a::concurrency: return "concurrency";
  }
  return "?";
}

std::string state_key(std::string_view prefix, const control::rule_config& r, std::string_view key) {
  // The algorithm is part of the name: a rule whose algorithm changes starts
  // afresh instead of meeting state of another shape (WRONGTYPE).
  return fmt::format("{}{{{}}}:{}:{}", prefix, key.empty() ? std::string_view("*") : key, r.name, script_algorithm(r));
}

std::vector<slot_group> group_by_slot(std::string_view prefix, const rule_set& rules,
                                      const std::vector<planned_rule>& plan) {
  std::vector<slot_group> out;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const auto slot = redis::key_slot(state_key(prefix, rules.rule(plan[i].rule), plan[i].key));
    auto it = std::find_if(out.begin(), out.end(), [&](const slot_group& g) { return g.slot == slot; });
    if (it == out.end()) it = out.insert(out.end(), slot_group{slot, {}});
    it->rules.push_back(i);
  }
  return out;
}

std::vector<std::pair<std::uint16_t, admission>> split_by_slot(std::string_view prefix, const rule_set& rules,
                                                               const admission& a) {
  std::vector<std::pair<std::uint16_t, admission>> out;
  for (const auto& h : a.holds) {
    const auto slot = redis::key_slot(state_key(prefix, rules.rule(h.rule), h.key));
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& part) { return part.first == slot; });
    if (it == out.end()) {
      admission part = a;
      part.holds.clear();
      it = out.insert(out.end(), {slot, std::move(part)});
    }
    it->second.holds.push_back(h);
  }
  return out;
}

namespace {

std::int64_t micros(nanos d) {
  if (d == k_never) return INT64_MAX / 2;
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

nanos from_micros(std::int64_t us) { return us < 0 ? k_never : nanos{std::chrono::microseconds(us)}; }

} // namespace

std::string admit_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                          const std::vector<planned_rule>& plan, std::string_view member, nanos lease) {
  std::vector<std::string> owned;
  owned.reserve(3 + plan.size() * 9);
  owned.emplace_back("EVALSHA");
  owned.emplace_back(sha);
  owned.push_back(std::to_string(plan.size()));
  for (const auto& p : plan) owned.push_back(state_key(prefix, rules.rule(p.rule), p.key));
  owned.emplace_back(member);
  for (const auto& p : plan) {
    const auto& r = rules.rule(p.rule);
    owned.emplace_back(script_algorithm(r));
    owned.push_back(std::to_string(p.count));
    owned.push_back(std::to_string(micros(p.period)));
    owned.push_back(std::to_string(p.burst));
    owned.push_back(std::to_string(p.cost));
    owned.push_back(std::to_string(r.algorithm == control::limit_algorithm::concurrency ? micros(lease) : r.delay));
    owned.push_back(std::to_string(r.shape ? micros(r.max_wait) : 0));
    owned.emplace_back(r.shadow ? "1" : "0");
  }
  std::vector<std::string_view> args(owned.begin(), owned.end());
  std::string out;
  redis::append_command(out, args);
  return out;
}

std::optional<std::vector<decision>> decode_admit(const redis::reply& r, std::size_t rules,
                                                  const std::vector<planned_rule>& plan) {
  if (r.type != redis::reply::kind::array || r.elements.size() != 2 + rules * 5 || plan.size() != rules)
    return std::nullopt;
  for (const auto& e : r.elements)
    if (e.type != redis::reply::kind::integer) return std::nullopt;
  std::vector<decision> out(rules);
  for (std::size_t i = 0; i < rules; ++i) {
    const auto* v = &r.elements[2 + i * 5];
    auto& d = out[i];
    d.allowed = v[0].integer == 1;
    d.remaining = v[1].integer;
    d.reset = from_micros(v[2].integer);
    d.retry_after = d.allowed ? nanos{0} : from_micros(v[3].integer);
    d.delay = from_micros(v[4].integer);
    d.limit = plan[i].burst > 0 && plan[i].burst != plan[i].count ? plan[i].burst : plan[i].count;
  }
  return out;
}

namespace {

// The lease sets an admission holds (its concurrency rules).
std::vector<std::string> lease_keys(std::string_view prefix, const rule_set& rules, const admission& a) {
  std::vector<std::string> keys;
  for (const auto& h : a.holds)
    if (rules.rule(h.rule).algorithm == control::limit_algorithm::concurrency && h.cost > 0)
      keys.push_back(state_key(prefix, rules.rule(h.rule), h.key));
  return keys;
}

} // namespace

std::string adjust_command(std::string_view sha, std::string_view prefix, const rule_set& rules, const admission& a,
                           std::string_view member, std::int64_t actual) {
  std::vector<std::string> keys, values;
  for (const auto& h : a.holds) {
    const auto& r = rules.rule(h.rule);
    if (!r.cost_tokens || h.cost == 0 || r.algorithm == control::limit_algorithm::concurrency) continue;
    const auto delta = std::max<std::int64_t>(0, actual) - h.cost;
    if (delta == 0) continue;
    // The limit in force when it was admitted (a schedule entry's count, when one applied).
    const auto count = h.variant == 0 ? r.count : r.schedule[h.variant - 1].count;
    keys.push_back(state_key(prefix, r, h.key));
    values.emplace_back(script_algorithm(r));
    values.push_back(std::to_string(count));
    values.push_back(std::to_string(micros(r.period)));
    values.push_back(std::to_string(delta));
    values.push_back(std::to_string(h.position + 1));
    values.push_back(std::to_string(h.cost));
  }
  if (keys.empty()) return {};
  const auto n = std::to_string(keys.size());
  std::vector<std::string_view> args{"EVALSHA", sha, n};
  for (const auto& k : keys) args.push_back(k);
  args.push_back(member);
  for (const auto& v : values) args.push_back(v);
  std::string out;
  redis::append_command(out, args);
  return out;
}

std::string undo_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                         const std::vector<planned_rule>& plan, const std::vector<decision>& verdicts,
                         std::string_view member, std::int64_t at_us) {
  std::vector<std::string> keys, values;
  for (std::size_t i = 0; i < plan.size() && i < verdicts.size(); ++i) {
    if (!verdicts[i].allowed) continue; // refused within the call: nothing was counted
    const auto& r = rules.rule(plan[i].rule);
    keys.push_back(state_key(prefix, r, plan[i].key));
    values.emplace_back(script_algorithm(r));
    values.push_back(std::to_string(plan[i].count));
    values.push_back(std::to_string(micros(plan[i].period)));
    values.push_back(std::to_string(plan[i].cost));
    values.push_back(std::to_string(i + 1)); // the admit script's index of the rule
  }
  if (keys.empty()) return {};
  const auto n = std::to_string(keys.size());
  const auto at = std::to_string(at_us);
  std::vector<std::string_view> args{"EVALSHA", sha, n};
  for (const auto& k : keys) args.push_back(k);
  args.push_back(member);
  args.push_back(at);
  for (const auto& v : values) args.push_back(v);
  std::string out;
  redis::append_command(out, args);
  return out;
}

bool holds_leases(const rule_set& rules, const admission& a) { return !lease_keys("", rules, a).empty(); }

std::string release_command(std::string_view sha, std::string_view prefix, const rule_set& rules, const admission& a,
                            std::string_view member) {
  const auto keys = lease_keys(prefix, rules, a);
  if (keys.empty()) return {};
  const auto n = std::to_string(keys.size());
  std::vector<std::string_view> args{"EVALSHA", sha, n};
  for (const auto& k : keys) args.push_back(k);
  for (std::size_t i = 0; i < keys.size(); ++i) args.push_back(member);
  std::string out;
  redis::append_command(out, args);
  return out;
}

std::string renew_command(std::string_view sha, std::string_view prefix, const rule_set& rules, const admission& a,
                          std::string_view member, nanos lease) {
  const auto keys = lease_keys(prefix, rules, a);
  if (keys.empty()) return {};
  const auto n = std::to_string(keys.size());
  const auto us = std::to_string(micros(lease));
  std::vector<std::string_view> args{"EVALSHA", sha, n};
  for (const auto& k : keys) args.push_back(k);
  args.push_back(us);
  for (std::size_t i = 0; i < keys.size(); ++i) args.push_back(member);
  std::string out;
  redis::append_command(out, args);
  return out;
}

} // namespace llmgate::limit
