#pragma once
// limits.store: redis — every rule decided in Redis for the whole fleet of
// replicas, in one round trip per request (the admit script), within
// redis.timeout. When Redis cannot answer in time, redis.on_failure decides:
// `local` (each replica limits alone, to the limit divided by the fleet size
// it last saw through the replicas' heartbeats), `allow`, or `deny`. Each
// worker has its own connection (client) on its own loop; the limiter's
// shared state is thread-safe. Include only from network translation units.
#include "control/config.hpp"
#include "limit/rule_set.hpp"
#include "observe/metrics.hpp"
#include "redis/client.hpp"

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace llmgate::limit {

class redis_limiter final {
public:
  redis_limiter(const control::config& cfg, const rule_set& rules, observe::registry& metrics);

  // A worker's connection and the script SHAs it loaded.
  struct link {
    link(boost::asio::any_io_executor ex, const control::redis_config& cfg);
    redis::client client;
    std::string admit_sha, release_sha, renew_sha, adjust_sha;
  };
  // A worker's link, connecting and loading the admit script at once (so the
  // first request does not pay for it).
  [[nodiscard]] std::unique_ptr<link> connect(boost::asio::any_io_executor ex);

  // Where a decision came from, so its release goes back to the same place.
  enum class source { redis, local_fallback, open };
  struct decided {
    admission a;
    source from = source::redis;
    std::string member;             // the request's name in Redis (its leases and log entries)
    bool unavailable = false;       // on_failure: deny refused it (answer 503)
    rule_set* fallback = nullptr;   // the local rules that admitted it (source::local_fallback)
    std::shared_ptr<bool> renewing; // its leases are being renewed until release() clears it
  };

  boost::asio::awaitable<decided> admit(link& l, const request_facts& facts, nanos now);
  // Gives back concurrency leases (or fallback slots); never waits on the request path.
  void release(link& l, const decided& d);
  // Corrects the token rules by the request's real usage (fire and forget).
  void settle_tokens(link& l, const decided& d, std::int64_t actual);
  // Keeps the request's leases alive (every lease/3) until release(): a lease
  // then expires only when its replica died holding it.
  void keep_leases(link& l, decided& d);

  // Announces this replica and learns the fleet's size, every redis.heartbeat (run on one worker).
  boost::asio::awaitable<void> heartbeat(link& l, const std::atomic<bool>& stop);

  [[nodiscard]] int replicas() const noexcept { return replicas_.load(); }
  [[nodiscard]] bool redis_up() const noexcept { return up_.load(); }

private:
  // The script's SHA, loading it (SCRIPT LOAD) within `budget` when this connection has none yet.
  boost::asio::awaitable<std::optional<std::string>> ensure_script(link& l, std::string& sha, std::string_view src,
                                                                   control::duration budget);
  void send_release(link& l, const admission& a, const std::string& member);
  void release_unanswered(link& l, const std::vector<planned_rule>& plan, const std::string& member);
  void note_failure(std::string_view why);
  void note_success();
  rule_set& fallback();

  const control::config& cfg_;
  const rule_set& rules_;
  std::string replica_id_;
  std::atomic<std::uint64_t> next_member_{0};
  std::atomic<int> replicas_;
  std::atomic<bool> up_{true};
  std::mutex fallback_mutex_;
  // Fallback rule sets by fleet size; kept for the process's life, as
  // admissions point into them (one per fleet size seen during outages).
  std::map<int, std::unique_ptr<rule_set>> fallbacks_;
  observe::counter_family& decisions_;
  observe::histogram& latency_;
  observe::gauge& up_gauge_;
  observe::gauge& replicas_gauge_;
};

} // namespace llmgate::limit
