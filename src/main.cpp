// llmgate: serve, check, sim, version.
#include "bench/bench_command.hpp"
#include "control/config.hpp"
#include "control/default_config.hpp"
#include "control/probe.hpp"
#include "observe/metrics.hpp"
#include "server/gateway_server.hpp"
#include "sim/sim_server.hpp"
#include "tokenize/qwen_tokenizer.hpp"

#include <boost/json.hpp>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <csignal>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace {

using namespace llmgate;

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("llmgate");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

void print_problems(const control::config_error& e, const std::string& source) {
  for (const auto& p : e.problems()) {
    std::string where = source;
    if (p.line > 0) where += fmt::format(":{}:{}", p.line, p.column);
    fmt::print(stderr, "{}: {}{}\n", where, p.key.empty() ? "" : p.key + ": ", p.message);
  }
}

int serve(const std::string& path, const std::string& log_level, const std::string& listen) {
  std::vector<std::unique_ptr<sim::sim_server>> sims; // the built-in simulators, when the default config uses them
  std::shared_ptr<const control::config> cfg;
  std::string note;
  try {
    if (!path.empty()) {
      cfg = control::load_config_file(path);
    } else if (control::backend_answers("127.0.0.1", control::k_default_backend_port, std::chrono::seconds(1))) {
      cfg = control::load_config(control::default_config_yaml(), "(embedded default)");
      note = "embedded default: Qwen3-1.7B on http://127.0.0.1:8000";
    } else {
      std::vector<std::uint16_t> ports;
      for (const char* model : {"Qwen3-1.7B", "Qwen3-1.7B", "Qwen3-0.6B"}) {
        sim::sim_options o;
        o.model = model;
        o.port = 0;
        (void)sim::find_profile("default", o.timing);
        o.seed = ports.size() + 1;
        sims.push_back(std::make_unique<sim::sim_server>(o));
        ports.push_back(sims.back()->start());
      }
      cfg = control::load_config(control::simulated_config_yaml(ports[0], ports[1], ports[2]), "(embedded default)");
      note = "no backend answers on 127.0.0.1:8000, so the built-in simulator serves Qwen3-1.7B (2 instances) and "
             "Qwen3-0.6B; answers are simulated (x-llmgate-backend: sim-...)";
    }
  } catch (const control::config_error& e) {
    print_problems(e, path.empty() ? "(embedded default)" : path);
    return 2;
  }
  if (!listen.empty()) {
    auto address = control::parse_host_port(listen);
    if (!address) {
      fmt::print(stderr, "--listen: expected host:port, got '{}'\n", listen);
      return 2;
    }
    auto changed = std::make_shared<control::config>(*cfg);
    changed->listen = *address;
    cfg = std::move(changed);
  }
  spdlog::set_level(spdlog::level::from_str(log_level.empty() ? cfg->log_level : log_level));
  if (!note.empty()) spdlog::warn("{}", note);
  static observe::registry metrics; // outlives every thread that updates it
  server::gateway gw(cfg, metrics, note);
  if (!path.empty())
    gw.set_reload(path, [path, listen, log_level] {
      auto next = control::load_config_file(path);
      if (listen.empty() && log_level.empty()) return next;
      auto changed = std::make_shared<control::config>(*next); // --listen and --log-level hold across reloads
      if (!listen.empty()) changed->listen = *control::parse_host_port(listen);
      if (!log_level.empty()) changed->log_level = log_level;
      return std::shared_ptr<const control::config>(std::move(changed));
    });
  try {
    gw.start();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return gw.run();
}

int check(const std::string& path, bool probe) {
  std::shared_ptr<const control::config> cfg;
  try {
    cfg = control::load_config_file(path);
  } catch (const control::config_error& e) {
    print_problems(e, path);
    fmt::print(stderr, "{}: {} problem(s)\n", path, e.problems().size());
    return 1;
  }
  fmt::print("{}: config OK ({} backend(s), {} model(s))\n", path, cfg->backends.size(), cfg->models.size());
  if (!probe) return 0;
  int failed = 0;
  for (const auto& f : control::probe_backends(*cfg, std::chrono::seconds(3))) {
    fmt::print("{} {}: {}\n", f.ok ? "ok  " : "FAIL", f.backend, f.what);
    failed += f.ok ? 0 : 1;
  }
  if (failed) fmt::print(stderr, "{} probe check(s) failed\n", failed);
  return failed ? 1 : 0;
}

int run_tokenize(const std::string& path, const std::string* text, bool lines, bool timed) {
  std::shared_ptr<const tokenize::qwen_tokenizer> tok;
  try {
    tok = tokenize::qwen_tokenizer::load(path);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  auto print = [&](std::string_view t) {
    const auto start = std::chrono::steady_clock::now();
    const auto ids = tok->encode(t);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    if (timed) // encoding only, not loading: what a request pays
      fmt::print(stderr, "{} bytes, {} tokens, {:.3f} s, {:.2f} MB/s\n", t.size(), ids.size(), took.count(),
                 static_cast<double>(t.size()) / 1e6 / took.count());
    else
      fmt::print("[{}]\n", fmt::join(ids, ","));
  };
  if (text) {
    print(*text);
    return 0;
  }
  std::stringstream all;
  all << std::cin.rdbuf();
  if (!lines) {
    print(all.str());
    return 0;
  }
  // Each line a JSON string, so texts with newlines and any bytes survive the pipe.
  std::string line;
  while (std::getline(all, line)) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_string()) {
      fmt::print(stderr, "--lines: each line must be a JSON string\n");
      return 2;
    }
    print(v.as_string());
  }
  return 0;
}

