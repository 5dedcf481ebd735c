#include "limit/redis_store.hpp"

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
  EXPECT_EQ(args[3], "llmgate:{log:10.0.0.1}:sliding_log"); // the hash tag holds rule and caller
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

} // namespace
} // namespace llmgate::limit
