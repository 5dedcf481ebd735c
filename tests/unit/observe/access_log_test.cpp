#include "observe/access_log.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace llmgate::observe {
namespace {

namespace json = boost::json;

TEST(access_log, one_json_line_with_what_happened) {
  access_record r;
  r.unix_ms = 1764460800123; // 2025-11-30T00:00:00.123Z
  r.request_id = "abc";
  r.client = "10.0.0.1";
  r.key = "team \"a\"";
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.model = "Qwen3-1.7B";
  r.served_model = "Qwen3-0.6B";
  r.backend = "small";
  r.status = 200;
  r.outcome = "degraded";
  r.level = 3;
  r.ttft_ms = 12.34;
  r.duration_ms = 456.7;
  r.prompt_tokens = 11;
  r.completion_tokens = 22;
  const auto line = format_access(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto v = json::parse(line).as_object();
  EXPECT_EQ(v.at("time"), "2025-11-30T00:00:00.123Z");
  EXPECT_EQ(v.at("key"), "team \"a\"") << "escaped, and whole";
  EXPECT_EQ(v.at("served_model"), "Qwen3-0.6B");
  EXPECT_EQ(v.at("status"), 200);
  EXPECT_EQ(v.at("level"), 3);
  EXPECT_EQ(v.at("cache_hit"), false);
  EXPECT_NEAR(v.at("ttft_ms").to_number<double>(), 12.3, 0.05);
  EXPECT_EQ(v.at("completion_tokens"), 22);
  EXPECT_FALSE(v.contains("rule")) << "empty fields are left out";

  access_record refused;
  refused.status = 429;
  refused.outcome = "rate_limited";
  refused.rule = "per-ip";
  const auto w = json::parse(format_access(refused)).as_object();
  EXPECT_EQ(w.at("rule"), "per-ip");
  EXPECT_FALSE(w.contains("ttft_ms"));
  EXPECT_FALSE(w.contains("prompt_tokens")) << "unknown counts are left out";
}

} // namespace
} // namespace llmgate::observe