int run_sim(sim::sim_options opts, const std::string& profile_name) {
  if (!sim::find_profile(profile_name, opts.timing)) {
    fmt::print(stderr, "unknown profile '{}' (instant, slow, default)\n", profile_name);
    return 2;
  }
  // Blocked before the server's thread starts, so that only sigwait below takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  sim::sim_server server(opts);
  std::uint16_t port = 0;
  try {
    port = server.start();
  } catch (const std::exception& e) {
    fmt::print(stderr, "cannot listen on {}:{}: {}\n", opts.host, opts.port, e.what());
    return 1;
  }
  fmt::print("llmgate sim listening on {}:{}\n", opts.host, port);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server.stop();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN); // a peer that closes mid-write is an error code, not the end of the process

  CLI::App app{"llmgate: a rate-limiting, highly available gateway for OpenAI-compatible Qwen3 servers"};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error (default: the config's log_level)");

  std::string config_path;
  auto* serve_cmd = app.add_subcommand("serve", "Run the gateway (no -c: the embedded default)");
  serve_cmd->add_option("-c,--config", config_path, "YAML config file")->check(CLI::ExistingFile);
  std::string listen;
  serve_cmd->add_option("--listen", listen, "host:port, overriding the config's listen");

  bool probe = false;
  auto* check_cmd = app.add_subcommand("check", "Validate a config; --probe also asks every backend");
  check_cmd->add_option("-c,--config", config_path, "YAML config file")->required();
  check_cmd->add_flag("--probe", probe, "connect to every backend: answers? serves the models? exposes metrics?");

  sim::sim_options sim_opts;
  std::string profile = "default";
  double latency_ms = 0;
  auto* sim_cmd = app.add_subcommand("sim", "Run a simulated vLLM server for Qwen3");
  sim_cmd->add_option("--host", sim_opts.host, "address to listen on")->capture_default_str();
  sim_cmd->add_option("--port", sim_opts.port, "port (0: any free port, printed)")->capture_default_str();
  sim_cmd->add_option("--model", sim_opts.model, "served model name")->capture_default_str();
  sim_cmd
      ->add_option("--profile", profile,
                   "instant | slow (a token each 500 ms, no batch limit) | default (Qwen3-1.7B on one L4)")
      ->capture_default_str();
  sim_cmd->add_flag("--reasoning-parser", sim_opts.reasoning_parser,
                    "send thinking in a separate field instead of inline <think>");
  sim_cmd->add_option("--reasoning-field", sim_opts.reasoning_field, "reasoning | reasoning_content")
      ->check(CLI::IsMember({"reasoning", "reasoning_content"}))
      ->capture_default_str();
  sim_cmd->add_option("--answer-tokens", sim_opts.answer_tokens, "answer length (0: 16..48 chosen by the prompt)");
  sim_cmd->add_option("--thinking-tokens", sim_opts.thinking_tokens, "thinking length (0: 8..24)");
  sim_cmd->add_option("--seed", sim_opts.seed, "random seed for fault injection");
  sim_cmd->add_option("--tls-cert", sim_opts.tls.cert, "serve HTTPS: PEM certificate (with --tls-key)");
  sim_cmd->add_option("--tls-key", sim_opts.tls.key, "serve HTTPS: PEM private key");
  sim_cmd->add_option("--error-rate", sim_opts.initial_faults.error_rate, "share of requests that fail");
  sim_cmd->add_option("--error-status", sim_opts.initial_faults.error_status, "status of failed requests");
  sim_cmd->add_option("--latency-ms", latency_ms, "added before the first token");
  sim_cmd->add_flag("--hang", sim_opts.initial_faults.hang, "accept requests and never answer");
  sim_cmd->add_option("--drop-after", sim_opts.initial_faults.drop_after_tokens,
                      "close the connection after this many tokens");
  sim_cmd->add_flag("--refuse", sim_opts.initial_faults.refuse, "start refusing connections");
  sim_cmd->add_option("--gpu-temp", sim_opts.initial_faults.gpu_temp, "reported GPU temperature (C)");

  std::string tokenizer_path, text;
  auto* tokenize_cmd = app.add_subcommand("tokenize", "Print the Qwen3 token ids of a text (stdin without --text)");
  tokenize_cmd->add_option("--tokenizer", tokenizer_path, "tokenizer.json of the model")->required();
  tokenize_cmd->add_option("--text", text, "the text; without it, stdin");
  bool lines = false;
  tokenize_cmd->add_flag("--lines", lines, "one JSON array of ids per input line (JSON-encoded strings)");
  bool timed = false;
  tokenize_cmd->add_flag("--time", timed, "print the encoding speed instead of the ids");

  bench::command_options bench_opts;
  std::string bench_prompt = "256", bench_output = "128", bench_duration;
  bool no_stream = false, no_ignore_eos = false;
  auto* bench_cmd =
      app.add_subcommand("bench", "Load an OpenAI-compatible server with chat completions and measure it");
  bench_cmd->add_option("url", bench_opts.load.url, "the server (http://host:port, .../v1 or the full endpoint URL)")
      ->capture_default_str();
  bench_cmd->add_option("-u,--users", bench_opts.load.users,
                        "closed loop: this many users, each waiting for its answer");
  bench_cmd->add_option("-r,--rate", bench_opts.load.rate, "open loop: requests per second, Poisson arrivals");
  bench_cmd->add_option("-d,--duration", bench_duration, "send for this long (30s, 2m)");
  bench_cmd->add_option("-n,--requests", bench_opts.load.requests, "send this many requests");
  bench_cmd->add_option("--model", bench_opts.load.shape.model, "model to ask for")->capture_default_str();
  bench_cmd->add_option("--api-key", bench_opts.load.api_key, "bearer token (default: $OPENAI_API_KEY)")
      ->envname("OPENAI_API_KEY");
  bench_cmd->add_option("--prompt-tokens", bench_prompt, "prompt length: 256, 128..512, normal:256,64, exp:256")
      ->capture_default_str();
  bench_cmd->add_option("--output-tokens", bench_output, "output length (max_tokens), same forms")
      ->capture_default_str();
  bench_cmd->add_flag("--no-stream", no_stream, "ask for whole answers instead of streams");
  bench_cmd->add_flag("--thinking", bench_opts.load.shape.thinking, "leave Qwen3's thinking on");
  bench_cmd->add_flag("--no-ignore-eos", no_ignore_eos,
                      "let the model stop early (default: ignore_eos, exact lengths)");
  bench_cmd->add_option("--slo-ttft", bench_opts.load.goal.ttft_s, "goodput: first token within this many seconds")
      ->capture_default_str();
  bench_cmd->add_option("--slo-e2e", bench_opts.load.goal.e2e_s,
                        "goodput: and the whole answer within this (0: no limit)");
  bench_cmd->add_option("--threads", bench_opts.load.threads, "load threads")->capture_default_str();
  bench_cmd->add_option("--timeout", bench_opts.load.timeout_s, "one request's limit, seconds")->capture_default_str();
  bench_cmd->add_option("--drain", bench_opts.load.drain_s, "after sending, wait this many seconds for answers")
      ->capture_default_str();
  bench_cmd
      ->add_option("--warmup", bench_opts.load.warmup_s,
                   "answers in the first seconds are not counted (steady state only)")
      ->capture_default_str();
  bench_cmd->add_flag("--steady", bench_opts.load.steady,
                      "count the requests sent from the end of --warmup to the end of --duration, per second of "
                      "that window (answered during the drain or before): a steady rate, open or closed loop");
  bench_cmd->add_option("--seed", bench_opts.load.seed, "random seed (lengths, arrivals, prompts)")
      ->capture_default_str();
  bench_cmd->add_option("--json", bench_opts.json_path, "also write the summary as JSON to this file");
  bench_cmd->add_flag("-q,--quiet", bench_opts.quiet, "no progress lines");

  app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);
  setup_logging(log_level.empty() ? "info" : log_level);

  if (app.got_subcommand("version")) {
    fmt::print("llmgate 0.1.0\n");
    return 0;
  }
  if (app.got_subcommand(check_cmd)) return check(config_path, probe);
  if (app.got_subcommand(tokenize_cmd))
    return run_tokenize(tokenizer_path, tokenize_cmd->count("--text") ? &text : nullptr, lines, timed);
  if (app.got_subcommand(bench_cmd)) {
    std::string error;
    const auto prompt = bench::parse_length(bench_prompt, error);
    const auto output = prompt ? bench::parse_length(bench_output, error) : std::nullopt;
    std::optional<control::duration> duration;
    if (!bench_duration.empty() && !(duration = control::parse_duration(bench_duration)))
      error = fmt::format("--duration '{}': not a duration (30s, 2m, 500ms)", bench_duration);
    if (!prompt || !output || !error.empty()) {
      fmt::print(stderr, "llmgate bench: {}\n", error);
      return 2;
    }
    bench_opts.load.prompt = *prompt;
    bench_opts.load.output = *output;
    if (duration) bench_opts.load.duration_s = std::chrono::duration<double>(*duration).count();
    bench_opts.load.shape.stream = !no_stream;
    bench_opts.load.shape.ignore_eos = !no_ignore_eos;
    return bench::run_command(std::move(bench_opts));
  }
  if (app.got_subcommand(sim_cmd)) {
    sim_opts.initial_faults.latency_ms = static_cast<std::int64_t>(latency_ms);
    return run_sim(sim_opts, profile);
  }
  return serve(config_path, log_level, listen);
}
