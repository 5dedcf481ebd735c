#include "observe/access_log.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace llmgate::observe {

namespace {

// A string as a JSON string literal (quotes and escapes included).
std::string quoted(std::string_view s) { return boost::json::serialize(boost::json::value(s)); }

} // namespace

std::string format_access(const access_record& r) {
  std::string out;
  out.reserve(384);
  const auto secs = r.unix_ms / 1000;
  const auto ms = r.unix_ms % 1000;
  fmt::format_to(std::back_inserter(out), R"({{"time":"{:%Y-%m-%dT%H:%M:%S}.{:03d}Z")",
                 fmt::gmtime(static_cast<std::time_t>(secs)), static_cast<int>(ms));
  auto field = [&](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    out += ",\"";
    out += name;
    out += "\":";
    out += quoted(value);
  };
  field("request_id", r.request_id);
  field("client", r.client);
  field("key", r.key);
  field("method", r.method);
  field("path", r.path);
  field("model", r.model);
  field("served_model", r.served_model);
  field("backend", r.backend);
  fmt::format_to(std::back_inserter(out), R"(,"status":{})", r.status);
  field("outcome", r.outcome);
  field("rule", r.rule);
  fmt::format_to(std::back_inserter(out), R"(,"level":{},"cache_hit":{})", r.level, r.cache_hit);
  if (r.ttft_ms) fmt::format_to(std::back_inserter(out), R"(,"ttft_ms":{:.1f})", *r.ttft_ms);
  fmt::format_to(std::back_inserter(out), R"(,"duration_ms":{:.1f})", r.duration_ms);
  if (r.prompt_tokens >= 0) fmt::format_to(std::back_inserter(out), R"(,"prompt_tokens":{})", r.prompt_tokens);
  if (r.completion_tokens >= 0)
    fmt::format_to(std::back_inserter(out), R"(,"completion_tokens":{})", r.completion_tokens);
  out += '}';
  return out;
}

access_log::access_log(const std::string& target) {
  if (target == "off") return;
  spdlog::sink_ptr sink;
  if (target == "stdout")
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  else if (target == "stderr")
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  else
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(target); // throws spdlog_ex when it cannot open
  logger_ = std::make_shared<spdlog::logger>("access", std::move(sink));
  logger_->set_pattern("%v");
  logger_->set_level(spdlog::level::info);
  logger_->flush_on(spdlog::level::info); // a line is whole when written (tail -f, log shippers)
}

access_log::~access_log() = default;

void access_log::write(const access_record& r) {
  if (logger_) logger_->info(format_access(r));
}

} // namespace llmgate::observe
