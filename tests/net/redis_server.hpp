#pragma once
// A real redis-server for the network tests: started on a free loopback
// port chosen at run time, stopped (and, if need be, killed) by its PID.
#include <cstdint>
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

} // namespace llmgate::testing
