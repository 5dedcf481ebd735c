#include "limit/concurrency.hpp"
#include "limit/rate_parse.hpp"

#include <gtest/gtest.h>

namespace llmgate::limit {
namespace {

using namespace std::chrono_literals;

TEST(parse_rate, reads_the_seed_and_slowapi_forms) {
  EXPECT_EQ(parse_rate("30/minute")->count, 30);
  EXPECT_EQ(parse_rate("30/minute")->period, 60s);
  EXPECT_EQ(parse_rate("5/second")->period, 1s);
  EXPECT_EQ(parse_rate("100000/hour")->period, 3600s);
  EXPECT_EQ(parse_rate("1000/day")->period, 86400s);
  EXPECT_EQ(parse_rate("10 / 30s")->period, 30s);
  EXPECT_EQ(parse_rate("10/250ms")->period, 250ms);
  EXPECT_FALSE(parse_rate("0/minute"));
  EXPECT_FALSE(parse_rate("-3/minute"));
  EXPECT_FALSE(parse_rate("30"));
  EXPECT_FALSE(parse_rate("30/fortnight"));
  EXPECT_FALSE(parse_rate("x/minute"));
  EXPECT_EQ(format_rate(*parse_rate("30/minute")), "30/minute");
  EXPECT_EQ(format_rate(*parse_rate("10/30s")), "10/30s");
}

TEST(concurrency, holds_at_most_the_limit_and_releases) {
  const concurrency::params p{2};
  concurrency::state s;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(concurrency::check(p, s, 0s).allowed);
    concurrency::commit(p, s, 0s);
  }
  const auto d = concurrency::check(p, s, 0s);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, concurrency::k_retry_hint);
  concurrency::release(p, s);
  EXPECT_TRUE(concurrency::check(p, s, 0s).allowed);
  concurrency::release(p, s);
  concurrency::release(p, s); // a double release never goes negative
  EXPECT_TRUE(concurrency::idle(p, s, 0s));
  EXPECT_EQ(concurrency::check(p, s, 0s, 3).retry_after, k_never);
}

} // namespace
} // namespace llmgate::limit
