#include "observe/scrape.hpp"

#include <cmath>
#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::observe {
namespace {

struct seen {
  std::string name;
  std::string labels;
  double value = 0;
};

std::vector<seen> samples_of(std::string_view text) {
  std::vector<seen> out;
  for_each_sample(text, [&](const sample& s) { out.push_back({std::string(s.name), std::string(s.labels), s.value}); });
  return out;
}

std::string with_crlf(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// The value, failing the test when there is none.
double value_of(const std::optional<double>& v) {
  if (!v) {
    ADD_FAILURE() << "no value";
    return -1;
  }
  return *v;
}

// The exposition format's corner cases, after the Prometheus documentation's example.
const std::string k_exposition = R"exp(# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e6
odd_label{le="}",x="a\"}b"} 2

metric_without_timestamp_and_labels 12.47
nan_metric NaN
histogram_bucket{le="+Inf"} +Inf
negative_inf -Inf
broken_labels{a="b" 5
no_value
bad_value{a="b"} abc
{a="b"} 3
9_starts_with_a_digit 1
last_line_without_newline 9)exp";

TEST(for_each_sample, reads_names_labels_and_values) {
  const auto s = samples_of(k_exposition);
  ASSERT_EQ(s.size(), 8u);

  EXPECT_EQ(s[0].name, "http_requests_total");
  EXPECT_EQ(s[0].labels, R"(method="post",code="200")");
  EXPECT_EQ(s[0].value, 1027); // the timestamp is not the value

  EXPECT_EQ(s[1].name, "msdos_file_access_time_seconds");
  EXPECT_EQ(s[1].labels, R"(path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\"")");
  EXPECT_DOUBLE_EQ(s[1].value, 1.458255915e6);

  // A '}' inside a quoted value, or after an escaped quote, does not end the label set.
  EXPECT_EQ(s[2].name, "odd_label");
  EXPECT_EQ(s[2].labels, R"(le="}",x="a\"}b")");
  EXPECT_EQ(s[2].value, 2);

  EXPECT_EQ(s[3].name, "metric_without_timestamp_and_labels");
  EXPECT_EQ(s[3].labels, "");
  EXPECT_DOUBLE_EQ(s[3].value, 12.47);

  EXPECT_EQ(s[4].name, "nan_metric");
  EXPECT_TRUE(std::isnan(s[4].value));
  EXPECT_EQ(s[5].name, "histogram_bucket");
  EXPECT_TRUE(std::isinf(s[5].value) && s[5].value > 0);
  EXPECT_EQ(s[6].name, "negative_inf");
  EXPECT_TRUE(std::isinf(s[6].value) && s[6].value < 0);

  // Comments, the blank line and the five malformed lines are skipped; reading goes on after them.
  EXPECT_EQ(s[7].name, "last_line_without_newline");
  EXPECT_EQ(s[7].value, 9);
}

TEST(for_each_sample, crlf_line_ends_read_the_same) {
  const auto lf = samples_of(k_exposition);
  const auto crlf = samples_of(with_crlf(k_exposition));
  ASSERT_EQ(crlf.size(), lf.size());
  for (std::size_t i = 0; i < lf.size(); ++i) {
    EXPECT_EQ(crlf[i].name, lf[i].name) << i;
    EXPECT_EQ(crlf[i].labels, lf[i].labels) << i;
    if (!std::isnan(lf[i].value)) {
      EXPECT_EQ(crlf[i].value, lf[i].value) << i;
    }
  }
}

TEST(for_each_sample, a_line_ending_inside_an_escape_is_skipped_not_overrun) {
  std::vector<seen> got;
  EXPECT_NO_THROW(got = samples_of("ok 1\ntruncated{a=\"b\\"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, "ok");
}

TEST(for_each_sample, empty_and_comment_only_text_has_no_samples) {
  EXPECT_TRUE(samples_of("").empty());
  EXPECT_TRUE(samples_of("\n\n").empty());
  EXPECT_TRUE(samples_of("# HELP x X.\n# TYPE x gauge\n").empty());
}

// What vLLM (V1 engine) serves on /metrics with two models loaded, trimmed.
const std::string k_vllm = R"(# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-1.7B"} 3.0
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-0.6B"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-1.7B"} 4.0
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-0.6B"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-1.7B"} 0.25
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-0.6B"} 0.5
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen3-1.7B"} 12345.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-1.7B"} 17.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-1.7B"} 17.0
)";

TEST(read_engine_figures, sums_queues_over_model_series_and_keeps_the_fullest_cache) {
  const auto f = read_engine_figures(k_vllm);
  EXPECT_DOUBLE_EQ(value_of(f.waiting), 6.0);
  EXPECT_DOUBLE_EQ(value_of(f.running), 4.0);
  EXPECT_DOUBLE_EQ(value_of(f.kv_usage), 0.5); // one cache shared by both: the larger, not the sum
  const auto crlf = read_engine_figures(with_crlf(k_vllm));
  EXPECT_DOUBLE_EQ(value_of(crlf.waiting), 6.0);
}

