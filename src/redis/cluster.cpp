#include "redis/cluster.hpp"
#include "io/io.hpp"

#include "redis/slot.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <spdlog/spdlog.h>

namespace llmgate::redis {

namespace net = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

constexpr int k_max_hops = 5;                                       // redirections and retries of one call
constexpr auto k_refresh_interval = std::chrono::milliseconds(100); // at most one slot-map refresh per interval
constexpr std::string_view k_asking = "*1\r\n$6\r\nASKING\r\n";
constexpr auto k_retry_pause = std::chrono::milliseconds(1); // the first pause before retrying a TRYAGAIN

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381" (an empty host: the node that answered).
struct redirect {
  bool ask = false;
  std::string host;
  std::uint16_t port = 0;
};

std::optional<redirect> parse_redirect(std::string_view error) {
  redirect r;
  if (error.starts_with("MOVED "))
    error.remove_prefix(6);
  else if (error.starts_with("ASK ")) {
    error.remove_prefix(4);
    r.ask = true;
  } else
    return std::nullopt;
  const auto space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto address = error.substr(space + 1);
  const auto colon = address.rfind(':'); // an IPv6 host has colons of its own
  if (colon == std::string_view::npos) return std::nullopt;
  const auto port = address.substr(colon + 1);
  if (std::from_chars(port.data(), port.data() + port.size(), r.port).ec != std::errc{}) return std::nullopt;
  r.host = std::string(address.substr(0, colon));
  return r;
}

} // namespace

struct cluster::impl : std::enable_shared_from_this<impl> {
  struct node {
    std::string host;
    std::uint16_t port;
    std::unique_ptr<client> conn;
  };

  impl(io::executor e, client_options o, std::vector<std::pair<std::string, std::uint16_t>> s)
      : ex(std::move(e)), opts(std::move(o)), clustered(!s.empty()) {
    owner.fill(-1);
    if (!clustered) {
      nodes.push_back({opts.host, opts.port, std::make_unique<client>(ex, opts)});
      return;
    }
    opts.sentinels.clear(); // a cluster finds its masters itself
    for (auto& [host, port] : s) (void)node_at(host, port);
  }

  io::executor ex;
  client_options opts;
  bool clustered;
  bool closed = false;
  std::vector<node> nodes;                 // every node ever routed to (a handful); indices are stable
  std::array<std::int16_t, k_slots> owner; // slot → index in nodes, -1 while unknown
  bool refreshing = false, refresh_again = false;
  clock::time_point last_refresh{};
  std::uint64_t redirected = 0;
  std::size_t next_seed = 0;

