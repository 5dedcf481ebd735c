#include "sim/sim_server.hpp"
#include "io/io.hpp"

#include "observe/metrics.hpp"
#include "openai/body_rewrite.hpp"
#include "openai/error.hpp"
#include "openai/request_view.hpp"
#include "openai/sse.hpp"
#include "server/http_session.hpp"
#include "server/url.hpp"
#include "sim/text_model.hpp"
#include "tls/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <deque>
#include <future>
#include <optional>
#include <random>
#include <spdlog/spdlog.h>
#include <thread>
#include <unordered_map>

namespace llmgate::sim {

namespace json = boost::json;
namespace net = server::net;
namespace beast = server::beast;
namespace http = server::http;
using tcp = server::tcp;
using clock = std::chrono::steady_clock;

namespace {

using io::k_tuple;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Everything the prompt says, for seeding the text and counting tokens.
std::string prompt_text(const json::object& body, openai::endpoint kind) {
  std::string out;
  if (kind == openai::endpoint::completions) {
    const auto& p = body.at("prompt");
    if (p.is_string()) return std::string(p.get_string());
    return json::serialize(p);
  }
  for (const auto& m : body.at("messages").get_array()) {
    const auto& msg = m.get_object();
    if (const auto* c = msg.if_contains("content")) {
      if (c->is_string())
        out += c->get_string();
      else if (!c->is_null())
        out += json::serialize(*c);
    }
    out += '\n';
  }
  return out;
}

// The function a request asks to call, if it asks for one: tool_choice
// "required" or naming a function, or "auto" with a prompt that names a tool.
std::optional<std::string> tool_to_call(const json::object& body, std::string_view prompt) {
  const auto* tools = body.if_contains("tools");
  if (!tools || !tools->is_array() || tools->get_array().empty()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& t : tools->get_array())
    if (t.is_object())
      if (const auto* f = t.get_object().if_contains("function"); f && f->is_object())
        if (const auto* n = f->get_object().if_contains("name"); n && n->is_string())
          names.emplace_back(n->get_string());
  if (names.empty()) return std::nullopt;
  const auto* choice = body.if_contains("tool_choice");
  if (choice && choice->is_string() && choice->get_string() == "none") return std::nullopt;
  if (choice && choice->is_string() && choice->get_string() == "required") return names.front();
  if (choice && choice->is_object()) {
    boost::system::error_code ec;
    if (const auto* n = choice->find_pointer("/function/name", ec); n && n->is_string())
      return std::string(n->get_string());
  }
  for (const auto& n : names)
    if (prompt.find(n) != std::string_view::npos) return n;
  return std::nullopt;
}

} // namespace

struct sim_server::impl {
  explicit impl(sim_options o) : opts(std::move(o)), current(opts.initial_faults), rng(opts.seed), eng(opts.timing) {
    auto& requests =
        metrics.counter("llmgate_sim_requests_total", "Requests by outcome (completed, aborted, failed).", {"outcome"});
    completed = &requests.with({"completed"});
    aborted = &requests.with({"aborted"});
    failed = &requests.with({"failed"});
    running = &metrics.gauge("vllm:num_requests_running", "Requests in the running batch.", {"model_name"})
                   .with({opts.model});
    waiting =
        &metrics.gauge("vllm:num_requests_waiting", "Requests waiting to run.", {"model_name"}).with({opts.model});
    kv_usage =
        &metrics.gauge("vllm:kv_cache_usage_perc", "KV-cache usage, 1 is full.", {"model_name"}).with({opts.model});
    prompt_tokens =
        &metrics.counter("vllm:prompt_tokens_total", "Prefill tokens processed.", {"model_name"}).with({opts.model});
    generation_tokens =
        &metrics.counter("vllm:generation_tokens_total", "Tokens generated.", {"model_name"}).with({opts.model});
    ttft = &metrics
                .histogram("vllm:time_to_first_token_seconds", "Time to first token.", {"model_name"},
                           observe::latency_buckets())
                .with({opts.model});
    e2e = &metrics
               .histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency.", {"model_name"},
                          observe::latency_buckets())
               .with({opts.model});
    gpu_util =
        &metrics.gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilisation (%).", {"gpu", "modelName"}).with({"0", "NVIDIA L4"});
    fb_used = &metrics.gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (MiB).", {"gpu", "modelName"})
                   .with({"0", "NVIDIA L4"});
    gpu_temp =
        &metrics.gauge("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (C).", {"gpu", "modelName"}).with({"0", "NVIDIA L4"});
    open_gauge = &metrics.gauge("llmgate_sim_open_requests", "Completion requests inside the server now.").with({});
    peak_gauge = &metrics
                      .gauge("llmgate_sim_peak_open_requests",
                             "The most completion requests inside the server at once since start.")
                      .with({});
    limits.idle_timeout = std::chrono::minutes(5);
    limits.header_timeout = std::chrono::seconds(30);
    limits.write_timeout = std::chrono::seconds(60);
    limits.max_body_bytes = 64 << 20;
    limits.max_header_bytes = 64 << 10;
  }

