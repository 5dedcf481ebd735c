#include "bench/report.hpp"

#include <gtest/gtest.h>

namespace llmgate::bench {
namespace {

TEST(latency_histogram, quantiles_within_one_percent) {
  latency_histogram h;
  for (int i = 1; i <= 1000; ++i) h.add(i * 1e-3); // 1 ms .. 1 s
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_NEAR(h.quantile(0.5), 0.500, 0.005);
  EXPECT_NEAR(h.quantile(0.9), 0.900, 0.009);
  EXPECT_NEAR(h.quantile(0.99), 0.990, 0.010);
  EXPECT_DOUBLE_EQ(h.quantile(1.0), 1.0); // the largest is exact
  EXPECT_DOUBLE_EQ(h.max(), 1.0);
  EXPECT_NEAR(h.mean(), 0.5005, 1e-9);
  EXPECT_EQ(latency_histogram{}.quantile(0.5), 0);
}

TEST(latency_histogram, keeps_microseconds_and_hours) {
  latency_histogram h;
  h.add(20e-6);
  h.add(3600);
  EXPECT_NEAR(h.quantile(0.5), 20e-6, 1e-6);
  EXPECT_NEAR(h.quantile(1.0), 3600, 36);
}

TEST(latency_histogram, merge_is_the_same_as_one_histogram) {
  latency_histogram a, b, both;
  for (int i = 0; i < 500; ++i) {
    a.add(0.01 * (i % 7 + 1));
    b.add(0.2 + 0.001 * i);
    both.add(0.01 * (i % 7 + 1));
    both.add(0.2 + 0.001 * i);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), both.count());
  for (double q : {0.1, 0.5, 0.9, 0.99}) EXPECT_DOUBLE_EQ(a.quantile(q), both.quantile(q));
  EXPECT_DOUBLE_EQ(a.max(), both.max());
}

TEST(report, summary_counts_and_goodput) {
  tally t;
  t.sent = 10;
  t.ok = 8;
  t.met_slo = 6;
  t.rate_limited = 1;
  t.errors = 1;
  t.output_tokens = 800;
  t.met_slo_tokens = 600;
  for (int i = 0; i < 8; ++i) {
    t.ttft.add(i < 6 ? 0.5 : 3.0);
    t.e2e.add(4.0);
  }
  run_description run{"http://x/v1/chat/completions", "closed loop, 2 users", true, "256", "100", {2.0, 0}};
  const auto j = summary_json(run, t, 4.0);
  EXPECT_EQ(j.at("requests").at("sent").as_uint64(), 10u);
  EXPECT_EQ(j.at("requests").at("rate_limited").as_uint64(), 1u);
  EXPECT_DOUBLE_EQ(j.at("throughput").at("requests_per_s").as_double(), 2.0);
  EXPECT_DOUBLE_EQ(j.at("throughput").at("output_tokens_per_s").as_double(), 200.0);
  EXPECT_DOUBLE_EQ(j.at("goodput").at("share_of_ok").as_double(), 0.75);
  EXPECT_DOUBLE_EQ(j.at("goodput").at("requests_per_s").as_double(), 1.5);
  EXPECT_DOUBLE_EQ(j.at("goodput").at("output_tokens_per_s").as_double(), 150.0);
  EXPECT_NEAR(j.at("ttft_ms").at("p50").as_double(), 500, 5);
  EXPECT_NEAR(j.at("ttft_ms").at("max").as_double(), 3000, 1e-6);
  const auto text = format_summary(run, t, 4.0);
  EXPECT_NE(text.find("sent 10  ok 8  429 1"), std::string::npos) << text;
  EXPECT_NE(text.find("75.0% of ok"), std::string::npos) << text;
  EXPECT_NE(text.find("ITL"), std::string::npos);
}

TEST(report, progress_line_has_a_bar_only_for_terminals) {
  progress_snapshot p{10, 8, 7, 1, 0, 700, 2};
  const auto bar = progress_line(p, 2.0, 0.5, true);
  EXPECT_EQ(bar.find("[############............]  50%"), 0u) << bar;
  const auto plain = progress_line(p, 2.0, 0.5, false);
  EXPECT_EQ(plain.find('['), std::string::npos);
  EXPECT_NE(plain.find("3.5 req/s"), std::string::npos) << plain;
  EXPECT_NE(plain.find("350 tok/s"), std::string::npos) << plain;
}

} // namespace
} // namespace llmgate::bench
