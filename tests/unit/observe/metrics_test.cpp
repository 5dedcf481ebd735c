#include "observe/metrics.hpp"

#include <gtest/gtest.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace llmgate::observe {
namespace {

bool has_line(const std::string& text, std::string_view line) {
  const std::string needle = std::string(line) + "\n";
  return text.starts_with(needle) || text.find("\n" + needle) != std::string::npos;
}

TEST(metrics, counter_counts) {
  registry reg;
  auto& fam = reg.counter("llmgate_requests_total", "Requests received.", {"model", "code"});
  auto& s = fam.with({"m", "200"});
  EXPECT_EQ(s.value(), 0u);
  s.inc();
  s.inc(4);
  EXPECT_EQ(s.value(), 5u);
  EXPECT_EQ(&fam.with({"m", "200"}), &s); // the same series
  EXPECT_EQ(fam.with({"m", "500"}).value(), 0u);
  EXPECT_EQ(&reg.counter("llmgate_requests_total", "Requests received.", {"model", "code"}), &fam);
}

TEST(metrics, a_series_is_the_same_whichever_way_its_values_are_given) {
  // Found by views (no copy) or by strings, one series per list of values,
  // exposed in the order of the values as strings ("a" < "a\x01" < "ab" < "b").
  registry reg;
  auto& fam = reg.counter("v_total", "V.", {"x", "y"});
  const std::string y = "2";
  auto& by_strings = fam.with(std::vector<std::string>{"ab", "2"});
  EXPECT_EQ(&fam.with({std::string_view("ab"), std::string_view(y)}), &by_strings);
  fam.with({"b", "1"}).inc(4);
  fam.with({"a", "1"}).inc(1);
  fam.with({std::string_view("a\x01", 2), "1"}).inc(2);
  by_strings.inc(3);
  EXPECT_EQ(fam.with(std::vector<std::string>{"b", "1"}).value(), 4u);
  std::vector<std::string> order;
  fam.for_each([&](const std::vector<std::string>& values, const counter& c) {
    order.push_back(values[0] + "=" + std::to_string(c.value()));
  });
  EXPECT_EQ(order, (std::vector<std::string>{"a=1", std::string("a\x01=2"), "ab=3", "b=4"}));
}

TEST(metrics, wrong_number_of_label_values_throws) {
  registry reg;
  auto& fam = reg.counter("c_total", "C.", {"a", "b"});
  EXPECT_THROW((void)fam.with({"only-one"}), std::logic_error);
}

TEST(metrics, gauge_sets_and_adds) {
  registry reg;
  auto& g = reg.gauge("g", "G.").with(std::vector<std::string>{});
  g.set(2.5);
  g.add(-1);
  EXPECT_DOUBLE_EQ(g.value(), 1.5);
  g.add(0.25);
  EXPECT_DOUBLE_EQ(g.value(), 1.75);
}

TEST(metrics, histogram_buckets_are_upper_inclusive) {
  const std::vector<double> bounds = {0.5, 1, 2.5};
  histogram h(bounds);
  h.observe(0.25);
  h.observe(0.5); // le="0.5" includes 0.5
  h.observe(1);
  h.observe(3);
  EXPECT_EQ(h.bucket(0), 2u);
  EXPECT_EQ(h.bucket(1), 1u);
  EXPECT_EQ(h.bucket(2), 0u);
  EXPECT_EQ(h.bucket(3), 1u); // +Inf
  EXPECT_EQ(h.count(), 4u);
  EXPECT_DOUBLE_EQ(h.sum(), 4.75);
}

TEST(metrics, exposition_has_help_type_and_samples) {
  registry reg;
  reg.counter("b_total", "B things.", {"path"}).with({"/v1/chat"}).inc(3);
  reg.gauge("a_gauge", "A gauge.").with(std::vector<std::string>{}).set(1.5);
  const auto text = reg.expose();
  EXPECT_TRUE(has_line(text, "# HELP a_gauge A gauge.")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE a_gauge gauge")) << text;
  EXPECT_TRUE(has_line(text, "a_gauge 1.5")) << text;
  EXPECT_TRUE(has_line(text, "# HELP b_total B things.")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE b_total counter")) << text;
  EXPECT_TRUE(has_line(text, R"(b_total{path="/v1/chat"} 3)")) << text;
  // Families sorted by name, HELP before TYPE before samples.
  EXPECT_LT(text.find("# HELP a_gauge"), text.find("# TYPE a_gauge"));
  EXPECT_LT(text.find("# TYPE a_gauge"), text.find("a_gauge 1.5"));
  EXPECT_LT(text.find("a_gauge 1.5"), text.find("# HELP b_total"));
  EXPECT_TRUE(text.ends_with("\n"));
}

TEST(metrics, label_values_are_escaped) {
  registry reg;
  reg.counter("e_total", "E.", {"v"}).with({"a\"b\\c\nd"}).inc();
  const auto text = reg.expose();
  EXPECT_TRUE(has_line(text, R"(e_total{v="a\"b\\c\nd"} 1)")) << text;
}

TEST(metrics, histogram_exposition_is_cumulative) {
  registry reg;
  auto& h = reg.histogram("c_seconds", "C latency.", {"model"}, {0.5, 1, 2.5}).with({"m"});
  for (const double v : {0.25, 0.75, 2.0, 10.0}) h.observe(v);
  const auto text = reg.expose();
  EXPECT_TRUE(has_line(text, "# TYPE c_seconds histogram")) << text;
  EXPECT_TRUE(has_line(text, R"(c_seconds_bucket{model="m",le="0.5"} 1)")) << text;
  EXPECT_TRUE(has_line(text, R"(c_seconds_bucket{model="m",le="1"} 2)")) << text;
  EXPECT_TRUE(has_line(text, R"(c_seconds_bucket{model="m",le="2.5"} 3)")) << text;
  EXPECT_TRUE(has_line(text, R"(c_seconds_bucket{model="m",le="+Inf"} 4)")) << text;
  EXPECT_TRUE(has_line(text, R"(c_seconds_sum{model="m"} 13)")) << text;
  EXPECT_TRUE(has_line(text, R"(c_seconds_count{model="m"} 4)")) << text;
}

TEST(metrics, histogram_without_labels) {
  registry reg;
  reg.histogram("d_tokens", "D.", {}, {8}).with(std::vector<std::string>{}).observe(3);
  const auto text = reg.expose();
  EXPECT_TRUE(has_line(text, R"(d_tokens_bucket{le="8"} 1)")) << text;
  EXPECT_TRUE(has_line(text, R"(d_tokens_bucket{le="+Inf"} 1)")) << text;
  EXPECT_TRUE(has_line(text, "d_tokens_sum 3")) << text;
  EXPECT_TRUE(has_line(text, "d_tokens_count 1")) << text;
}

TEST(metrics, standard_buckets_are_sorted) {
  for (const auto& bounds : {latency_buckets(), token_buckets()}) {
    ASSERT_FALSE(bounds.empty());
    for (std::size_t i = 1; i < bounds.size(); ++i) EXPECT_LT(bounds[i - 1], bounds[i]);
  }
}

// Counters and histograms keep a cell per worker shard (set_shard): the
// threads here take shards of their own, one shares a shard with another
// (more workers than shards) and one is no worker (shard 0); reads sum them.
TEST(metrics, concurrent_updates_sum_exactly) {
  constexpr int k_threads = static_cast<int>(k_shards) + 1;
  constexpr int k_per_thread = 50'000;
  registry reg;
  auto& fam = reg.counter("t_total", "T.", {"k"});
  auto& shared = fam.with({"shared"});
  auto& g = reg.gauge("t_gauge", "T.").with(std::vector<std::string>{});
  auto& h = reg.histogram("t_hist", "T.", {}, {1}).with(std::vector<std::string>{});
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t)
    threads.emplace_back([&, t] {
      if (t > 0) set_shard(static_cast<std::size_t>(t - 1)); // the last two share one
      for (int i = 0; i < k_per_thread; ++i) {
        shared.inc();
        if (i % 10 == 0) fam.with({"looked-up"}).inc(); // concurrent series lookup
        g.add(1);
        h.observe(i % 2 ? 2.0 : 0.5);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(shared.value(), static_cast<std::uint64_t>(k_threads) * k_per_thread);
  EXPECT_EQ(fam.with({"looked-up"}).value(), static_cast<std::uint64_t>(k_threads) * k_per_thread / 10);
  EXPECT_DOUBLE_EQ(g.value(), static_cast<double>(k_threads) * k_per_thread);
  EXPECT_EQ(h.count(), static_cast<std::uint64_t>(k_threads) * k_per_thread);
  EXPECT_EQ(h.bucket(0), static_cast<std::uint64_t>(k_threads) * k_per_thread / 2) << "0.5: in the bucket up to 1";
  EXPECT_EQ(h.bucket(1), static_cast<std::uint64_t>(k_threads) * k_per_thread / 2) << "2.0: in +Inf";
  EXPECT_DOUBLE_EQ(h.sum(), 1.25 * k_threads * k_per_thread);
}

} // namespace
} // namespace llmgate::observe
