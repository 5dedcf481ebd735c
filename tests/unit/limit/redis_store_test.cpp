#include "limit/redis_store.hpp"

#include "redis/slot.hpp"

#include <gtest/gtest.h>

namespace llmgate::limit {
namespace {

using namespace std::chrono_literals;

const std::string k_config = R"(backends: [{name: a, url: "http://127.0.0.1:1", models: [m]}]
limits:
  rules:
    - {name: log, key: client_ip, algorithm: sliding_log, limit: 30/minute}
    - {name: tb, key: [api_key, model], algorithm: token_bucket, limit: 5/second, burst: 10, mode: shadow}
    - {name: par, key: global, algorithm: concurrency, limit: 4}
    - {name: smooth, key: client_ip, algorithm: leaky_bucket, limit: 10/second, burst: 5, shape: true, delay: 2, max_wait: 3s}
)";

request_facts facts() {
  return {
      "10.0.0.1", "team-a", "default", "m", "/v1/chat/completions", [](std::string_view) { return std::string_view{}; },
      1};
}

std::vector<std::string> decode_command(const std::string& wire) {
  // A command is a reply-shaped multi-bulk: read it back with the decoder.
  redis::decoder d;
  EXPECT_TRUE(d.feed(wire));
  auto r = d.next();
  std::vector<std::string> out;
  if (r)
    for (const auto& e : r->elements) out.push_back(e.text);
  return out;
}

TEST(redis_store, the_admit_call_carries_every_rule_with_its_key_and_parameters) {
  const auto cfg = control::load_config(k_config, "t.yaml");
  rule_set rules(*cfg);
  const auto plan = rules.plan(facts());
  ASSERT_EQ(plan.size(), 4u);
  const auto args = decode_command(admit_command("abc123", "llmgate:", rules, plan, "req-1", 30s));
  ASSERT_EQ(args.size(), 3u + 4u + 1u + 4u * 8u);
  EXPECT_EQ(args[0], "EVALSHA");
  EXPECT_EQ(args[1], "abc123");
  EXPECT_EQ(args[2], "4");
  EXPECT_EQ(args[3], "llmgate:{10.0.0.1}:log:sliding_log"); // the hash tag holds the caller
  EXPECT_EQ(args[7], "req-1");
  // log: sliding_log, 30 per 60 000 000 µs
  EXPECT_EQ((std::vector<std::string>(args.begin() + 8, args.begin() + 16)),
            (std::vector<std::string>{"sliding_log", "30", "60000000", "30", "1", "0", "0", "0"}));
  // tb: a meter, burst 10, shadow
  EXPECT_EQ(args[16], "meter");
  EXPECT_EQ(args[19], "10");
  EXPECT_EQ(args[23], "1");
  // par: concurrency with a 30 s lease
  EXPECT_EQ(args[24], "concurrency");
  EXPECT_EQ(args[29], "30000000");
  // smooth: the shaper with its delay and max_wait
  EXPECT_EQ(args[32], "shaper");
  EXPECT_EQ(args[37], "2");
  EXPECT_EQ(args[38], "3000000");
}

TEST(redis_store, decoding_the_answer_gives_one_decision_per_rule) {
  const auto cfg = control::load_config(k_config, "t.yaml");
  rule_set rules(*cfg);
  const auto plan = rules.plan(facts());
  redis::reply r;
  r.type = redis::reply::kind::array;
  auto num = [](std::int64_t v) {
    redis::reply e;
    e.type = redis::reply::kind::integer;
    e.integer = v;
    return e;
  };
  r.elements = {num(0), num(1700000000000000)};
  for (std::int64_t v : {1, 29, 60000000, 0, 0, 1, 9, 100000, 0, 0, 0, 0, 0, 1000000, 0, 1, 4, 0, 0, 200000})
    r.elements.push_back(num(v));
  const auto d = decode_admit(r, plan.size(), plan);
  ASSERT_TRUE(d);
  EXPECT_TRUE((*d)[0].allowed);
  EXPECT_EQ((*d)[0].remaining, 29);
  EXPECT_EQ((*d)[0].reset, 60s);
  EXPECT_EQ((*d)[1].limit, 10); // a bucket reports its burst
  EXPECT_FALSE((*d)[2].allowed);
  EXPECT_EQ((*d)[2].retry_after, 1s);
  EXPECT_EQ((*d)[3].delay, 200ms);
  const auto a = rules.assemble(plan, *d);
  EXPECT_FALSE(a.allowed);
  EXPECT_EQ(a.refused_by->name, "par");

  r.elements.pop_back();
  EXPECT_FALSE(decode_admit(r, plan.size(), plan)) << "a reply of the wrong shape is refused";
  r.elements.push_back(num(-1));
  EXPECT_EQ((*decode_admit(r, plan.size(), plan))[3].delay, k_never) << "-1 is never";
}

TEST(redis_store, rules_of_one_caller_share_a_slot_and_groups_follow_the_slots) {
  const auto cfg = control::load_config(k_config, "t.yaml");
  rule_set rules(*cfg);
  const auto plan = rules.plan(facts());
  const auto groups = group_by_slot("llmgate:", rules, plan);
  // log and smooth are keyed by the client's address: one slot; tb (team-a\x1fm) and par (global) elsewhere.
  std::size_t covered = 0;
  for (const auto& g : groups) {
    covered += g.rules.size();
    for (const auto i : g.rules)
      EXPECT_EQ(redis::key_slot(state_key("llmgate:", rules.rule(plan[i].rule), plan[i].key)), g.slot);
  }
  EXPECT_EQ(covered, plan.size());
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].rules, (std::vector<std::size_t>{0, 3})); // log and smooth together, in plan order
  EXPECT_EQ(groups[0].slot, redis::key_slot("10.0.0.1"));
  EXPECT_EQ(groups[2].slot, redis::key_slot("*")); // a global rule's key

  admission a = rules.assemble(plan, std::vector<decision>(plan.size(), decision{true}));
  const auto parts = split_by_slot("llmgate:", rules, a); // tb is a shadow meter: nothing held
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].second.holds.size(), 2u);
  ASSERT_EQ(parts[1].second.holds.size(), 1u);
  EXPECT_EQ(parts[1].second.holds[0].rule, plan[2].rule);
  EXPECT_EQ(parts[1].first, redis::key_slot("*"));
}

