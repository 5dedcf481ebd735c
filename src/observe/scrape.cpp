#include "observe/scrape.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace llmgate::observe {

namespace {

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

std::optional<double> parse_value(std::string_view v) {
  if (v == "NaN") return std::nan("");
  if (v == "+Inf" || v == "Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  double out = 0;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || ptr != v.data() + v.size()) return std::nullopt;
  return out;
}

// One line: name, optional {labels} (quoted values may hold '}' or escapes), value, optional timestamp.
std::optional<sample> parse_line(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i == line.size() || line[i] == '#') return std::nullopt;
  const auto name_start = i;
  while (i < line.size() && name_char(line[i], i == name_start)) ++i;
  if (i == name_start) return std::nullopt;
  sample s;
  s.name = line.substr(name_start, i - name_start);
  if (i < line.size() && line[i] == '{') {
    const auto labels_start = ++i;
    bool quoted = false;
    for (; i < line.size(); ++i) {
      if (quoted && line[i] == '\\') {
        if (i + 1 < line.size()) ++i; // skip the escaped character (a line may end on the backslash)
        continue;
      }
      if (line[i] == '"') quoted = !quoted;
      if (!quoted && line[i] == '}') break;
    }
    if (i == line.size()) return std::nullopt;
    s.labels = line.substr(labels_start, i - labels_start);
    ++i;
  }
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  auto rest = line.substr(i);
  const auto space = rest.find_first_of(" \t");
  const auto value = parse_value(rest.substr(0, space));
  if (!value) return std::nullopt;
  s.value = *value;
  return s;
}

// Sums (or keeps the largest of) the samples named by the first of `names` present.
struct pick {
  pick(std::vector<std::string_view> n, bool keep_max = false) : names(std::move(n)), max(keep_max) {}
  std::vector<std::string_view> names;
  bool max = false;
  std::optional<double> value;
  std::size_t rank = SIZE_MAX; // which name supplied it (earlier names win)
  void offer(const sample& s) {
    std::size_t r = 0;
    for (auto n : names) {
      if (n == s.name) break;
      ++r;
    }
    if (r == names.size() || r > rank || !std::isfinite(s.value)) return;
    if (r < rank) {
      rank = r;
      value.reset();
    }
    value = !value ? s.value : max ? std::max(*value, s.value) : *value + s.value;
  }
};

} // namespace

void for_each_sample(std::string_view text, const std::function<void(const sample&)>& fn) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (auto s = parse_line(line)) fn(*s);
  }
}

engine_figures read_engine_figures(std::string_view text) {
  pick waiting{{"vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred"}};
  pick running{{"vllm:num_requests_running", "sglang:num_running_reqs", "llamacpp:requests_processing"}};
  // Several model_name series on one engine share one cache: the fullest speaks for it.
  pick kv{
      {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage", "llamacpp:kv_cache_usage_ratio"},
      true};
  for_each_sample(text, [&](const sample& s) {
    waiting.offer(s);
    running.offer(s);
    kv.offer(s);
  });
  return {waiting.value, running.value, kv.value};
}

gpu_figures read_gpu_figures(std::string_view text) {
  pick util{{"DCGM_FI_DEV_GPU_UTIL"}};
  pick used{{"DCGM_FI_DEV_FB_USED"}};
  pick free_mem{{"DCGM_FI_DEV_FB_FREE"}};
  pick temp{{"DCGM_FI_DEV_GPU_TEMP"}, true};
  int gpus = 0;
  for_each_sample(text, [&](const sample& s) {
    if (s.name == "DCGM_FI_DEV_GPU_UTIL" && std::isfinite(s.value)) ++gpus;
    util.offer(s);
    used.offer(s);
    free_mem.offer(s);
    temp.offer(s);
  });
  gpu_figures g{util.value, used.value, free_mem.value, temp.value};
  if (g.util_percent && gpus > 0) *g.util_percent /= gpus;
  return g;
}

} // namespace llmgate::observe