  sim_options opts;
  faults current;
  std::mt19937_64 rng;
  engine eng;
  net::io_context ioc{1};
  std::optional<io::acceptor> acceptor;
  std::uint16_t port = 0;
  server::session_registry sessions;
  server::session_limits limits;
  std::thread thread;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  observe::registry metrics;
  observe::counter *completed, *aborted, *failed; // requests by outcome
  observe::gauge *running, *waiting, *kv_usage, *gpu_util, *fb_used, *gpu_temp;
  observe::gauge *open_gauge, *peak_gauge; // what a gateway's max_in_flight is checked against
  std::int64_t open_requests = 0, peak_open = 0;
  observe::counter *prompt_tokens, *generation_tokens;
  observe::histogram *ttft, *e2e;
  std::uint64_t next_id = 1;
  std::deque<std::string> received; // the last 32 completion request bodies (GET /sim/requests)

  // A sequence in the engine, as its request coroutine sees it.
  struct live_sequence {
    explicit live_sequence(net::io_context& ioc) : wake(ioc, io::timer::time_point::max()) {}
    io::timer wake; // cancelled by the engine loop when tokens are ready
    std::int64_t ready = 0;
  };
  std::unordered_map<std::uint64_t, live_sequence*> live;
  bool engine_running = false;
  io::timer step_timer{ioc};
  io::timer refuse_timer{ioc};
  std::optional<tls::context> tls = opts.tls.enabled() ? std::optional(tls::context::server(opts.tls)) : std::nullopt;

  void listen() {
    tcp::endpoint ep(net::ip::make_address(opts.host), port ? port : opts.port);
    acceptor.emplace(ioc);
    acceptor->open(ep.protocol());
    acceptor->set_option(io::acceptor::reuse_address(true));
    acceptor->bind(ep);
    acceptor->listen(net::socket_base::max_listen_connections);
    port = acceptor->local_endpoint().port();
    net::co_spawn(ioc, accept_loop(), net::detached);
  }

