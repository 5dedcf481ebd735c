#pragma once
// The one metrics registry of a process, exposed in Prometheus text format.
// Families are created at start-up; a series (one set of label values) is
// looked up once and its reference kept by the caller on hot paths. All
// operations are thread-safe; updates are lock-free atomics.
//
// Counters and histograms are sharded (observe/per_worker.hpp): each worker
// thread adds to cells of its own, on cache lines no other worker writes,
// and a read sums the shards; a proxied request updates a dozen.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "observe/per_worker.hpp"

namespace llmgate::observe {

class counter final {
public:
  void inc(std::uint64_t n = 1) noexcept { cells_[detail::this_shard].value.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept {
    std::uint64_t total = 0;
    for (const auto& c : cells_) total += c.value.load(std::memory_order_relaxed);
    return total;
  }

private:
  struct alignas(k_line) cell {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<cell, k_shards> cells_;
};

class gauge final {
public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double v) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0};
};

class histogram final {
public:
  explicit histogram(const std::vector<double>& bounds);
  void observe(double v) noexcept;
  [[nodiscard]] const std::vector<double>& bounds() const noexcept { return bounds_; }
  // Non-cumulative count of bucket i (i == bounds().size() is +Inf).
  [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept;
  [[nodiscard]] std::uint64_t count() const noexcept;
  [[nodiscard]] double sum() const noexcept;

private:
  // A shard: its sum, then a count for each bucket, padded to whole cache lines.
  struct alignas(k_line) line {
    std::atomic<std::uint64_t> words[k_line / sizeof(std::uint64_t)];
  };
  [[nodiscard]] std::atomic<std::uint64_t>& sum_of(std::size_t shard) const noexcept;
  [[nodiscard]] std::atomic<std::uint64_t>& count_of(std::size_t shard, std::size_t bucket) const noexcept;

  const std::vector<double>& bounds_;
  std::size_t lines_per_shard_;
  std::unique_ptr<line[]> lines_;
};

enum class metric_type { counter, gauge, histogram };

// A named metric with fixed label names; with(values...) returns the series.
template <class Series> class family final {
public:
  family(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // Returns the series for these label values (created on first use). The
  // reference stays valid for the registry's lifetime. A series that exists
  // is found without copying the values (strings are made only to add one).
  Series& with(const std::vector<std::string>& values);
  Series& with(std::initializer_list<std::string_view> values);

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& help() const noexcept { return help_; }
  [[nodiscard]] const std::vector<std::string>& label_names() const noexcept { return label_names_; }

  // Calls f(label_values, series) for every series, in label order.
  template <class F> void for_each(F&& f) const {
    std::shared_lock lock(mutex_);
    for (const auto& [values, series] : series_) f(values, *series);
  }

private:
  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  // Label values in order, compared as std::vector<std::string>'s operator<
  // does, whichever of the two kinds of lists each side is.
  struct values_less {
    using is_transparent = void;
    template <class A, class B> bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                          [](std::string_view x, std::string_view y) { return x < y; });
    }
  };
  template <class Values> Series& find_or_add(const Values& values);

  mutable std::shared_mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>, values_less> series_;
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

// Buckets for latencies in seconds: 5 ms … 120 s.
[[nodiscard]] std::vector<double> latency_buckets();
// Buckets for token counts: 1 … 128k.
[[nodiscard]] std::vector<double> token_buckets();

class registry final {
public:
  counter_family& counter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  gauge_family& gauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  histogram_family& histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                              std::vector<double> bounds);

  // Prometheus text exposition format 0.0.4.
  [[nodiscard]] std::string expose() const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<counter_family>> counters_;
  std::map<std::string, std::unique_ptr<gauge_family>> gauges_;
  std::map<std::string, std::unique_ptr<histogram_family>> histograms_;
};

} // namespace llmgate::observe
