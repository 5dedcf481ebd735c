#pragma once
// Limits decided by Redis: how a request's planned rules become one call of
// the `admit` script (src/limit/redis_admit.lua) and how its answer becomes
// decisions, plus the scripts that release concurrency leases, renew them
// and settle token costs. Pure: no I/O here (the gateway's Redis client sends
// what this builds).
#include "control/config.hpp"
#include "limit/decision.hpp"
#include "limit/rule_set.hpp"
#include "redis/resp.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::limit {

// The scripts' sources (loaded once with SCRIPT LOAD, then called by SHA).
[[nodiscard]] std::string_view admit_script();
[[nodiscard]] std::string_view release_script();
[[nodiscard]] std::string_view renew_script();
[[nodiscard]] std::string_view adjust_script();
[[nodiscard]] std::string_view undo_script();

// How the script decides a rule: fixed_window, sliding_window, sliding_log,
// meter (token_bucket, gcra, leaky_bucket metering), shaper, concurrency.
[[nodiscard]] std::string_view script_algorithm(const control::rule_config& r);

// A rule's state key: prefix{caller key}:rule:algorithm ("*" stands for the
// empty key of a global rule). The hash tag ({...}) puts every rule of one
// caller in one Redis Cluster slot, so a request's per-caller rules are
// decided together, atomically, while callers spread over the masters.
[[nodiscard]] std::string state_key(std::string_view prefix, const control::rule_config& r, std::string_view key);

// The planned rules by the Redis Cluster slot of their state keys (indices
// into the plan, in plan order), groups in order of first appearance.
struct slot_group {
  std::uint16_t slot = 0;
  std::vector<std::size_t> rules;
};
[[nodiscard]] std::vector<slot_group> group_by_slot(std::string_view prefix, const rule_set& rules,
                                                    const std::vector<planned_rule>& plan);

// An admission's holds by the slot of their state keys (each part holds only its slot's holds).
[[nodiscard]] std::vector<std::pair<std::uint16_t, admission>> split_by_slot(std::string_view prefix,
                                                                             const rule_set& rules, const admission& a);

// EVALSHA of the admit script for these planned rules. member: unique to the
// request (its sliding-log entries and leases are named after it).
[[nodiscard]] std::string admit_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                                        const std::vector<planned_rule>& plan, std::string_view member, nanos lease);

// The script's answer as one decision per planned rule; nullopt when the reply is not its shape.
[[nodiscard]] std::optional<std::vector<decision>> decode_admit(const redis::reply& r, std::size_t rules,
                                                                const std::vector<planned_rule>& plan);

// ZREM of the leases an admission took (the concurrency rules among its holds).
[[nodiscard]] std::string release_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                                          const admission& a, std::string_view member);

// EVALSHA of the adjust script: the token rules among the holds corrected
// from their estimated cost to `actual` tokens. Empty when nothing changes.
[[nodiscard]] std::string adjust_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                                         const admission& a, std::string_view member, std::int64_t actual);

// EVALSHA of the undo script: what an admit call for `plan` committed
// (its `verdicts`, answered at `at_us`) taken back. Empty when it committed nothing.
[[nodiscard]] std::string undo_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                                       const std::vector<planned_rule>& plan, const std::vector<decision>& verdicts,
                                       std::string_view member, std::int64_t at_us);

// Whether the admission took any concurrency lease.
[[nodiscard]] bool holds_leases(const rule_set& rules, const admission& a);

// EVALSHA of the renew script: the admission's leases extended to `lease` from now.
[[nodiscard]] std::string renew_command(std::string_view sha, std::string_view prefix, const rule_set& rules,
                                        const admission& a, std::string_view member, nanos lease);

} // namespace llmgate::limit