  io::task<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(k_tuple);
      if (ec) co_return;
      net::co_spawn(
          ioc,
          [this, s = std::move(socket)]() mutable -> io::task<void> {
            if (tls) {
              auto plain = co_await tls::secure(std::move(s), *tls, {}, limits.header_timeout);
              if (!plain) co_return;
              s = std::move(*plain);
            }
            co_await server::run_session(
                std::move(s), limits, sessions,
                [this](server::session_context& ctx, server::request& req) { return handle(ctx, req); });
          },
          net::detached);
    }
  }

  // The continuous-batching loop: runs while the engine has sequences.
  io::task<void> engine_loop() {
    while (!eng.idle()) {
      const auto d = eng.begin_step();
      step_timer.expires_after(d);
      co_await step_timer.async_wait(k_tuple);
      for (const auto& p : eng.end_step()) {
        generation_tokens->inc();
        if (auto it = live.find(p.id); it != live.end()) {
          it->second->ready = p.generated;
          it->second->wake.cancel();
        }
      }
    }
    engine_running = false;
  }

  io::task<bool> reply(server::session_context& ctx, server::request& req, http::status status, std::string body,
                       std::string_view type = "application/json") {
    co_return co_await server::write_answer(ctx, req, static_cast<int>(status), type, {}, body);
  }

  io::task<bool> handle(server::session_context& ctx, server::request& req) {
    const auto target = server::parse_target(req.target());
    if (target.path == "/health") co_return co_await reply(ctx, req, http::status::ok, "");
    if (target.path == "/metrics") {
      refresh_gauges();
      co_return co_await reply(ctx, req, http::status::ok, metrics.expose(), "text/plain; version=0.0.4");
    }
    if (target.path == "/v1/models") {
      json::object m{{"id", opts.model},   {"object", "model"},  {"created", unix_now()},
                     {"owned_by", "vllm"}, {"root", opts.model}, {"max_model_len", 32768}};
      // (Built outside the co_await: g++ 12 miscompiles braced lists with string literals inside one.)
      auto list = json::serialize(json::object{{"object", "list"}, {"data", json::array{m}}});
      co_return co_await reply(ctx, req, http::status::ok, std::move(list));
    }
    if (target.path == "/sim/requests") { // the bodies of the last requests, oldest first (for tests)
      json::array bodies;
      for (const auto& b : received) {
        boost::system::error_code ec;
        auto v = json::parse(b, ec);
        bodies.push_back(ec ? json::value(b) : std::move(v));
      }
      auto list = json::serialize(bodies);
      co_return co_await reply(ctx, req, http::status::ok, std::move(list));
    }
    if (target.path == "/sim/faults") {
      if (req.method() == http::verb::post) {
        if (auto err = apply_faults(req.body()))
          co_return co_await reply(ctx, req, http::status::bad_request, openai::invalid_request(*err).body);
      }
      const auto state = faults_json();
      if (current.refuse) { // a server that refuses connections keeps none open either
        const server::header_list close{{"Connection", "close"}};
        co_await server::write_answer(ctx, req, 200, "application/json", close, state);
        co_return false;
      }
      co_return co_await reply(ctx, req, http::status::ok, state);
    }
    if (req.method() == http::verb::post &&
        (target.path == "/v1/chat/completions" || target.path == "/v1/completions")) {
      const auto kind =
          target.path == "/v1/chat/completions" ? openai::endpoint::chat_completions : openai::endpoint::completions;
      received.push_back(req.body());
      if (received.size() > 32) received.pop_front();
      co_return co_await complete(ctx, req, kind);
    }
    co_return co_await reply(ctx, req, http::status::not_found, openai::not_found(target.path).body);
  }

  void refresh_gauges() {
    running->set(static_cast<double>(eng.running()));
    waiting->set(static_cast<double>(eng.waiting()));
    kv_usage->set(eng.kv_usage());
    const double util = eng.running() == 0 ? 0 : std::min(100.0, 35.0 + static_cast<double>(eng.running()) * 2.5);
    gpu_util->set(util);
    fb_used->set(3500 + eng.kv_usage() * 18000); // MiB, as DCGM reports it: weights plus the KV cache in use
    gpu_temp->set(current.gpu_temp > 0 ? current.gpu_temp : 38 + util * 0.35);
  }

  std::string faults_json() const {
    return json::serialize(json::object{{"error_rate", current.error_rate},
                                        {"error_status", current.error_status},
                                        {"latency_ms", current.latency_ms},
                                        {"hang", current.hang},
                                        {"drop_after_tokens", current.drop_after_tokens},
                                        {"refuse", current.refuse},
                                        {"refuse_for_ms", current.refuse_for_ms},
                                        {"gpu_temp", current.gpu_temp}});
  }

  // Partial update: only the fields present change. Returns an error message.
  std::optional<std::string> apply_faults(const std::string& body) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (ec || !v.is_object()) return "expected a JSON object";
    faults next = current;
    for (const auto& [key, value] : v.get_object()) {
      if (key == "error_rate" && value.is_number())
        next.error_rate = value.to_number<double>();
      else if (key == "error_status" && value.is_number())
        next.error_status = value.to_number<int>();
      else if (key == "latency_ms" && value.is_number())
        next.latency_ms = value.to_number<std::int64_t>();
      else if (key == "hang" && value.is_bool())
        next.hang = value.get_bool();
      else if (key == "drop_after_tokens" && value.is_number())
        next.drop_after_tokens = value.to_number<std::int64_t>();
      else if (key == "refuse" && value.is_bool())
        next.refuse = value.get_bool();
      else if (key == "refuse_for_ms" && value.is_number())
        next.refuse_for_ms = value.to_number<std::int64_t>();
      else if (key == "gpu_temp" && value.is_number())
        next.gpu_temp = value.to_number<double>();
      else
        return fmt::format("unknown or mistyped fault '{}'", std::string_view(key));
    }
    const bool was_refusing = current.refuse;
    current = next;
    if (current.refuse && !was_refusing) {
      boost::system::error_code ignored;
      acceptor->close(ignored); // new connections are refused by the kernel
      sessions.close_idle();
      if (current.refuse_for_ms > 0) { // the only way back: nothing can reach the fault API meanwhile
        refuse_timer.expires_after(std::chrono::milliseconds(current.refuse_for_ms));
        refuse_timer.async_wait([this](const boost::system::error_code& ec) {
          if (ec || !current.refuse) return;
          current.refuse = false;
          listen();
        });
      }
    } else if (!current.refuse && was_refusing) {
      refuse_timer.cancel();
      listen();
    }
    return std::nullopt;
  }

  // ---- completions -------------------------------------------------------

  struct job {
    openai::endpoint kind;
    std::string id;
    std::int64_t created;
    std::int64_t prompt_tokens;
    generation gen;
    std::optional<std::string> tool;
    bool include_usage = false;
    bool stream = false;
    clock::time_point start = clock::now();
    bool gone = false;               // the client disconnected
    io::timer* waiting_on = nullptr; // what to cancel when it does
  };

  io::task<bool> complete(server::session_context& ctx, server::request& req, openai::endpoint kind) {
    struct open_count { // one loop thread: plain counters
      impl& self;
      explicit open_count(impl& s) : self(s) {
        self.peak_open = std::max(self.peak_open, ++self.open_requests);
        self.open_gauge->set(static_cast<double>(self.open_requests));
        self.peak_gauge->set(static_cast<double>(self.peak_open));
      }
      ~open_count() { self.open_gauge->set(static_cast<double>(--self.open_requests)); }
    } counted{*this};
    // The parsed body lives in one block, freed at once (as in the gateway).
    json::monotonic_resource arena(std::min<std::size_t>(4096, 1024 + 3 * req.body().size()));
    auto view = openai::parse_request(req.body(), kind, &arena, {.body = true});
    if (!view) {
      failed->inc();
      co_return co_await reply(ctx, req, static_cast<http::status>(view.error().status), view.error().body);
    }
    if (view->model != opts.model) {
      failed->inc();
      co_return co_await reply(ctx, req, http::status::not_found,
                               openai::error_body(fmt::format("The model `{}` does not exist.", view->model),
                                                  "NotFoundError", "model", "model_not_found"));
    }
    if (current.error_rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < current.error_rate) {
      failed->inc();
      co_return co_await reply(
          ctx, req, static_cast<http::status>(current.error_status),
          openai::error_body("Simulated failure (fault injection).", "InternalServerError", {}, "simulated_fault"));
    }

    job j;
    j.kind = kind;
    j.id = kind == openai::endpoint::chat_completions ? "chatcmpl-" : "cmpl-";
    j.id += server::hex64(next_id).view();
    j.created = unix_now();
    j.stream = view->stream;
    j.include_usage = view->include_usage;
    const auto prompt = prompt_text(view->body(), kind);
    j.prompt_tokens = estimate_tokens(prompt);
    // vLLM reads only chat_template_kwargs (a top-level enable_thinking means nothing to it) and Qwen3's soft switch.
    bool thinking = kind == openai::endpoint::chat_completions;
    if (thinking) {
      if (const auto* kw = view->body().if_contains("chat_template_kwargs"); kw && kw->is_object())
        if (const auto* on = kw->get_object().if_contains("enable_thinking"); on && on->is_bool())
          thinking = on->get_bool();
      bool soft = true;
      if (openai::has_soft_switch(view->body(), &soft)) thinking = soft;
      j.tool = tool_to_call(view->body(), prompt);
    }
    generation_request gr{prompt, view->max_tokens.value_or(0), thinking, opts.answer_tokens, opts.thinking_tokens};
    if (const auto* eos = view->body().if_contains("ignore_eos"); eos && eos->is_bool())
      gr.ignore_eos = eos->get_bool();
    j.gen = generate(gr);
    if (j.tool) { // a tool call replaces the answer text
      j.gen.tokens.resize(j.gen.reasoning_tokens);
      for (const char* piece : {"{\"", "query", "\": \"", "llmgate", "\"}"}) j.gen.tokens.emplace_back(piece);
    }
    prompt_tokens->inc(static_cast<std::uint64_t>(j.prompt_tokens));

    bool keep = false;
    {
      server::client_watch watch(ctx.stream.socket(), [&j] {
        j.gone = true;
        if (j.waiting_on) j.waiting_on->cancel();
      });
      keep = co_await run_job(ctx, req, j);
    }
    if (j.gone) {
      aborted->inc();
      co_return false;
    }
    co_return keep;
  }

  // Waits on a timer unless the client left; returns false when it did.
  io::task<bool> wait(job& j, io::timer& t) {
    if (j.gone) co_return false;
    j.waiting_on = &t;
    co_await t.async_wait(k_tuple);
    j.waiting_on = nullptr;
    co_return !j.gone;
  }

  // Produces the tokens at the engine's pace and writes them; returns keep-alive.
  io::task<bool> run_job(server::session_context& ctx, server::request& req, job& j) {
    if (current.hang) {
      io::timer forever(ioc, io::timer::time_point::max());
      co_await wait(j, forever); // until the client leaves
      co_return false;
    }
    if (current.latency_ms > 0) {
      io::timer t(ioc, std::chrono::milliseconds(current.latency_ms));
      if (!co_await wait(j, t)) co_return false;
    }
    const auto total = static_cast<std::int64_t>(j.gen.tokens.size());
    const std::int64_t drop_after = current.drop_after_tokens;
    const auto id = next_id++;
    live_sequence seq(ioc);
    struct cleanup { // however this coroutine ends (also when cancelled), the engine forgets the sequence
      impl& self;
      std::uint64_t id;
      ~cleanup() {
        self.eng.cancel(id);
        self.live.erase(id);
      }
    } guard{*this, id};
    if (opts.timing.instant) {
      seq.ready = total;
      generation_tokens->inc(static_cast<std::uint64_t>(total));
    } else {
      eng.add(id, j.prompt_tokens, total);
      live[id] = &seq;
      if (!engine_running) { // set before the loop first runs: requests arriving meanwhile must not start a second one
        engine_running = true;
        net::co_spawn(ioc, engine_loop(), net::detached);
      }
    }

    bool head_sent = false;
    const bool keep = server::keep_alive_for(ctx, req);
    std::string out;
    std::int64_t emitted = 0;
    bool first = true;
    while (emitted < total) {
      if (seq.ready <= emitted) {
        seq.wake.expires_at(io::timer::time_point::max());
        if (!co_await wait(j, seq.wake)) co_return false;
        continue;
      }
      if (first) {
        ttft->observe(std::chrono::duration<double>(clock::now() - j.start).count());
        first = false;
      }
      const auto upto = drop_after > 0 ? std::min(seq.ready, drop_after) : seq.ready;
      if (j.stream) {
        out.clear();
        if (!head_sent) {
          if (!co_await server::write_stream_head(ctx, 200, "text/event-stream; charset=utf-8", {}, keep)) break;
          head_sent = true;
          openai::append_sse(out, chunk_json(j, role_delta(j), {}));
        }
        for (auto i = emitted; i < upto; ++i)
          if (auto delta = token_delta(j, i)) openai::append_sse(out, chunk_json(j, *delta, {}));
        emitted = upto;
        if (!out.empty()) {
          ctx.stream.expires_after(limits.write_timeout);
          if (auto [ec, n] = co_await net::async_write(ctx.stream, http::make_chunk(net::buffer(out)), k_tuple); ec) {
            j.gone = true; // counted as aborted by the caller
            co_return false;
          }
        }
      } else {
        emitted = upto;
      }
      if (drop_after > 0 && emitted >= drop_after) { // fault: the server dies mid-answer
        failed->inc();
        boost::system::error_code ignored;
        ctx.stream.socket().shutdown(io::socket::shutdown_both, ignored);
        ctx.stream.close();
        co_return false;
      }
    }
    e2e->observe(std::chrono::duration<double>(clock::now() - j.start).count());
    completed->inc();
    if (!j.stream) {
      const auto answer = whole_answer(j);
      co_return co_await server::write_answer(ctx, req, 200, "application/json", {}, answer);
    }
    out.clear();
    if (!head_sent && // zero tokens: still a valid stream
        !co_await server::write_stream_head(ctx, 200, "text/event-stream; charset=utf-8", {}, keep))
      co_return false;
    openai::append_sse(out, final_chunk(j));
    if (j.include_usage) openai::append_sse(out, usage_chunk(j));
    out += openai::k_sse_done;
    ctx.stream.expires_after(limits.write_timeout);
    if (auto [ec, n] = co_await net::async_write(ctx.stream, http::make_chunk(net::buffer(out)), k_tuple); ec)
      co_return false;
    if (auto [ec, n] = co_await net::async_write(ctx.stream, http::make_chunk_last(), k_tuple); ec) co_return false;
    co_return keep;
  }

  // ---- vLLM's JSON shapes ---------------------------------------------------
  // Answers and chunks are written as text, field by field in vLLM's order:
  // building a Boost.JSON object and serializing it was over a third of the
  // simulator's cost of an instant answer (~16k instructions of ~44k), and
  // every gateway benchmark shares its cores with the simulator.

  bool in_think_block(const job& j, std::int64_t i) const {
    return static_cast<std::size_t>(i) < j.gen.reasoning_tokens;
  }
  // With a reasoning parser, the tags and the newlines around them are not text of either part.
  bool is_think_markup(const job& j, std::int64_t i) const {
    const auto n = static_cast<std::int64_t>(j.gen.reasoning_tokens);
    return i < 2 || i >= n - 2;
  }

  std::string_view finish_reason(const job& j) const {
    if (j.tool) return "tool_calls";
    return j.gen.truncated ? "length" : "stop";
  }

  // `{"id":..,"object":..,"created":..,"model":..`: how every answer and chunk begins.
  void open_envelope(std::string& out, const job& j, std::string_view object) const {
    out += "{\"id\":";
    openai::append_json_string(out, j.id);
    out += ",\"object\":";
    openai::append_json_string(out, object);
    out += ",\"created\":";
    out += server::decimal(j.created).view();
    out += ",\"model\":";
    openai::append_json_string(out, opts.model);
  }

  void append_usage(std::string& out, const job& j) const {
    const auto completion = static_cast<std::int64_t>(j.gen.tokens.size());
    out += "{\"prompt_tokens\":";
    out += server::decimal(j.prompt_tokens).view();
    out += ",\"total_tokens\":";
    out += server::decimal(j.prompt_tokens + completion).view();
    out += ",\"completion_tokens\":";
    out += server::decimal(completion).view();
    out += ",\"prompt_tokens_details\":null}";
  }

  std::string_view chunk_object(const job& j) const {
    return j.kind == openai::endpoint::chat_completions ? "chat.completion.chunk" : "text_completion";
  }

  json::object role_delta(const job&) const { return {{"role", "assistant"}, {"content", ""}}; }

  std::string tool_call_id(const job& j) const { return "chatcmpl-tool-" + j.id.substr(j.id.size() - 12); }

  // The delta for token i, or nothing when a reasoning parser swallows it.
  std::optional<json::object> token_delta(const job& j, std::int64_t i) const {
    const auto& tok = j.gen.tokens[static_cast<std::size_t>(i)];
    if (j.kind == openai::endpoint::completions) return json::object{{"text", tok}};
    if (in_think_block(j, i) && opts.reasoning_parser) {
      if (is_think_markup(j, i)) return std::nullopt;
      return json::object{{opts.reasoning_field, tok}};
    }
    if (j.tool && !in_think_block(j, i)) {
      json::object fn{{"arguments", tok}};
      json::object call{{"index", 0}};
      if (static_cast<std::size_t>(i) == j.gen.reasoning_tokens) {
        call["id"] = tool_call_id(j);
        call["type"] = "function";
        fn["name"] = *j.tool;
      }
      call["function"] = std::move(fn);
      return json::object{{"tool_calls", json::array{std::move(call)}}};
    }
    return json::object{{"content", tok}};
  }

  std::string chunk_json(const job& j, const json::object& delta, std::string_view finish) const {
    std::string out;
    open_envelope(out, j, chunk_object(j));
    out += ",\"choices\":[{\"index\":0,";
    if (j.kind == openai::endpoint::chat_completions) {
      out += "\"delta\":";
      out += json::serialize(delta);
    } else {
      out += "\"text\":";
      const auto* text = delta.if_contains("text");
      out += text ? json::serialize(*text) : "\"\"";
    }
    out += ",\"logprobs\":null,\"finish_reason\":";
    if (finish.empty()) {
      out += "null";
    } else {
      openai::append_json_string(out, finish);
      out += ",\"stop_reason\":null";
    }
    out += "}]}";
    return out;
  }

  std::string final_chunk(const job& j) const {
    json::object delta;
    if (j.kind == openai::endpoint::chat_completions)
      delta["content"] = "";
    else
      delta["text"] = "";
    return chunk_json(j, delta, finish_reason(j));
  }

  std::string usage_chunk(const job& j) const {
    std::string out;
    open_envelope(out, j, chunk_object(j));
    out += ",\"choices\":[],\"usage\":";
    append_usage(out, j);
    out += '}';
    return out;
  }

  std::string whole_answer(const job& j) const {
    std::string reasoning, content, arguments;
    for (std::size_t i = 0; i < j.gen.tokens.size(); ++i) {
      const auto idx = static_cast<std::int64_t>(i);
      if (in_think_block(j, idx) && opts.reasoning_parser) {
        if (!is_think_markup(j, idx)) reasoning += j.gen.tokens[i];
      } else if (j.tool && !in_think_block(j, idx)) {
        arguments += j.gen.tokens[i];
      } else {
        content += j.gen.tokens[i];
      }
    }
    const auto string_or_null = [](std::string& out, bool null, std::string_view text) {
      if (null)
        out += "null";
      else
        openai::append_json_string(out, text);
    };
    std::string out;
    out.reserve(320 + reasoning.size() + content.size() + arguments.size());
    const bool chat = j.kind == openai::endpoint::chat_completions;
    open_envelope(out, j, chat ? "chat.completion" : "text_completion");
    out += ",\"choices\":[{\"index\":0,\"logprobs\":null,\"finish_reason\":";
    openai::append_json_string(out, finish_reason(j));
    out += ",\"stop_reason\":null";
    if (!chat) {
      out += ",\"text\":";
      openai::append_json_string(out, content);
    } else {
      out += ",\"message\":{\"role\":\"assistant\",\"content\":";
      string_or_null(out, j.tool && content.empty(), content);
      if (opts.reasoning_parser) {
        out += ',';
        openai::append_json_string(out, opts.reasoning_field);
        out += ':';
        string_or_null(out, reasoning.empty(), reasoning);
      }
      out += ",\"tool_calls\":[";
      if (j.tool) {
        out += "{\"id\":";
        openai::append_json_string(out, tool_call_id(j));
        out += ",\"type\":\"function\",\"function\":{\"name\":";
        openai::append_json_string(out, *j.tool);
        out += ",\"arguments\":";
        openai::append_json_string(out, arguments);
        out += "}}";
      }
      out += "]}";
    }
    out += "}],\"usage\":";
    append_usage(out, j);
    out += '}';
    return out;
  }
};