TEST(redis_store, an_undo_takes_back_only_what_the_admit_committed) {
  const auto cfg = control::load_config(k_config, "t.yaml");
  rule_set rules(*cfg);
  const auto plan = rules.plan(facts());
  std::vector<decision> verdicts(plan.size(), decision{true});
  verdicts[1].allowed = false; // a shadow refusal: nothing was counted for it
  const auto args = decode_command(undo_command("sha", "p:", rules, plan, verdicts, "req-9", 1234567));
  ASSERT_EQ(args.size(), 3u + 3u + 2u + 3u * 5u);
  EXPECT_EQ(args[2], "3");
  EXPECT_EQ(args[3], "p:{10.0.0.1}:log:sliding_log");
  EXPECT_EQ(args[4], "p:{*}:par:concurrency");
  EXPECT_EQ(args[6], "req-9");
  EXPECT_EQ(args[7], "1234567");
  EXPECT_EQ((std::vector<std::string>(args.begin() + 8, args.begin() + 13)),
            (std::vector<std::string>{"sliding_log", "30", "60000000", "1", "1"}));
  EXPECT_EQ(args[17], "3"); // par was the admit call's third rule
  EXPECT_TRUE(undo_command("sha", "p:", rules, plan, std::vector<decision>(plan.size()), "r", 1).empty());
}

} // namespace
} // namespace llmgate::limit
