#include "observe/metrics.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fmt/format.h>
#include <mutex>
#include <stdexcept>

namespace llmgate::observe {

namespace {
constexpr std::size_t k_words = k_line / sizeof(std::uint64_t);
static_assert(sizeof(double) == sizeof(std::uint64_t));
} // namespace

// Each shard's words: the sum (a double's bits: 0 is 0.0), then bounds.size() + 1 counts.
histogram::histogram(const std::vector<double>& bounds)
    : bounds_(bounds), lines_per_shard_((bounds.size() + 2 + k_words - 1) / k_words),
      lines_(std::make_unique<line[]>(lines_per_shard_ * k_shards)) {
  for (std::size_t i = 0; i < lines_per_shard_ * k_shards; ++i)
    for (auto& w : lines_[i].words) w.store(0, std::memory_order_relaxed);
}

std::atomic<std::uint64_t>& histogram::sum_of(std::size_t shard) const noexcept {
  return lines_[shard * lines_per_shard_].words[0];
}

std::atomic<std::uint64_t>& histogram::count_of(std::size_t shard, std::size_t bucket) const noexcept {
  const std::size_t word = bucket + 1;
  return lines_[shard * lines_per_shard_ + word / k_words].words[word % k_words];
}

void histogram::observe(double v) noexcept {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  const auto shard = detail::this_shard;
  count_of(shard, static_cast<std::size_t>(it - bounds_.begin())).fetch_add(1, std::memory_order_relaxed);
  auto& sum = sum_of(shard);
  auto bits = sum.load(std::memory_order_relaxed);
  while (!sum.compare_exchange_weak(bits, std::bit_cast<std::uint64_t>(std::bit_cast<double>(bits) + v),
                                    std::memory_order_relaxed)) {
  }
}

std::uint64_t histogram::bucket(std::size_t i) const noexcept {
  std::uint64_t total = 0;
  for (std::size_t s = 0; s < k_shards; ++s) total += count_of(s, i).load(std::memory_order_relaxed);
  return total;
}

double histogram::sum() const noexcept {
  double total = 0;
  for (std::size_t s = 0; s < k_shards; ++s) total += std::bit_cast<double>(sum_of(s).load(std::memory_order_relaxed));
  return total;
}

std::uint64_t histogram::count() const noexcept {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) total += bucket(i);
  return total;
}

template <class Series> template <class Values> Series& family<Series>::find_or_add(const Values& values) {
  if (values.size() != label_names_.size())
    throw std::logic_error(
        fmt::format("metric {}: {} label values for {} labels", name_, values.size(), label_names_.size()));
  {
    std::shared_lock lock(mutex_);
    if (auto it = series_.find(values); it != series_.end()) return *it->second;
  }
  std::unique_lock lock(mutex_);
  auto it = series_.find(values); // another thread may have added it meanwhile
  if (it == series_.end()) {
    std::unique_ptr<Series> made;
    if constexpr (std::is_same_v<Series, class histogram>)
      made = std::make_unique<Series>(bounds_);
    else
      made = std::make_unique<Series>();
    it = series_.emplace(std::vector<std::string>(values.begin(), values.end()), std::move(made)).first;
  }
  return *it->second;
}

template <class Series> Series& family<Series>::with(const std::vector<std::string>& values) {
  return find_or_add(values);
}

template <class Series> Series& family<Series>::with(std::initializer_list<std::string_view> values) {
  return find_or_add(values);
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120};
}

std::vector<double> token_buckets() {
  return {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072};
}

namespace {

template <class Map, class... Args>
auto& find_or_add(std::mutex& m, Map& map, const std::string& name, Args&&... args) {
  std::lock_guard lock(m);
  auto& slot = map[name];
  if (!slot) slot = std::make_unique<typename Map::mapped_type::element_type>(name, std::forward<Args>(args)...);
  return *slot;
}

void escape_label_value(std::string& out, const std::string& v) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

// {a="x",b="y"} plus an optional extra label (le for histogram buckets).
std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += names[i];
    out += "=\"";
    escape_label_value(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    fmt::format_to(std::back_inserter(out), "{}=\"{}\"", extra_name, extra_value);
  }
  out += '}';
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

void header(std::string& out, const std::string& name, const std::string& help, std::string_view type) {
  fmt::format_to(std::back_inserter(out), "# HELP {} ", name);
  for (char c : help) { // HELP text escapes only backslash and newline
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  fmt::format_to(std::back_inserter(out), "\n# TYPE {} {}\n", name, type);
}

} // namespace

counter_family& registry::counter(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  return find_or_add(mutex_, counters_, name, help, std::move(labels));
}

gauge_family& registry::gauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  return find_or_add(mutex_, gauges_, name, help, std::move(labels));
}

histogram_family& registry::histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                      std::vector<double> bounds) {
  return find_or_add(mutex_, histograms_, name, help, std::move(labels), std::move(bounds));
}

std::string registry::expose() const {
  std::lock_guard lock(mutex_);
  // All families sorted by name, whatever their type.
  std::map<std::string, std::string> blocks;
  for (const auto& entry : counters_) {
    const auto& name = entry.first; // named, not a structured binding: clang 14 (the fuzz build) cannot capture those
    const auto& fam = entry.second;
    std::string out;
    header(out, name, fam->help(), "counter");
    fam->for_each([&](const auto& values, const class counter& c) {
      fmt::format_to(std::back_inserter(out), "{}{} {}\n", name, label_set(fam->label_names(), values), c.value());
    });
    blocks[name] = std::move(out);
  }
  for (const auto& entry : gauges_) {
    const auto& name = entry.first;
    const auto& fam = entry.second;
    std::string out;
    header(out, name, fam->help(), "gauge");
    fam->for_each([&](const auto& values, const class gauge& g) {
      fmt::format_to(std::back_inserter(out), "{}{} {}\n", name, label_set(fam->label_names(), values),
                     number(g.value()));
    });
    blocks[name] = std::move(out);
  }
  for (const auto& entry : histograms_) {
    const auto& name = entry.first;
    const auto& fam = entry.second;
    std::string out;
    header(out, name, fam->help(), "histogram");
    fam->for_each([&](const auto& values, const class histogram& h) {
      std::uint64_t cumulative = 0;
      const auto& bounds = h.bounds();
      for (std::size_t i = 0; i <= bounds.size(); ++i) {
        cumulative += h.bucket(i);
        const std::string le = i < bounds.size() ? number(bounds[i]) : "+Inf";
        fmt::format_to(std::back_inserter(out), "{}_bucket{} {}\n", name,
                       label_set(fam->label_names(), values, "le", le), cumulative);
      }
      const auto labels = label_set(fam->label_names(), values);
      fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n{}_count{} {}\n", name, labels, number(h.sum()), name,
                     labels, cumulative);
    });
    blocks[name] = std::move(out);
  }
  std::string out;
  for (auto& [_, block] : blocks) out += block;
  return out;
}

} // namespace llmgate::observe