sim_server::sim_server(sim_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

sim_server::~sim_server() { stop(); }

std::uint16_t sim_server::start() {
  auto& m = *impl_;
  m.listen();
  if (m.current.refuse) m.acceptor->close();
  // Read before the loop's thread starts: from then on only that thread
  // touches `port` (it listens again after a `refuse` fault; TSan caught the
  // read racing that write).
  const auto port = m.port;
  m.guard.emplace(net::make_work_guard(m.ioc));
  m.thread = std::thread([&m] { m.ioc.run(); });
  return port;
}

void sim_server::stop() {
  auto& m = *impl_;
  if (!m.thread.joinable()) return;
  net::post(m.ioc, [&m] {
    boost::system::error_code ec;
    if (m.acceptor) m.acceptor->close(ec);
    m.refuse_timer.cancel();
    m.sessions.close_all();
  });
  m.guard.reset();
  // Let every coroutine unwind on the loop (closed sockets end the sessions,
  // their jobs leave the engine, the engine loop ends when idle): a frame
  // left for the io_context's destructor would run its clean-up against
  // members already destroyed (seen as a crash on SIGTERM with thousands of
  // streams open). Bounded: after 5 s the loop is stopped as it is.
  for (int i = 0; i < 500 && !m.ioc.stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  m.ioc.stop();
  m.thread.join();
}

} // namespace llmgate::sim