  std::size_t node_at(const std::string& host, std::uint16_t port) {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].host == host && nodes[i].port == port) return i;
    auto o = opts;
    o.host = host;
    o.port = port;
    nodes.push_back({host, port, std::make_unique<client>(ex, std::move(o))});
    return nodes.size() - 1;
  }

  // The slot map is re-read in the background; calls meanwhile follow MOVED.
  void refresh() {
    if (closed) return;
    if (refreshing) {
      refresh_again = true;
      return;
    }
    refreshing = true;
    net::co_spawn(ex, refresh_loop(shared_from_this()), net::detached);
  }

  static io::task<void> refresh_loop(std::shared_ptr<impl> self) {
    do {
      self->refresh_again = false;
      const auto due = self->last_refresh + k_refresh_interval;
      if (due > clock::now()) {
        io::timer t(self->ex, due);
        co_await t.async_wait(io::k_tuple);
      }
      self->last_refresh = clock::now();
      if (self->closed) break;
      co_await self->read_slot_map();
    } while (self->refresh_again && !self->closed);
    self->refreshing = false;
  }

  // CLUSTER SLOTS from the first node that answers: [[first, last, [host, port, id], replicas...], ...]
  io::task<void> read_slot_map() {
    const auto ask = command({"CLUSTER", "SLOTS"});
    for (std::size_t i = 0; i < nodes.size() && !closed; ++i) {
      const auto asked = nodes[i].host;
      auto r = co_await nodes[i].conn->call(ask, opts.connect_timeout);
      if (!r || r->type != reply::kind::array || r->elements.empty()) continue;
      std::array<std::int16_t, k_slots> fresh;
      fresh.fill(-1);
      bool whole = true;
      for (const auto& range : r->elements) {
        if (range.type != reply::kind::array || range.elements.size() < 3 ||
            range.elements[0].type != reply::kind::integer || range.elements[1].type != reply::kind::integer ||
            range.elements[2].type != reply::kind::array || range.elements[2].elements.size() < 2) {
          whole = false;
          break;
        }
        const auto& master = range.elements[2].elements;
        auto host = master[0].text.empty() ? asked : master[0].text;
        const auto at = node_at(host, static_cast<std::uint16_t>(master[1].integer));
        const auto first = std::max<std::int64_t>(0, range.elements[0].integer);
        const auto last = std::min<std::int64_t>(k_slots - 1, range.elements[1].integer);
        for (auto s = first; s <= last; ++s) fresh[static_cast<std::size_t>(s)] = static_cast<std::int16_t>(at);
      }
      if (!whole) continue;
      owner = fresh;
      co_return;
    }
    spdlog::warn("redis cluster: no node answered CLUSTER SLOTS; calls follow redirections meanwhile");
  }

  std::size_t route(std::uint16_t slot) {
    if (owner[slot] >= 0) return static_cast<std::size_t>(owner[slot]);
    return next_seed++ % nodes.size(); // unknown yet: any node, whose MOVED tells where it is
  }

  io::task<boost::system::result<reply>> call(std::uint16_t slot, std::string cmd, control::duration timeout) {
    if (!clustered) co_return co_await nodes.front().conn->call(std::move(cmd), timeout);
    if (last_refresh == clock::time_point{}) refresh(); // the first call learns the map
    const auto deadline = clock::now() + timeout;
    auto at = route(slot);
    bool asking = false;
    clock::duration pause_for = k_retry_pause;
    boost::system::result<reply> r = make_error_code(client_error::timeout);
    for (int hop = 0; hop < k_max_hops;) { // redirections are counted; TRYAGAIN waits until the deadline
      const auto left = std::chrono::duration_cast<control::duration>(deadline - clock::now());
      if (left.count() <= 0) co_return make_error_code(client_error::timeout);
      auto self = shared_from_this(); // nodes may grow while this call waits; keep the impl alive
      auto& conn = *nodes[at].conn;
      if (asking) {
        std::string both(k_asking); // this call only: the slot is being migrated there
        both += cmd;
        r = co_await conn.call(std::move(both), left, 1);
      } else {
        r = co_await conn.call(cmd, left);
      }
      const bool asked = asking;
      asking = false;
      if (!r) {
        if (r.error() == make_error_code(client_error::disconnected)) refresh(); // a master may have failed over
        co_return r;
      }
      if (!r->is_error()) co_return r;
      if (auto to = parse_redirect(r->text)) {
        ++redirected;
        ++hop;
        at = node_at(to->host.empty() ? nodes[at].host : to->host, to->port);
        if (to->ask) {
          asking = true;
        } else {
          owner[slot] = static_cast<std::int16_t>(at);
          refresh(); // a MOVED seldom comes alone: the map changed
        }
        continue;
      }
      if (r->text.starts_with("TRYAGAIN") || r->text.starts_with("CLUSTERDOWN")) {
        // A multi-key call during a slot's move, or a failover under way:
        // again after a growing pause, on the same node (still with ASKING
        // if that is where an ASK sent it), until the call's time is up.
        if (clock::now() + pause_for >= deadline) co_return r;
        io::timer pause(ex, pause_for);
        co_await pause.async_wait(io::k_tuple);
        pause_for = std::min<clock::duration>(pause_for * 2, std::chrono::milliseconds(8));
        asking = asked;
        continue;
      }
      co_return r;
    }
    co_return r; // still redirected after k_max_hops: the last answer
  }
};

cluster::cluster(io::executor ex, client_options node, std::vector<std::pair<std::string, std::uint16_t>> seeds)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(node), std::move(seeds))) {}

cluster::~cluster() { close(); }

io::task<boost::system::result<reply>> cluster::call(std::uint16_t slot, std::string command,
                                                     control::duration timeout) {
  auto self = impl_;
  co_return co_await self->call(slot, std::move(command), timeout);
}

bool cluster::is_cluster() const noexcept { return impl_->clustered; }

std::uint64_t cluster::redirections() const noexcept { return impl_->redirected; }

io::executor cluster::executor() const { return impl_->ex; }

void cluster::close() {
  impl_->closed = true;
  for (auto& n : impl_->nodes) n.conn->close();
}

} // namespace llmgate::redis
