#pragma once
// The configured limit rules and the state of every key they track, shared
// by all workers. admit() checks every rule that applies to a request and
// commits to all of them only when none refuses, under the locks of the key
// shards involved (taken in one global order, so admissions never deadlock):
// a request refused by one rule consumes nothing from the others.
// Thread-safe.
#include "control/config.hpp"
#include "limit/decision.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::limit {

// What the rules know about a request.
struct request_facts {
  std::string_view client_ip;
  std::string_view caller; // the key's name, or "ip:<client ip>" for anonymous callers
  std::string_view tier;
  std::string_view model;
  std::string_view route;
  std::function<std::string_view(std::string_view)> header; // a request header's value by name
  std::int64_t token_cost = 0;                              // estimate for cost: tokens rules
  std::chrono::system_clock::time_point wall{};             // for schedules; default: now
};

// A rule's answer for one request, kept for the response headers, the later
// token correction and the release of concurrency slots.
struct rule_hold {
  std::size_t rule = 0;
  std::string key;
  std::int64_t cost = 0;
  decision verdict;
  std::size_t variant = 0;  // the limit in force when it was admitted (0: the rule's own, i + 1: schedule entry i)
  std::size_t shard = 0;    // where the state lives (an overflowed key's state is in its own key's shard)
  std::size_t position = 0; // shared stores: the rule's place in the request's plan
};

// A place in a rule's wait line for one key (on_limit: queue).
struct queue_ticket {
  std::size_t rule = 0;
  std::string key;
  std::uint64_t id = 0;
};

struct admission {
  bool allowed = true;
  const control::rule_config* refused_by = nullptr;
  std::size_t refused_rule = 0;             // index of refused_by
  std::string refused_key;                  // the key it refused under
  bool behind_others = false;               // refused because earlier requests of this key wait in line
  decision refusal;                         // the refusing rule's decision
  std::vector<rule_hold> holds;             // every enforced rule that applied and committed
  std::vector<std::string> shadow_refusals; // names of shadow rules that would have refused
  nanos delay{0};                           // the longest shaper delay among the rules
};

// One rule applied to one request, with the limit in force (a schedule
// entry's, when one covers the local time): what a shared store (Redis) is
// asked to decide.
struct planned_rule {
  std::size_t rule = 0;
  std::string key;
  std::int64_t cost = 1;
  std::size_t variant = 0;
  std::int64_t count = 0; // the limit's count (concurrency: requests in flight)
  nanos period{0};
  std::int64_t burst = 0;
};

class rule_set final {
public:
  // previous: the set this one replaces (a reload, a limit changed by the
  // admin API). Every rule whose name, key and algorithm did not change keeps
  // its state, shared with the previous set (which may still be releasing
  // what it admitted): a changed limit applies to what is already counted.
  explicit rule_set(const control::config& cfg, const rule_set* previous = nullptr);
  ~rule_set();
  rule_set(const rule_set&) = delete;
  rule_set& operator=(const rule_set&) = delete;

  // `ticket`: the caller already waits in line (on_limit: queue); a request
  // of a key with others waiting is admitted only when its ticket is first.
  [[nodiscard]] admission admit(const request_facts& facts, nanos now, const queue_ticket* ticket = nullptr);
  // Every rule that applies to the request, its key, cost and limit in force
  // (the same choice admit() makes), for a store that decides elsewhere.
  [[nodiscard]] std::vector<planned_rule> plan(const request_facts& facts) const;
  // The admission those rules' verdicts make (verdicts[i] for plan[i]):
  // the first enforced refusal is reported, shadow refusals are listed, and
  // when allowed, every enforced rule is held (the store committed all of
  // them, or none).
  [[nodiscard]] admission assemble(const std::vector<planned_rule>& plan, const std::vector<decision>& verdicts) const;

  // Joins the wait line of the rule and key that refused (FIFO).
  [[nodiscard]] queue_ticket enqueue(std::size_t rule, const std::string& key);
  // Leaves the line, admitted or not (call exactly once per ticket).
  void leave(const queue_ticket& t);
  // Gives back the concurrency slots an admission took (call exactly once, however the request ended).
  void release(const admission& a);
  // Corrects the token rules once the real usage is known (refund or charge the difference).
  void settle_tokens(const admission& a, std::int64_t actual_tokens, nanos now);
  // Whether a decision needs the request's body: some rule is costed in
  // tokens or keyed by the model. When none is, the gateway decides before it
  // parses the body (a refusal then costs no parse), and refunds a request
  // the body shows to be bad.
  [[nodiscard]] bool needs_body() const noexcept { return needs_body_; }
  // Takes back what an admission counted against the rate rules, as if the
  // request had never come (its concurrency slots go back with release()).
  void refund(const admission& a, nanos now);

  [[nodiscard]] const control::rule_config& rule(std::size_t i) const { return rules_[i]; }
  [[nodiscard]] std::size_t size() const noexcept { return rules_.size(); }
  // Drops every idle key (state equal to a fresh one), one shard lock at a
  // time; returns how many went. Run periodically so memory follows traffic.
  std::size_t sweep(nanos now);
  [[nodiscard]] std::size_t tracked_keys(std::size_t rule) const;
  [[nodiscard]] std::uint64_t overflowed(std::size_t rule) const;

  // The key a rule tracks a request under; empty optional when a part is missing (e.g. an absent header).
  [[nodiscard]] static std::string key_for(const control::rule_config& r, const request_facts& f);

  class store; // one rule's key states (defined in rule_set.cpp)

private:
  // Adds delta(hold) to each hold's key (0: leaves it), under its shard's lock.
  template <class Delta> void adjust_holds(const admission& a, nanos now, Delta delta);
  // Which of a rule's limits applies at `wall`: 0 the rule's own, i + 1 its schedule entry i.
  [[nodiscard]] std::size_t variant(std::size_t rule, std::chrono::system_clock::time_point wall) const;

  std::vector<control::rule_config> rules_;
  std::vector<std::unique_ptr<store>> stores_;
  std::vector<const void*> zones_; // the date::time_zone of each rule with a schedule (opaque here)
  bool needs_body_ = false;
};

// OpenAI's way of writing a reset delay: "20ms", "1s", "1.5s", "6m0s", "1h2m3s".
[[nodiscard]] std::string format_reset(nanos d);

} // namespace llmgate::limit
