#include "bench/load_generator.hpp"
#include "io/beast.hpp"

#include "control/config.hpp"
#include "openai/response_rewrite.hpp"
#include "openai/sse.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <memory>
#include <thread>
#include <unordered_set>

namespace llmgate::bench {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using io::k_tuple;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct connection {
  explicit connection(io::socket s) : stream(std::move(s)) {}
  io::tcp_stream stream;
  beast::flat_buffer buffer;
  bool reused = false;
};

// What one answer was, for the tally.
struct answer {
  int status = 0;
  bool complete = false; // a 200 read to its end ([DONE] for a stream)
  bool cut = false;      // closed by the drain
  std::optional<double> ttft;
  std::int64_t usage_tokens = -1; // usage.completion_tokens, when the server said
  std::int64_t token_events = 0;  // stream events that carried text
  std::vector<float> gaps;        // seconds between successive token events (counted only for a whole answer)
};

// Shared by the threads of one run.
clock_type::duration seconds(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}

struct run_state {
  run_state(const load_options& o, live_counts& l, tcp::endpoint t, std::string path, std::string host)
      : opts(o), live(l), target(t), target_path(std::move(path)), host_header(std::move(host)) {}
  const load_options& opts;
  live_counts& live;
  tcp::endpoint target;
  std::string target_path, host_header;
  clock_type::time_point start = clock_type::now();
  clock_type::time_point measure_from = start + seconds(opts.warmup_s); // the end of the warm-up
  clock_type::time_point stop_at = opts.duration_s > 0 ? start + seconds(opts.duration_s)
                                                       : clock_type::time_point::max(); // max(): by count
  std::atomic<std::uint64_t> issued{0};
  std::atomic<bool> exhausted{false};
};

// Text of a stream event's first choice (content or reasoning), if any.
bool carries_text(const boost::json::value& v) {
  const auto* obj = v.if_object();
  if (!obj) return false;
  const auto* choices = obj->if_contains("choices");
  if (!choices || !choices->is_array() || choices->get_array().empty()) return false;
  const auto* choice = choices->get_array()[0].if_object();
  if (!choice) return false;
  const auto* delta = choice->if_contains("delta");
  if (!delta || !delta->is_object()) return false;
  for (const char* field : {"content", "reasoning_content", "reasoning"})
    if (const auto* text = delta->get_object().if_contains(field);
        text && text->is_string() && !text->get_string().empty())
      return true;
  return false;
}

// usage.completion_tokens as the gateway reads it; -1 without a usage object.
std::int64_t completion_tokens(const boost::json::value& v) {
  const auto* obj = v.if_object();
  const auto usage = obj ? openai::read_usage(*obj) : std::nullopt;
  return usage ? usage->completion_tokens : -1;
}

class worker final {
public:
  worker(run_state& run, unsigned index) : run_(run), index_(index), rng_(run.opts.seed * 7919 + index) {}

  void run() {
    const auto& o = run_.opts;
    const auto n = o.threads;
    if (o.users > 0) {
      const auto mine = o.users / n + (index_ < o.users % n ? 1 : 0);
      for (std::size_t u = 0; u < mine; ++u) net::co_spawn(ioc_, user(), net::detached);
      generators_ = mine;
    } else {
      net::co_spawn(ioc_, arrivals(o.rate / n), net::detached);
      generators_ = 1;
    }
    net::co_spawn(ioc_, supervise(), net::detached);
    ioc_.run();
  }

  [[nodiscard]] const tally& result() const noexcept { return tally_; }
  [[nodiscard]] clock_type::time_point last_answer() const noexcept { return last_answer_; }

private:
  bool take_ticket() {
    if (stopping_) return false;
    if (clock_type::now() >= run_.stop_at) return false;
    if (run_.opts.requests == 0) return true;
    const auto n = run_.issued.fetch_add(1);
    if (n + 1 >= run_.opts.requests) run_.exhausted = true; // the last one: the drain may begin
    return n < run_.opts.requests;
  }

