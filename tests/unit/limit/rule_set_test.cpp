#include "limit/rule_set.hpp"

#include <gtest/gtest.h>

namespace llmgate::limit {
namespace {

using namespace std::chrono_literals;

control::config with_rules(std::vector<control::rule_config> rules, std::uint64_t max_keys = 1'000'000) {
  control::config c;
  c.limits.rules = std::move(rules);
  c.limits.max_tracked_keys = max_keys;
  return c;
}

control::rule_config rule(std::string name, control::limit_algorithm a, std::int64_t count, nanos period,
                          std::vector<std::string> key = {"client_ip"}) {
  control::rule_config r;
  r.name = std::move(name);
  r.algorithm = a;
  r.count = count;
  r.period = period;
  r.burst = count;
  r.key = std::move(key);
  return r;
}

request_facts facts(std::string_view ip, std::string_view tier = "default") {
  request_facts f;
  f.client_ip = ip;
  f.caller = "anon";
  f.tier = tier;
  f.model = "Qwen3-1.7B";
  f.route = "/v1/chat/completions";
  return f;
}

TEST(rule_set, a_shadow_concurrency_slot_is_given_back_with_the_request) {
  auto watch = rule("watch", control::limit_algorithm::concurrency, 1, 0s);
  watch.shadow = true;
  rule_set rs(with_rules({watch}));
  for (int i = 0; i < 3; ++i) {
    const auto a = rs.admit(facts("1.1.1.1"), 1s);
    ASSERT_TRUE(a.allowed);
    EXPECT_TRUE(a.shadow_refusals.empty()) << "request " << i << ": the earlier ones' slots came back";
    rs.release(a);
  }
  // Two at once: the second is over the shadow limit (reported, let through).
  const auto first = rs.admit(facts("1.1.1.1"), 1s);
  const auto second = rs.admit(facts("1.1.1.1"), 1s);
  EXPECT_TRUE(second.allowed);
  EXPECT_EQ(second.shadow_refusals, std::vector<std::string>{"watch"});
  rs.release(first);
  rs.release(second);
  EXPECT_TRUE(rs.admit(facts("1.1.1.1"), 1s).shadow_refusals.empty());
}

TEST(rule_set, a_request_refused_by_one_rule_consumes_nothing_from_the_others) {
  auto cfg = with_rules({rule("tight", control::limit_algorithm::fixed_window, 1, 60s),
                         rule("loose", control::limit_algorithm::fixed_window, 5, 60s, {"global"})});
  rule_set rs(cfg);
  ASSERT_TRUE(rs.admit(facts("1.1.1.1"), 1s).allowed);
  const auto refused = rs.admit(facts("1.1.1.1"), 1s);
  ASSERT_FALSE(refused.allowed);
  EXPECT_EQ(refused.refused_by->name, "tight");
  // "loose" saw one admitted request, not two: another address has 4 - 1 = 3 left after its own.
  const auto other = rs.admit(facts("2.2.2.2"), 1s);
  ASSERT_TRUE(other.allowed);
  for (const auto& h : other.holds)
    if (rs.rule(h.rule).name == "loose") {
      EXPECT_EQ(h.verdict.remaining, 3);
    }
}

TEST(rule_set, keys_are_separate_and_composite_keys_combine_parts) {
  auto cfg = with_rules({rule("per-ip-model", control::limit_algorithm::fixed_window, 1, 60s, {"client_ip", "model"})});
  rule_set rs(cfg);
  EXPECT_TRUE(rs.admit(facts("1.1.1.1"), 0s).allowed);
  EXPECT_TRUE(rs.admit(facts("2.2.2.2"), 0s).allowed);
  auto f = facts("1.1.1.1");
  f.model = "Qwen3-0.6B";
  EXPECT_TRUE(rs.admit(f, 0s).allowed);
  EXPECT_FALSE(rs.admit(facts("1.1.1.1"), 0s).allowed);
  EXPECT_EQ(rs.tracked_keys(0), 3u);
}

TEST(rule_set, tiers_select_the_rules_that_apply) {
  auto r = rule("free-only", control::limit_algorithm::fixed_window, 1, 60s);
  r.tiers = {"free"};
  auto cfg = with_rules({r});
  rule_set rs(cfg);
  EXPECT_TRUE(rs.admit(facts("1.1.1.1", "gold"), 0s).allowed);
  EXPECT_TRUE(rs.admit(facts("1.1.1.1", "gold"), 0s).allowed);
  EXPECT_TRUE(rs.admit(facts("1.1.1.1", "free"), 0s).allowed);
  EXPECT_FALSE(rs.admit(facts("1.1.1.1", "free"), 0s).allowed);
}

TEST(rule_set, shadow_rules_count_but_let_through) {
  auto r = rule("watch", control::limit_algorithm::fixed_window, 1, 60s);
  r.shadow = true;
  auto cfg = with_rules({r});
  rule_set rs(cfg);
  EXPECT_TRUE(rs.admit(facts("1.1.1.1"), 0s).shadow_refusals.empty());
  const auto second = rs.admit(facts("1.1.1.1"), 0s);
  EXPECT_TRUE(second.allowed);
  ASSERT_EQ(second.shadow_refusals.size(), 1u);
  EXPECT_EQ(second.shadow_refusals[0], "watch");
}

TEST(rule_set, concurrency_slots_come_back_on_release) {
  auto cfg = with_rules({rule("parallel", control::limit_algorithm::concurrency, 2, 0s)});
  rule_set rs(cfg);
  auto a = rs.admit(facts("1.1.1.1"), 0s);
  auto b = rs.admit(facts("1.1.1.1"), 0s);
  ASSERT_TRUE(a.allowed && b.allowed);
  EXPECT_FALSE(rs.admit(facts("1.1.1.1"), 0s).allowed);
  rs.release(a);
  auto c = rs.admit(facts("1.1.1.1"), 0s);
  EXPECT_TRUE(c.allowed);
  rs.release(b);
  rs.release(c);
  EXPECT_EQ(rs.tracked_keys(0), 0u); // nothing held, nothing kept
}

TEST(rule_set, token_rules_are_settled_to_the_real_usage) {
  auto r = rule("tpm", control::limit_algorithm::token_bucket, 1000, 60s);
  r.cost_tokens = true;
  auto cfg = with_rules({r});
  rule_set rs(cfg);
  auto f = facts("1.1.1.1");
  f.token_cost = 600;
  auto a = rs.admit(f, 0s);
  ASSERT_TRUE(a.allowed);
  EXPECT_FALSE(rs.admit(f, 0s).allowed); // 400 left
  rs.settle_tokens(a, 100, 0s);          // it used only 100: 500 come back
  EXPECT_TRUE(rs.admit(f, 0s).allowed);
  f.token_cost = 1001;
  EXPECT_EQ(rs.admit(f, 0s).refusal.retry_after, k_never);
}

TEST(rule_set, a_refund_takes_back_what_every_algorithm_counted) {
  using algo = control::limit_algorithm;
  for (const auto a : {algo::fixed_window, algo::sliding_window, algo::sliding_log, algo::token_bucket, algo::gcra,
                       algo::leaky_bucket}) {
    auto cfg = with_rules({rule("r", a, 2, 60s)});
    rule_set rs(cfg);
    const auto f = facts("1.1.1.1");
    const auto first = rs.admit(f, 1s);
    ASSERT_TRUE(first.allowed);
    rs.refund(first, 1s);
    EXPECT_TRUE(rs.admit(f, 1s).allowed) << static_cast<int>(a);
    EXPECT_TRUE(rs.admit(f, 1s).allowed) << "the refunded request left both places: " << static_cast<int>(a);
    EXPECT_FALSE(rs.admit(f, 1s).allowed) << static_cast<int>(a);
  }
}

TEST(rule_set, the_body_is_needed_only_by_token_costs_and_model_keys) {
  EXPECT_FALSE(rule_set(with_rules({})).needs_body());
  EXPECT_FALSE(rule_set(with_rules({rule("ip", control::limit_algorithm::gcra, 5, 1s, {"client_ip", "header:x-team"}),
                                    rule("c", control::limit_algorithm::concurrency, 2, 0s, {"api_key"})}))
                   .needs_body());
  EXPECT_TRUE(
      rule_set(with_rules({rule("m", control::limit_algorithm::gcra, 5, 1s, {"api_key", "model"})})).needs_body());
  auto tokens = rule("t", control::limit_algorithm::token_bucket, 1000, 60s);
  tokens.cost_tokens = true;
  EXPECT_TRUE(rule_set(with_rules({rule("ip", control::limit_algorithm::gcra, 5, 1s), tokens})).needs_body());
}

TEST(rule_set, a_flood_of_new_keys_shares_one_overflow_bucket_when_none_is_idle) {
  auto cfg = with_rules({rule("per-ip", control::limit_algorithm::fixed_window, 2, 60s)}, 64); // 1 key per shard
  rule_set rs(cfg);
  std::size_t admitted = 0;
  std::vector<std::string> ips;
  for (int i = 0; i < 2000; ++i) ips.push_back("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256));
  for (const auto& ip : ips) admitted += rs.admit(facts(ip), 1s).allowed ? 1 : 0;
  EXPECT_LE(rs.tracked_keys(0), 128u); // bounded: one key and the overflow bucket per shard
  EXPECT_GT(rs.overflowed(0), 0u);
  EXPECT_LT(admitted, 2000u / 4); // fresh keys did not buy fresh quota
  // A window later every key is idle again and can be evicted for new ones.
  EXPECT_TRUE(rs.admit(facts("192.168.0.1"), 61s).allowed);
}

TEST(rule_set, schedules_change_the_limit_by_local_time_of_day) {
  // The seed: 50/minute by day, 200/minute at night, in Asia/Shanghai (UTC+8).
  auto r = rule("day-night", control::limit_algorithm::fixed_window, 50, 60s);
  r.schedule = {{22 * 60, 8 * 60, 200, 200}};
  r.timezone = "Asia/Shanghai";
  auto cfg = with_rules({r});
  rule_set rs(cfg);
  using std::chrono::system_clock;
  const auto day = system_clock::time_point{} + std::chrono::hours(24 * 20000 + 4);    // 12:00 in Shanghai
  const auto night = system_clock::time_point{} + std::chrono::hours(24 * 20000 + 16); // 00:00 in Shanghai
  auto count_admitted = [&](system_clock::time_point wall, std::string_view ip) {
    int n = 0;
    auto f = facts(ip);
    f.wall = wall;
    while (rs.admit(f, 1s).allowed && n < 1000) ++n;
    return n;
  };
  EXPECT_EQ(count_admitted(day, "1.1.1.1"), 50);
  EXPECT_EQ(count_admitted(night, "2.2.2.2"), 200);
}

TEST(rule_set, sweeping_drops_idle_keys_only) {
  auto cfg = with_rules({rule("per-ip", control::limit_algorithm::token_bucket, 10, 1s)});
  rule_set rs(cfg);
  for (int i = 0; i < 100; ++i) (void)rs.admit(facts("10.0.0." + std::to_string(i)), 0s);
  (void)rs.admit(facts("10.0.1.1"), 950ms); // not refilled by 1 s
  EXPECT_EQ(rs.tracked_keys(0), 101u);
  EXPECT_EQ(rs.sweep(1s), 100u); // refilled: as good as new
  EXPECT_EQ(rs.tracked_keys(0), 1u);
  EXPECT_EQ(rs.sweep(2s), 1u);
}

TEST(rule_set, keys_from_headers_routes_and_global) {
  control::rule_config r;
  r.key = {"header:x-team", "route"};
  request_facts f = facts("1.1.1.1");
  f.header = [](std::string_view name) { return name == "x-team" ? std::string_view("blue") : std::string_view(); };
  EXPECT_EQ(rule_set::key_for(r, f), "blue\x1f/v1/chat/completions");
  r.key = {"global"};
  EXPECT_EQ(rule_set::key_for(r, f), "");
  r.key = {"api_key"};
  f.caller = "team-a";
  EXPECT_EQ(rule_set::key_for(r, f), "team-a");
}

TEST(rule_set, slots_taken_in_the_overflow_bucket_come_back) {
  // One key per shard: a second key in the same shard lands in the overflow bucket.
  auto cfg = with_rules({rule("parallel", control::limit_algorithm::concurrency, 1, 0s)}, 64);
  rule_set rs(cfg);
  auto shard = [](const std::string& k) { return std::hash<std::string_view>{}(k) % 64; };
  std::vector<std::string> same;
  for (int i = 0; same.size() < 3; ++i) {
    const auto ip = "10.9." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    if (same.empty() || shard(ip) == shard(same[0])) same.push_back(ip);
  }
  auto held = rs.admit(facts(same[0]), 0s); // the shard's one key, kept busy
  ASSERT_TRUE(held.allowed);
  for (int round = 0; round < 5; ++round) {
    auto a = rs.admit(facts(same[1]), 0s); // overflow bucket
    ASSERT_TRUE(a.allowed) << "round " << round;
    EXPECT_FALSE(rs.admit(facts(same[2]), 0s).allowed); // shares it: full
    rs.release(a);
  }
  rs.release(held);
}

TEST(rule_set, a_changed_limit_applies_to_what_is_already_counted) {
  using a = control::limit_algorithm;
  for (const auto algo : {a::fixed_window, a::sliding_window, a::sliding_log}) {
    auto before = with_rules({rule("hourly", algo, 5, 1h), rule("other", a::concurrency, 1, 0s)});
    rule_set old_set(before);
    const auto t = 1000h;
    for (int i = 0; i < 4; ++i) {
      const auto a = old_set.admit(facts("10.0.0.1"), t);
      ASSERT_TRUE(a.allowed);
      old_set.release(a); // its "other" slot back; the hourly count stays
    }
    const auto held = old_set.admit(facts("10.0.0.2"), t); // holds "other" for 10.0.0.2
    ASSERT_TRUE(held.allowed);

    auto lower = before;
    lower.limits.rules[0].count = lower.limits.rules[0].burst = 3;
    rule_set lowered(lower, &old_set);
    const auto refused = lowered.admit(facts("10.0.0.1"), t);
    EXPECT_FALSE(refused.allowed) << "4 counted against 3: refused";
    EXPECT_EQ(refused.refused_by->name, "hourly");

    auto higher = before;
    higher.limits.rules[0].count = higher.limits.rules[0].burst = 12;
    rule_set raised(higher, &lowered);
    int more = 0;
    for (; more < 20; ++more) {
      const auto a = raised.admit(facts("10.0.0.1"), t);
      if (!a.allowed) break;
      raised.release(a);
    }
    EXPECT_EQ(more, 8) << "4 counted against 12: 8 more";

    // A slot taken in the old set and given back there is free in the new one.
    EXPECT_FALSE(raised.admit(facts("10.0.0.2"), t).allowed);
    old_set.release(held);
    EXPECT_TRUE(raised.admit(facts("10.0.0.2"), t).allowed);
  }
}

TEST(rule_set, a_rule_whose_key_or_algorithm_changed_starts_afresh) {
  using a = control::limit_algorithm;
  auto before = with_rules({rule("r", a::fixed_window, 2, 1h)});
  rule_set old_set(before);
  const auto t = 1000h;
  ASSERT_TRUE(old_set.admit(facts("10.0.0.1"), t).allowed);
  ASSERT_TRUE(old_set.admit(facts("10.0.0.1"), t).allowed);
  ASSERT_FALSE(old_set.admit(facts("10.0.0.1"), t).allowed);
  auto other_algo = with_rules({rule("r", a::sliding_log, 2, 1h)});
  EXPECT_TRUE(rule_set(other_algo, &old_set).admit(facts("10.0.0.1"), t).allowed);
  auto renamed = with_rules({rule("r2", a::fixed_window, 2, 1h)});
  EXPECT_TRUE(rule_set(renamed, &old_set).admit(facts("10.0.0.1"), t).allowed);
}

TEST(format_reset, writes_durations_as_openai_does) {
  EXPECT_EQ(format_reset(20ms), "20ms");
  EXPECT_EQ(format_reset(1s), "1s");
  EXPECT_EQ(format_reset(1500ms), "1.5s");
  EXPECT_EQ(format_reset(360s), "6m0s");
  EXPECT_EQ(format_reset(3723s), "1h2m3s");
  EXPECT_EQ(format_reset(nanos{1}), "1ms");
  EXPECT_EQ(format_reset(0s), "0s");
}

} // namespace
} // namespace llmgate::limit
