#pragma once
// A real three-master Redis Cluster for the network tests: three
// cluster-enabled redis-servers on free loopback ports (each in its own
// temporary directory), joined by `redis-cli --cluster create`, stopped by
// their PIDs and their directories removed at the end.
#include "redis_server.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llmgate::testing {

class redis_cluster {
public:
  redis_cluster();
  ~redis_cluster();
  redis_cluster(const redis_cluster&) = delete;
  redis_cluster& operator=(const redis_cluster&) = delete;

  [[nodiscard]] std::vector<std::uint16_t> ports() const;
  // redis-cli's output of one command on the node at `port` (trailing newline removed).
  [[nodiscard]] static std::string cli(std::uint16_t port, const std::string& args);
  // The port of the master that owns `slot`.
  [[nodiscard]] std::uint16_t owner(int slot) const;
  // Waits until every node reports cluster_state:ok and they agree on who owns which slots.
  void settle() const;

private:
  std::vector<std::string> dirs_;
  std::vector<std::unique_ptr<redis_server>> nodes_;
};

} // namespace llmgate::testing