  io::task<void> user() {
    std::unique_ptr<connection> c;
    while (take_ticket()) co_await one_request(c);
    --generators_;
  }

  io::task<void> arrivals(double rate) {
    std::exponential_distribution<double> gap(rate);
    io::timer timer(ioc_);
    arrival_timer_ = &timer; // the supervisor wakes it at the end: a slow rate's next gap may be long
    auto next = clock_type::now();
    for (;;) {
      next += seconds(gap(rng_));
      timer.expires_at(next);
      co_await timer.async_wait(k_tuple);
      if (!take_ticket()) break;
      net::co_spawn(ioc_, detached_request(), net::detached);
    }
    arrival_timer_ = nullptr;
    --generators_;
  }

  // Open loop: an idle connection if there is one, else a new one.
  io::task<void> detached_request() {
    std::unique_ptr<connection> c;
    if (!idle_.empty()) {
      c = std::move(idle_.back());
      idle_.pop_back();
    }
    co_await one_request(c);
    if (c) idle_.push_back(std::move(c));
  }

  // Stops sending at the end of the run, waits for the answers in flight up
  // to the drain time, then closes what is left (counted as unfinished).
  io::task<void> supervise() {
    io::timer timer(ioc_);
    auto nap = [&]() -> io::task<void> {
      timer.expires_after(std::chrono::milliseconds(20));
      co_await timer.async_wait(k_tuple);
    };
    while (generators_ > 0 && !run_.exhausted && clock_type::now() < run_.stop_at) co_await nap();
    stopping_ = true;
    if (arrival_timer_) arrival_timer_->cancel();
    const auto drain_end = clock_type::now() + seconds(run_.opts.drain_s);
    while ((in_flight_ > 0 || generators_ > 0) && clock_type::now() < drain_end) co_await nap();
    cut_ = true;
    for (auto* c : active_) c->stream.close();
    for (auto& c : idle_) c->stream.close();
  }

  io::task<void> one_request(std::unique_ptr<connection>& c) {
    const auto& o = run_.opts;
    ++in_flight_;
    ++run_.live.in_flight;
    ++run_.live.sent;
    const auto prompt_n = draw(o.prompt, rng_);
    const auto output_n = draw(o.output, rng_);
    const auto body = chat_body(o.shape, prompt_text(prompt_n, rng_()), output_n);
    std::string request = fmt::format("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n",
                                      run_.target_path, run_.host_header);
    if (!o.api_key.empty()) request += fmt::format("Authorization: Bearer {}\r\n", o.api_key);
    request += fmt::format("Content-Length: {}\r\n\r\n", body.size());
    request += body;

    const auto start = clock_type::now();
    answer a = co_await exchange(c, request, start);
    const auto end = clock_type::now();
    const bool counted = o.steady ? start >= run_.measure_from && start < run_.stop_at // sent in the window
                                  : end >= run_.measure_from;                          // answered after the warm-up
    if (counted) {
      last_answer_ = std::max(last_answer_, end);
      ++tally_.sent;
      record(a, prompt_n, seconds_between(start, end));
    }
    --in_flight_;
    --run_.live.in_flight;
    ++run_.live.done;
  }

