#pragma once
// Calls routed by key slot. With seed nodes it speaks to a Redis Cluster:
// each call goes to the master that owns its slot (one pipelined client per
// master), the slot map is learnt from CLUSTER SLOTS (at the first call,
// after a MOVED, after a lost connection) while calls keep flowing, MOVED
// and ASK redirections are followed, and TRYAGAIN / CLUSTERDOWN are retried
// within the call's time. Without seeds it is one server (or the master
// Sentinel names) that owns every slot: no discovery, no redirection. Not
// thread-safe: one per worker, on that worker's loop. Include only from
// translation units that speak to the network.
#include "io/io.hpp"
#include "redis/client.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llmgate::redis {

class cluster final {
public:
  // node: what every connection uses (AUTH, timeouts; host and port when
  // there are no seeds). seeds: a Redis Cluster's nodes to learn it from.
  cluster(io::executor ex, client_options node, std::vector<std::pair<std::string, std::uint16_t>> seeds = {});
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  // One command whose keys are all in `slot` (see key_slot), within `timeout` in all.
  io::task<boost::system::result<reply>> call(std::uint16_t slot, std::string command, control::duration timeout);

  [[nodiscard]] bool is_cluster() const noexcept;
  // MOVED and ASK redirections followed so far.
  [[nodiscard]] std::uint64_t redirections() const noexcept;
  [[nodiscard]] io::executor executor() const;
  // Stops every connection and fails every waiting call (for shutdown).
  void close();

private:
  struct impl;
  std::shared_ptr<impl> impl_; // shared with the slot-map refresh, which may outlive a call
};

} // namespace llmgate::redis
