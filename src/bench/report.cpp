#include "bench/report.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace llmgate::bench {

namespace {

constexpr double k_per_bucket = 100;    // buckets per e-fold: 1% wide
constexpr std::size_t k_buckets = 2400; // e^24 µs ≈ 7.4 hours

std::size_t bucket_of(double seconds) {
  const double us = std::max(0.0, seconds * 1e6);
  const auto i = static_cast<std::size_t>(std::log1p(us) * k_per_bucket);
  return std::min(i, k_buckets - 1);
}

// The geometric middle of bucket i, in seconds.
double middle_of(std::size_t i) { return std::expm1((static_cast<double>(i) + 0.5) / k_per_bucket) / 1e6; }

double share(std::uint64_t part, std::uint64_t whole) {
  return whole ? static_cast<double>(part) / static_cast<double>(whole) : 0;
}

boost::json::object quantiles_ms(const latency_histogram& h) {
  auto ms = [](double s) { return std::round(s * 1e6) / 1e3; };
  return {{"count", h.count()},          {"p50", ms(h.quantile(0.5))}, {"p90", ms(h.quantile(0.9))},
          {"p99", ms(h.quantile(0.99))}, {"mean", ms(h.mean())},       {"max", ms(h.max())}};
}

} // namespace

latency_histogram::latency_histogram() : buckets_(k_buckets, 0) {}

void latency_histogram::add(double seconds) {
  ++buckets_[bucket_of(seconds)];
  ++count_;
  sum_ += seconds;
  max_ = std::max(max_, seconds);
}

void latency_histogram::merge(const latency_histogram& other) {
  for (std::size_t i = 0; i < k_buckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

double latency_histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  // The rank of the q-quantile (nearest-rank), then the bucket that holds it.
  const auto rank = static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_)));
  if (rank >= count_) return max_;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < k_buckets; ++i) {
    seen += buckets_[i];
    if (seen >= std::max<std::uint64_t>(rank, 1)) return std::min(middle_of(i), max_);
  }
  return max_;
}

void tally::merge(const tally& o) {
  sent += o.sent;
  ok += o.ok;
  met_slo += o.met_slo;
  rate_limited += o.rate_limited;
  busy += o.busy;
  other_status += o.other_status;
  errors += o.errors;
  unfinished += o.unfinished;
  output_tokens += o.output_tokens;
  met_slo_tokens += o.met_slo_tokens;
  prompt_tokens += o.prompt_tokens;
  ttft.merge(o.ttft);
  itl.merge(o.itl);
  e2e.merge(o.e2e);
}

std::string format_summary(const run_description& run, const tally& t, double seconds) {
  const double secs = std::max(seconds, 1e-9);
  std::string out;
  auto line = [&out](std::string_view text) {
    out += text;
    out += '\n';
  };
  line(fmt::format("llmgate bench: {} against {}", run.mode, run.target));
  line(fmt::format("  {}, prompt {} tokens, output {} tokens, {:.1f} s", run.stream ? "streaming" : "not streaming",
                   run.prompt_tokens, run.output_tokens, seconds));
  line("");
  line(fmt::format("  requests    sent {}  ok {}  429 {}  503 {}  other status {}  errors {}  unfinished {}", t.sent,
                   t.ok, t.rate_limited, t.busy, t.other_status, t.errors, t.unfinished));
  line(fmt::format("  throughput  {:.1f} req/s ok, {:.0f} output tokens/s", static_cast<double>(t.ok) / secs,
                   static_cast<double>(t.output_tokens) / secs));
  const auto goal = run.goal.e2e_s > 0 ? fmt::format("TTFT <= {}s and E2E <= {}s", run.goal.ttft_s, run.goal.e2e_s)
                                       : fmt::format("TTFT <= {}s", run.goal.ttft_s);
  line(fmt::format("  goodput     {:.1f} req/s met {} ({} requests: {:.1f}% of ok, {:.1f}% of sent)",
                   static_cast<double>(t.met_slo) / secs, goal, t.met_slo, 100 * share(t.met_slo, t.ok),
                   100 * share(t.met_slo, t.sent)));
  line("");
  line(fmt::format("  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}", "ms", "p50", "p90", "p99", "mean", "max",
                   "count"));
  auto row = [&](std::string_view name, const latency_histogram& h) {
    line(fmt::format("  {:<10} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>9}", name, h.quantile(0.5) * 1e3,
                     h.quantile(0.9) * 1e3, h.quantile(0.99) * 1e3, h.mean() * 1e3, h.max() * 1e3, h.count()));
  };
  row("TTFT", t.ttft);
  if (run.stream) row("ITL", t.itl);
  row("E2E", t.e2e);
  return out;
}

boost::json::object summary_json(const run_description& run, const tally& t, double seconds) {
  const double secs = std::max(seconds, 1e-9);
  boost::json::object goal{{"ttft_s", run.goal.ttft_s}};
  if (run.goal.e2e_s > 0) goal["e2e_s"] = run.goal.e2e_s;
  return {
      {"target", run.target},
      {"mode", run.mode},
      {"stream", run.stream},
      {"prompt_tokens", run.prompt_tokens},
      {"output_tokens", run.output_tokens},
      {"seconds", seconds},
      {"requests",
       {{"sent", t.sent},
        {"ok", t.ok},
        {"rate_limited", t.rate_limited},
        {"busy", t.busy},
        {"other_status", t.other_status},
        {"errors", t.errors},
        {"unfinished", t.unfinished}}},
      {"throughput",
       {{"requests_per_s", static_cast<double>(t.ok) / secs},
        {"output_tokens_per_s", static_cast<double>(t.output_tokens) / secs},
        {"output_tokens", t.output_tokens},
        {"prompt_tokens", t.prompt_tokens}}},
      {"goodput",
       {{"slo", std::move(goal)},
        {"met", t.met_slo},
        {"requests_per_s", static_cast<double>(t.met_slo) / secs},
        {"output_tokens_per_s", static_cast<double>(t.met_slo_tokens) / secs},
        {"share_of_ok", share(t.met_slo, t.ok)},
        {"share_of_sent", share(t.met_slo, t.sent)}}},
      {"ttft_ms", quantiles_ms(t.ttft)},
      {"itl_ms", quantiles_ms(t.itl)},
      {"e2e_ms", quantiles_ms(t.e2e)},
  };
}

std::string progress_line(const progress_snapshot& p, double elapsed_s, double fraction, bool bar) {
  const double secs = std::max(elapsed_s, 1e-9);
  const auto counts =
      fmt::format("{:6.1f}s  sent {}  done {}  ok {}  refused {}  errors {}  in flight {}  {:.1f} req/s  "
                  "{:.0f} tok/s",
                  elapsed_s, p.sent, p.done, p.ok, p.refused, p.errors, p.in_flight, static_cast<double>(p.ok) / secs,
                  static_cast<double>(p.output_tokens) / secs);
  if (!bar) return counts;
  constexpr int k_width = 24;
  const int filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * k_width);
  return fmt::format("[{}{}] {:3.0f}% {}", std::string(static_cast<std::size_t>(filled), '#'),
                     std::string(static_cast<std::size_t>(k_width - filled), '.'), std::clamp(fraction, 0.0, 1.0) * 100,
                     counts);
}

} // namespace llmgate::bench