  void record(const answer& a, std::int64_t prompt_n, double e2e) {
    const auto& goal = run_.opts.goal;
    if (a.cut) {
      ++tally_.unfinished;
      ++run_.live.errors;
      return;
    }
    if (a.status == 200 && a.complete) {
      const auto tokens = static_cast<std::uint64_t>(a.usage_tokens >= 0 ? a.usage_tokens : a.token_events);
      const double ttft = a.ttft.value_or(e2e);
      ++tally_.ok;
      ++run_.live.ok;
      tally_.output_tokens += tokens;
      run_.live.output_tokens += tokens;
      tally_.prompt_tokens += static_cast<std::uint64_t>(prompt_n);
      tally_.ttft.add(ttft);
      tally_.e2e.add(e2e);
      for (const float gap : a.gaps) tally_.itl.add(gap);
      if (ttft <= goal.ttft_s && (goal.e2e_s <= 0 || e2e <= goal.e2e_s)) {
        ++tally_.met_slo;
        tally_.met_slo_tokens += tokens;
      }
      return;
    }
    if (a.status == 429 || a.status == 503) {
      ++(a.status == 429 ? tally_.rate_limited : tally_.busy);
      ++run_.live.refused;
    } else if (a.status != 0 && a.status != 200) {
      ++tally_.other_status;
      ++run_.live.errors;
    } else {
      ++tally_.errors;
      ++run_.live.errors;
    }
  }

  // Sends the request and reads the answer. A reused keep-alive connection
  // that the server had closed fails before any answer byte: that attempt is
  // made again once on a new connection, as any HTTP client does.
  io::task<answer> exchange(std::unique_ptr<connection>& c, const std::string& request, clock_type::time_point start) {
    const auto timeout = seconds(run_.opts.timeout_s);
    for (int attempt = 0;; ++attempt) {
      answer a;
      if (!c || !c->stream.socket().is_open()) {
        c.reset();
        io::connecting_stream connecting(ioc_.get_executor());
        connecting.expires_after(timeout);
        auto [ec] = co_await connecting.async_connect(run_.target, k_tuple);
        if (ec) {
          a.cut = cut_;
          co_return a;
        }
        c = std::make_unique<connection>(connecting.release_socket());
        boost::system::error_code ignored;
        c->stream.socket().set_option(tcp::no_delay(true), ignored);
      } else {
        c->reused = true;
      }
      active_.insert(c.get());
      bool answered = false; // some answer byte arrived
      co_await read_answer(*c, request, start, timeout, a, answered);
      active_.erase(c.get());
      a.cut = a.cut || (cut_ && !a.complete && a.status == 0);
      if (a.status == 0 || !a.complete) c->stream.close();
      if (!c->stream.socket().is_open()) {
        const bool retry = !answered && c->reused && attempt == 0 && !cut_;
        c.reset();
        if (retry) continue;
      }
      co_return a;
    }
  }

  io::task<void> read_answer(connection& c, const std::string& request, clock_type::time_point start,
                             clock_type::duration timeout, answer& a, bool& answered) {
    c.stream.expires_after(timeout);
    if (auto [ec, n] = co_await net::async_write(c.stream, net::buffer(request), k_tuple); ec) co_return;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    if (auto [ec, n] = co_await http::async_read_header(c.stream, c.buffer, parser, k_tuple); ec) co_return;
    answered = true;
    const int status = static_cast<int>(parser.get().result_int());
    const bool streaming = run_.opts.shape.stream && status == 200;
    openai::sse_reader sse;
    std::vector<openai::sse_event> events;
    std::string whole; // a whole answer's body, or an error's (the start of it)
    std::array<char, 8192> chunk{};
    bool done = false;
    std::optional<clock_type::time_point> last_token;
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      auto [ec, n] = co_await http::async_read_some(c.stream, c.buffer, parser, k_tuple);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return;
      const std::string_view got(chunk.data(), chunk.size() - parser.get().body().size);
      const auto now = clock_type::now();
      if (!streaming) {
        if (whole.size() < (8u << 20)) whole.append(got);
        continue;
      }
      events.clear();
      if (!sse.feed(got, events)) co_return;
      for (const auto& e : events) {
        if (e.data == "[DONE]") {
          done = true;
          continue;
        }
        boost::system::error_code jec;
        const auto v = boost::json::parse(e.data, jec);
        if (jec) continue;
        if (const auto* obj = v.if_object(); obj && obj->contains("error")) co_return; // an error inside the stream
        if (carries_text(v)) {
          ++a.token_events;
          if (!a.ttft)
            a.ttft = seconds_between(start, now);
          else
            a.gaps.push_back(static_cast<float>(seconds_between(*last_token, now)));
          last_token = now;
        }
        if (const auto n = completion_tokens(v); n >= 0) a.usage_tokens = n;
      }
    }
    a.status = status;
    if (status != 200) {
      a.complete = true;
    } else if (streaming) {
      a.complete = done;
    } else {
      boost::system::error_code jec;
      const auto v = boost::json::parse(whole, jec);
      a.complete = !jec && v.is_object() && v.as_object().contains("choices");
      if (a.complete) a.usage_tokens = completion_tokens(v);
    }
    if (!parser.keep_alive()) c.stream.close();
  }