TEST(read_engine_figures, older_vllm_reports_gpu_cache_usage) {
  const auto f = read_engine_figures(R"(vllm:num_requests_waiting{model_name="m"} 1
vllm:gpu_cache_usage_perc{model_name="m"} 0.3
)");
  EXPECT_DOUBLE_EQ(value_of(f.kv_usage), 0.3);
  EXPECT_DOUBLE_EQ(value_of(f.waiting), 1.0);
  EXPECT_FALSE(f.running.has_value());
}

TEST(read_engine_figures, the_newer_cache_name_wins_over_the_older_in_either_order) {
  const std::string newer = "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.4\n";
  const std::string older = "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n";
  EXPECT_DOUBLE_EQ(value_of(read_engine_figures(older + newer).kv_usage), 0.4);
  EXPECT_DOUBLE_EQ(value_of(read_engine_figures(newer + older).kv_usage), 0.4);
}

TEST(read_engine_figures, reads_sglang) {
  const auto f = read_engine_figures(R"(# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="Qwen/Qwen3-1.7B"} 5.0
sglang:num_running_reqs{model_name="Qwen/Qwen3-1.7B"} 2.0
sglang:token_usage{model_name="Qwen/Qwen3-1.7B"} 0.61
sglang:gen_throughput{model_name="Qwen/Qwen3-1.7B"} 812.5
)");
  EXPECT_DOUBLE_EQ(value_of(f.waiting), 5.0);
  EXPECT_DOUBLE_EQ(value_of(f.running), 2.0);
  EXPECT_DOUBLE_EQ(value_of(f.kv_usage), 0.61);
}

TEST(read_engine_figures, reads_llama_cpp) {
  const auto f = read_engine_figures(R"(# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 3
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.12
llamacpp:prompt_tokens_total 4096
)");
  EXPECT_DOUBLE_EQ(value_of(f.waiting), 1.0);
  EXPECT_DOUBLE_EQ(value_of(f.running), 3.0);
  EXPECT_DOUBLE_EQ(value_of(f.kv_usage), 0.12);
}

TEST(read_engine_figures, non_finite_samples_do_not_poison_the_sum) {
  const auto f = read_engine_figures(R"(vllm:num_requests_waiting{model_name="a"} NaN
vllm:num_requests_waiting{model_name="b"} 2
vllm:kv_cache_usage_perc{model_name="a"} +Inf
)");
  EXPECT_DOUBLE_EQ(value_of(f.waiting), 2.0);
  EXPECT_FALSE(f.kv_usage.has_value());
}

TEST(read_engine_figures, text_without_engine_metrics_gives_nothing) {
  const std::string_view other = "# HELP process_cpu_seconds_total CPU time.\nprocess_cpu_seconds_total 12\n";
  for (const std::string_view text : {std::string_view{}, other}) {
    const auto f = read_engine_figures(text);
    EXPECT_FALSE(f.waiting.has_value());
    EXPECT_FALSE(f.running.has_value());
    EXPECT_FALSE(f.kv_usage.has_value());
  }
}

// What NVIDIA's dcgm-exporter serves for a node with two GPUs, trimmed.
const std::string k_dcgm = R"(# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1a2b",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="node1"} 80
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-3c4d",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB",Hostname="node1"} 40
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-1a2b",device="nvidia0"} 30000
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-3c4d",device="nvidia1"} 12000
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-1a2b",device="nvidia0"} 51000
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-3c4d",device="nvidia1"} 69000
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-1a2b",device="nvidia0"} 61
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-3c4d",device="nvidia1"} 74
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1a2b",device="nvidia0"} 250.5
)";

TEST(read_gpu_figures, averages_utilisation_sums_memory_and_keeps_the_hottest) {
  const auto g = read_gpu_figures(k_dcgm);
  EXPECT_DOUBLE_EQ(value_of(g.util_percent), 60.0);
  EXPECT_DOUBLE_EQ(value_of(g.memory_used_mib), 42000.0);
  EXPECT_DOUBLE_EQ(value_of(g.memory_free_mib), 120000.0);
  EXPECT_DOUBLE_EQ(value_of(g.temperature_c), 74.0);
}

TEST(read_gpu_figures, empty_text_gives_nothing) {
  const auto g = read_gpu_figures("");
  EXPECT_FALSE(g.util_percent.has_value());
  EXPECT_FALSE(g.memory_used_mib.has_value());
  EXPECT_FALSE(g.memory_free_mib.has_value());
  EXPECT_FALSE(g.temperature_c.has_value());
  // An engine's exposition is not a GPU's.
  EXPECT_FALSE(read_gpu_figures(k_vllm).util_percent.has_value());
}

} // namespace
} // namespace llmgate::observe
