#include "bench/bench_command.hpp"

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <unistd.h>

namespace llmgate::bench {

std::string chat_url(std::string url) {
  const auto scheme = url.find("://");
  const auto path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path == std::string::npos) return url + "/v1/chat/completions";
  const auto tail = std::string_view(url).substr(path);
  if (tail == "/") return url + "v1/chat/completions";
  if (tail == "/v1") return url + "/chat/completions";
  if (tail == "/v1/") return url + "chat/completions";
  return url;
}

int run_command(command_options opts) {
  opts.load.url = chat_url(opts.load.url);
  if (const auto why = validate(opts.load); !why.empty()) {
    fmt::print(stderr, "llmgate bench: {}\n", why);
    return 2;
  }
  const auto& o = opts.load;
  run_description run;
  run.target = o.url;
  run.mode = o.users > 0 ? fmt::format("closed loop, {} users", o.users)
                         : fmt::format("open loop, {} req/s (Poisson arrivals)", o.rate);
  run.stream = o.shape.stream;
  run.prompt_tokens = describe(o.prompt);
  run.output_tokens = describe(o.output);
  run.goal = o.goal;

  // A bar redrawn in place on a terminal; a plain line every 5 s for logs and CI.
  const bool terminal = isatty(STDERR_FILENO) != 0;
  live_counts live;
  const auto started = std::chrono::steady_clock::now();
  auto last_plain = started;
  auto tick = [&] {
    if (opts.quiet) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - started).count();
    const auto snap = live.snapshot();
    double fraction = 0;
    if (o.duration_s > 0)
      fraction = elapsed / o.duration_s;
    else if (o.requests > 0)
      fraction = static_cast<double>(snap.done) / static_cast<double>(o.requests);
    if (terminal) {
      fmt::print(stderr, "\r{}\x1b[K", progress_line(snap, elapsed, fraction, true));
    } else if (now - last_plain >= std::chrono::seconds(5)) {
      last_plain = now;
      fmt::print(stderr, "{}\n", progress_line(snap, elapsed, fraction, false));
    }
    std::fflush(stderr);
  };
  load_result result;
  try {
    result = run_load(o, live, tick, std::chrono::milliseconds(terminal ? 200 : 100));
  } catch (const std::exception& e) {
    fmt::print(stderr, "llmgate bench: cannot reach {}: {}\n", o.url, e.what());
    return 1;
  }
  if (terminal && !opts.quiet) fmt::print(stderr, "\n");
  fmt::print("{}", format_summary(run, result.total, result.seconds));
  std::fflush(stdout);
  if (!opts.json_path.empty()) {
    std::ofstream out(opts.json_path);
    out << boost::json::serialize(summary_json(run, result.total, result.seconds)) << '\n';
    if (!out) {
      fmt::print(stderr, "llmgate bench: cannot write {}\n", opts.json_path);
      return 1;
    }
  }
  return 0;
}

} // namespace llmgate::bench