  run_state& run_;
  unsigned index_;
  net::io_context ioc_{1};
  std::mt19937_64 rng_;
  tally tally_;
  std::size_t generators_ = 0; // users (closed loop) or the arrival loop still sending
  std::size_t in_flight_ = 0;
  bool stopping_ = false;
  bool cut_ = false;
  std::unordered_set<connection*> active_;
  io::timer* arrival_timer_ = nullptr; // the open loop's, while it waits
  std::vector<std::unique_ptr<connection>> idle_;
  clock_type::time_point last_answer_{};
};

} // namespace

progress_snapshot live_counts::snapshot() const {
  return {sent.load(), done.load(), ok.load(), refused.load(), errors.load(), output_tokens.load(), in_flight.load()};
}

std::string validate(const load_options& o) {
  if ((o.users > 0) == (o.rate > 0)) return "give either --users (closed loop) or --rate (open loop)";
  if (o.duration_s <= 0 && o.requests == 0) return "give --duration or --requests";
  if (o.threads < 1 || o.threads > 64) return "--threads must be 1..64";
  if (o.users > 0 && o.users < o.threads) return "--users must be at least --threads";
  if (const auto u = control::parse_http_url(o.url); !u || u->tls)
    return fmt::format("not a plain http:// URL: {} (the load generator speaks plain HTTP)", o.url);
  if (o.timeout_s <= 0 || o.drain_s < 0 || o.warmup_s < 0) return "--timeout must be > 0, --drain and --warmup >= 0";
  if (o.duration_s > 0 && o.warmup_s >= o.duration_s) return "--warmup must be shorter than --duration";
  if (o.steady && o.duration_s <= 0) return "--steady needs --duration (its window ends there)";
  return {};
}

load_result run_load(const load_options& opts, live_counts& live, const std::function<void()>& tick,
                     std::chrono::milliseconds interval) {
  const auto url = control::parse_http_url(opts.url);
  if (!url) throw std::invalid_argument("bad URL: " + opts.url);
  net::io_context resolver_ioc;
  io::resolver resolver(resolver_ioc);
  const auto endpoints = resolver.resolve(url->host, std::to_string(url->port)); // throws: the CLI says why
  run_state run{opts, live, *endpoints.begin(), url->target == "/" ? "/v1/chat/completions" : url->target,
                fmt::format("{}:{}", url->host, url->port)};
  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned i = 0; i < opts.threads; ++i) workers.push_back(std::make_unique<worker>(run, i));
  std::atomic<unsigned> running{opts.threads};
  std::vector<std::thread> threads;
  for (auto& w : workers)
    threads.emplace_back([&w, &running] {
      w->run();
      --running;
    });
  while (running > 0) {
    std::this_thread::sleep_for(interval);
    if (tick) tick();
  }
  for (auto& t : threads) t.join();
  load_result out;
  auto last = run.measure_from;
  for (const auto& w : workers) {
    out.total.merge(w->result());
    last = std::max(last, w->last_answer());
  }
  out.seconds = opts.steady ? seconds_between(run.measure_from, run.stop_at) : seconds_between(run.measure_from, last);
  return out;
}

} // namespace llmgate::bench
