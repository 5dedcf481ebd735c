#pragma once
// Reading other servers' Prometheus text exposition: the samples of a
// scrape, and the figures llmgate uses from a model server (vLLM, SGLang,
// llama.cpp) and from NVIDIA's DCGM exporter. Pure. The text format is read
// by hand: Debian's Prometheus client libraries write it but none parses it.
#include <functional>
#include <optional>
#include <string_view>

namespace llmgate::observe {

struct sample {
  std::string_view name;
  std::string_view labels; // between the braces, unparsed; empty when none
  double value = 0;
};

// Calls fn for every well-formed sample line; comments, blank and malformed lines are skipped.
void for_each_sample(std::string_view text, const std::function<void(const sample&)>& fn);

// A model server's load, summed over its label sets (vLLM reports one per model).
struct engine_figures {
  std::optional<double> waiting;  // requests queued in the engine
  std::optional<double> running;  // requests in the running batch
  std::optional<double> kv_usage; // KV cache in use, 0..1
};
[[nodiscard]] engine_figures read_engine_figures(std::string_view text);

// A node's GPUs: mean utilisation, memory used summed, hottest temperature.
struct gpu_figures {
  std::optional<double> util_percent;
  std::optional<double> memory_used_mib;
  std::optional<double> memory_free_mib;
  std::optional<double> temperature_c;
};
[[nodiscard]] gpu_figures read_gpu_figures(std::string_view text);

} // namespace llmgate::observe
