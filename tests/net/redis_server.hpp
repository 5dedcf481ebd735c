#pragma once
// A real redis-server for the network tests: started on a free loopback
// port chosen at run time, stopped (and, if need be, killed) by its PID.
#include "io/io.hpp"
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/types.h>
#include <vector>

namespace llmgate::testing {

class redis_server {
public:
  // config_file: passed first (redis-server reads it, e.g. for a sentinel).
  explicit redis_server(std::vector<std::string> extra_args = {}, std::string config_file = {});
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // SIGKILL now, as a crash would.
  void kill();
  // Starts again on the same port (after kill()).
  void restart();

private:
  void spawn();
  bool answers() const;
  std::vector<std::string> args_;
  std::string config_file_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Runs one coroutine on the loop to completion, in slices (a Redis client's
// own loops keep the io_context busy forever); aborts loudly past 30 s
// rather than hang on a future that never becomes ready.
template <class T> T run(boost::asio::io_context& ioc, io::task<T> a) {
  using namespace std::chrono_literals;
  auto f = boost::asio::co_spawn(ioc, std::move(a), boost::asio::use_future);
  ioc.restart();
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (f.wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() < until) ioc.run_for(5ms);
  if (f.wait_for(0s) != std::future_status::ready) {
    std::fprintf(stderr, "not done within 30 s\n");
    std::abort();
  }
  return f.get();
}

} // namespace llmgate::testing
