#include "degrade/response_cache.hpp"

#include "openai/request_view.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace llmgate::degrade {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string key_of(std::string_view body, std::string_view caller = "") {
  auto view = openai::parse_request(body, openai::endpoint::chat_completions, {}, {.canonical = true});
  if (!view) {
    ADD_FAILURE() << "refused: " << body;
    return {};
  }
  return cache_key(std::move(view->canonical), "Qwen3-1.7B", "/v1/chat/completions", caller);
}

TEST(response_cache, the_key_ignores_field_order_and_what_does_not_change_the_answer) {
  const auto a = key_of(R"({"model":"qwen3-1.7b","temperature":0,"messages":[{"role":"user","content":"hi"}]})");
  const auto b = key_of(R"({"messages":[{"content":"hi","role":"user"}],"temperature":0,"user":"u1","model":"x"})");
  EXPECT_EQ(a, b) << "order, the user field and the name the client used do not matter";
  EXPECT_NE(a, key_of(R"({"model":"m","temperature":0.5,"messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_NE(a, key_of(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi!"}]})"));
  EXPECT_NE(a, key_of(R"({"model":"m","temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_NE(a, key_of(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]})", "team-a"))
      << "scope: key keeps callers apart";
  EXPECT_NE(
      a,
      key_of(R"({"model":"m","temperature":0,"return_reasoning":false,"messages":[{"role":"user","content":"hi"}]})"))
      << "an answer without reasoning is not one with it";
}

TEST(response_cache, entries_expire_are_evicted_in_lru_order_and_respect_levels) {
  response_cache c(2, 1 << 20, 10s);
  c.store("a", {"A", "application/json", "Qwen3-1.7B", 0}, 0s);
  c.store("b", {"B", "application/json", "Qwen3-0.6B", 3}, 0s);
  ASSERT_TRUE(c.find("a", 0, 1s));
  EXPECT_EQ(c.find("a", 0, 1s)->body, "A");
  EXPECT_FALSE(c.find("b", 0, 1s)) << "made at L3: not for a request that would get the full model";
  EXPECT_FALSE(c.find("b", 2, 1s));
  EXPECT_EQ(c.find("b", 3, 1s)->model, "Qwen3-0.6B");
  EXPECT_TRUE(c.find("a", 4, 1s)) << "a better answer is fine for a worse level";
  EXPECT_FALSE(c.store("c", {"C", "application/json", "m", 0}, 2s)) << "new to a full cache: noted, not stored";
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.store("c", {"C", "application/json", "m", 0}, 2s)); // evicts the least recently used: b
  EXPECT_FALSE(c.find("b", 4, 2s));
  EXPECT_TRUE(c.find("a", 0, 2s));
  EXPECT_EQ(c.size(), 2u);
  EXPECT_FALSE(c.find("a", 0, 10s)) << "expired after its ttl";
  EXPECT_EQ(c.size(), 1u);
}

TEST(response_cache, a_degraded_answer_does_not_push_out_a_better_fresh_one) {
  response_cache c(10, 1 << 20, 10s);
  c.store("k", {"full", "t", "Qwen3-1.7B", 0}, 0s);
  c.store("k", {"small", "t", "Qwen3-0.6B", 3}, 1s);
  EXPECT_EQ(c.find("k", 0, 2s)->body, "full");
  c.store("k", {"full again", "t", "Qwen3-1.7B", 0}, 3s);
  EXPECT_EQ(c.find("k", 0, 4s)->body, "full again") << "an equal level replaces";
  c.store("k", {"small", "t", "Qwen3-0.6B", 3}, 20s);
  EXPECT_EQ(c.find("k", 3, 21s)->body, "small") << "an expired better one is replaced";
}

TEST(response_cache, a_byte_bound_holds) {
  response_cache c(1000, 1000, 1h);
  for (int i = 0; i < 50; ++i) // twice each: a request new to a full cache is kept when it comes again
    for (int twice = 0; twice < 2; ++twice) c.store("k" + std::to_string(i), {std::string(100, 'x'), "t", "m", 0}, 0s);
  EXPECT_LE(c.bytes(), 1000u);
  EXPECT_GT(c.size(), 0u);
  EXPECT_TRUE(c.find("k49", 0, 0s)) << "the newest stays";
  c.store("huge", {std::string(5000, 'x'), "t", "m", 0}, 0s);
  EXPECT_FALSE(c.find("huge", 0, 0s)) << "larger than the whole cache: not kept";
  EXPECT_TRUE(c.find("k49", 0, 0s)) << "and nothing was evicted for it";
}

TEST(response_cache, the_same_request_again_replaces_its_entry) {
  // Every answer is stored in the default mode, so a repeated request
  // replaces its entry (in place, for speed): the new answer and its model, its place at the front of
  // the LRU order and its bytes replace the old ones.
  response_cache c(2, 1 << 20, 10s);
  c.store("a", {"first answer", "application/json", "Qwen3-1.7B", 0}, 0s);
  c.store("b", {"B", "application/json", "m", 0}, 0s);
  const auto before = c.bytes();
  c.store("a", {"second, longer answer", "text/event-stream", "Qwen3-0.6B", 0}, 1s);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.bytes(), before + std::string_view("second, longer answer").size() -
                           std::string_view("first answer").size() + std::string_view("text/event-stream").size() -
                           std::string_view("application/json").size() + std::string_view("Qwen3-0.6B").size() -
                           std::string_view("Qwen3-1.7B").size());
  auto e = c.find("a", 0, 2s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body, "second, longer answer");
  EXPECT_EQ(e->content_type, "text/event-stream");
  EXPECT_EQ(e->model, "Qwen3-0.6B");
  c.store("c", {"C", "t", "m", 0}, 3s); // noted (the cache is full) ...
  c.store("c", {"C", "t", "m", 0}, 3s); // ... and now evicts the least recently used: b, since a was stored after it
  EXPECT_TRUE(c.find("a", 0, 3s));
  EXPECT_FALSE(c.find("b", 4, 3s));
  EXPECT_TRUE(c.find("a", 0, 10500ms)) << "the ttl counts from the second store, not the first";
  EXPECT_FALSE(c.find("a", 0, 12s));
  c.store("c", {std::string(100000, 'x'), "t", "m", 0}, 13s);
  c.store("c", {"short", "t", "m", 0}, 13s);
  EXPECT_EQ(c.find("c", 0, 13s)->body, "short");
  EXPECT_EQ(c.bytes(), 1u + 5 + 1 + 1 + response_cache::k_entry_overhead) << "a shrunk answer counts its new size";
}

TEST(response_cache, a_full_cache_turning_over_keeps_every_entry_whole) {
  // Real traffic is mostly distinct requests: the cache is full and each
  // store evicts the oldest entry and writes over its memory when the new
  // one fits. Answers of changing sizes (so some blocks are reused, some
  // not), and every entry still there must read back exactly as stored.
  response_cache c(8, 1 << 20, 1h);
  const auto body_of = [](int i) { return std::string(static_cast<std::size_t>(1 + (i * 37) % 300), 'a' + i % 26); };
  const auto model_of = [](int i) { return i % 3 ? std::string("Qwen3-1.7B") : std::string("Qwen3-0.6B"); };
  std::uint64_t expected_bytes = 0;
  for (int i = 0; i < 200; ++i) {
    const auto key = "request " + std::to_string(i);
    const auto body = body_of(i);
    const auto model = model_of(i);
    const response_cache::entry_view e{body, i % 2 ? "application/json" : "text/event-stream", model, i % 4};
    ASSERT_EQ(c.store(key, e, 0s), i < 8) << "a request new to the full cache is noted";
    if (i >= 8) ASSERT_TRUE(c.store(key, e, 0s)) << "and stored when it comes again";
    ASSERT_EQ(c.size(), std::min(i + 1, 8));
    expected_bytes = 0;
    for (int j = std::max(0, i - 7); j <= i; ++j) {
      const auto e = c.find("request " + std::to_string(j), 4, 0s);
      ASSERT_TRUE(e) << "entry " << j << " after store " << i;
      EXPECT_EQ(e->body, body_of(j));
      EXPECT_EQ(e->content_type, j % 2 ? "application/json" : "text/event-stream");
      EXPECT_EQ(e->model, model_of(j));
      EXPECT_EQ(e->level, j % 4);
      expected_bytes += ("request " + std::to_string(j)).size() + e->body.size() + e->content_type.size() +
                        e->model.size() + response_cache::k_entry_overhead;
    }
    EXPECT_FALSE(c.find("request " + std::to_string(i - 8), 4, 0s)) << "the oldest went";
  }
  EXPECT_EQ(c.bytes(), expected_bytes);
}

TEST(response_cache, a_full_cache_keeps_what_is_asked_again_over_what_is_asked_once) {
  // Most prompts of real traffic are asked once: in a full cache each one
  // stored would push out an answer that is asked again (and cost an
  // eviction and a block written). A new key displaces an entry only on its
  // second store.
  response_cache c(2, 1 << 20, 1h);
  EXPECT_TRUE(c.store("a", {"A", "t", "m", 0}, 0s)) << "while there is room, every answer is kept";
  EXPECT_TRUE(c.store("b", {"B", "t", "m", 0}, 0s));
  for (int i = 0; i < 1000; ++i)
    EXPECT_FALSE(c.store("once " + std::to_string(i), {"x", "t", "m", 0}, 1s)) << "asked once";
  EXPECT_TRUE(c.find("a", 0, 2s)) << "no request asked once pushed out a kept answer";
  EXPECT_TRUE(c.find("b", 0, 2s)); // now b is the most recently used, a the least
  EXPECT_TRUE(c.store("a", {"A2", "t", "m", 0}, 2s)) << "a key in the cache is replaced as before";
  EXPECT_EQ(c.find("a", 0, 2s)->body, "A2");
  EXPECT_FALSE(c.store("again", {"x", "t", "m", 0}, 3s));
  EXPECT_TRUE(c.store("again", {"G", "t", "m", 0}, 3s)) << "asked a second time: kept";
  EXPECT_EQ(c.find("again", 0, 3s)->body, "G");
  EXPECT_FALSE(c.find("b", 0, 3s)) << "in place of the least recently used";
  EXPECT_EQ(c.size(), 2u);

  // The byte bound is a full cache too.
  response_cache small(100, 2 * (1 + 1 + 1 + 1 + response_cache::k_entry_overhead), 1h);
  EXPECT_TRUE(small.store("p", {"P", "t", "m", 0}, 0s));
  EXPECT_TRUE(small.store("q", {"Q", "t", "m", 0}, 0s));
  EXPECT_FALSE(small.store("r", {"R", "t", "m", 0}, 0s));
  EXPECT_TRUE(small.store("r", {"R", "t", "m", 0}, 0s));
  EXPECT_EQ(small.size(), 2u);

  // The doorkeeper is a bounded table: a key offered long ago (many other
  // keys since, each taking the cell its hash picks) is new again.
  EXPECT_FALSE(c.store("long ago", {"x", "t", "m", 0}, 4s));
  for (int i = 0; i < 100000; ++i) c.store("other " + std::to_string(i), {"x", "t", "m", 0}, 4s);
  EXPECT_FALSE(c.store("long ago", {"x", "t", "m", 0}, 4s)) << "forgotten";
}

} // namespace
} // namespace llmgate::degrade
