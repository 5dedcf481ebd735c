#pragma once
// An asynchronous Redis client on one event loop: one connection, pipelined
// (each command is written as soon as the previous write ends, all waiting
// ones in one write; replies are matched in order), a connect timeout, a
// per-call timeout, reconnection with backoff, and AUTH and SELECT on every
// connect. Not thread-safe: one per worker, on that worker's loop. Include
// only from translation units that speak to the network.
#include "control/duration.hpp"
#include "io/io.hpp"
#include "redis/resp.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llmgate::tls {
class context;
}

namespace llmgate::redis {

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string username; // Redis 6 ACL user; empty: the default user
  std::string password; // empty: no AUTH
  int database = 0;     // SELECT on connect when not 0
  control::duration connect_timeout = std::chrono::seconds(1);
  control::duration max_backoff = std::chrono::seconds(2); // between reconnect attempts
  // Redis Sentinel: when set, the master named master_name is looked up
  // through these (host, port) on every connect, so a failover is followed.
  std::vector<std::pair<std::string, std::uint16_t>> sentinels;
  std::string master_name = "mymaster";
  // TLS on every connection (master, sentinels, cluster nodes); null: plain.
  std::shared_ptr<const tls::context> tls;
  std::string tls_server_name; // checked instead of the host connected to, when set (the context may name it too)
};

// Errors a call can end with besides a reply (a Redis error reply is a reply).
enum class client_error { timeout = 1, disconnected, closed };
[[nodiscard]] boost::system::error_code make_error_code(client_error e);

class client final {
public:
  client(io::executor ex, client_options opts);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Sends one RESP-encoded command (see redis::command) and waits at most
  // `timeout` for its reply. A call that times out leaves its reply to be
  // read and dropped; it never blocks the pipeline behind it. `command` may
  // hold `dropped` more commands before the one whose reply is returned (as
  // Redis Cluster's ASKING before a redirected call): their replies are read
  // and dropped.
  io::task<boost::system::result<reply>> call(std::string command, control::duration timeout, int dropped = 0);

  [[nodiscard]] bool connected() const noexcept;
  [[nodiscard]] io::executor executor() const;
  // Stops reconnecting and fails every waiting call (for shutdown).
  void close();

private:
  struct impl;
  std::shared_ptr<impl> impl_; // shared with its own loops, which may outlive a call
};

} // namespace llmgate::redis
