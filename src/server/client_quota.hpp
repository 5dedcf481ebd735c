#pragma once
// Connections open per client address (server.max_connections_per_client),
// so one client cannot take the gateway's file descriptors. Thread-safe:
// every worker's accept loop takes and gives back here.
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace llmgate::server {

class client_quota final {
public:
  // cap 0: no cap (take always succeeds and nothing is tracked).
  explicit client_quota(std::uint32_t cap) : cap_(cap) {}
  // One more connection from `address`, or false when it already holds cap.
  [[nodiscard]] bool take(const std::string& address);
  // The connection taken for `address` closed (call once per successful take).
  void give_back(const std::string& address);
  // Addresses holding at least one connection (what the map costs).
  [[nodiscard]] std::size_t tracked() const;

private:
  std::uint32_t cap_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::uint32_t> open_;
};

} // namespace llmgate::server
