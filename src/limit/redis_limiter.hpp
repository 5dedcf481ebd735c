#pragma once
// limits.store: redis — every rule decided in Redis for the whole fleet of
// replicas, in one round trip per request (the admit script), within
// redis.timeout. On a Redis Cluster the rules are grouped by slot: one call
// per slot, all at once; when one slot refuses, what the others committed is
// taken back (reserve-then-commit, see docs/ARCHITECTURE.md for the window). When Redis cannot answer in time,
// redis.on_failure decides: `local` (each replica limits alone, to the limit divided by the fleet size it last saw
// through the replicas' heartbeats), `allow`, or `deny`. Each worker has its own connection (client) on its own loop;
// the limiter's shared state is thread-safe. Include only from network translation units.
#include "control/config.hpp"
#include "io/io.hpp"
#include "limit/redis_store.hpp"
#include "limit/rule_set.hpp"
#include "observe/metrics.hpp"
#include "redis/cluster.hpp"

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace llmgate::tls {
class context;
}

namespace llmgate::limit {

class redis_limiter final {
public:
  // The rules come with each admission (a reload or an admin change replaces them while requests run).
  redis_limiter(const control::config& cfg, observe::registry& metrics);

  enum class script { admit, release, renew, adjust, undo };
  // A worker's connections (one per Redis master) and the script SHAs it loaded.
  struct link {
    link(io::executor ex, const control::redis_config& cfg, std::shared_ptr<const tls::context> tls = nullptr);
    redis::cluster redis;
    std::array<std::string, 5> shas; // by script
  };
  // A worker's link, connecting and loading the admit script at once (so the
  // first request does not pay for it).
  [[nodiscard]] std::unique_ptr<link> connect(io::executor ex);

  // Where a decision came from, so its release goes back to the same place.
  enum class source { redis, local_fallback, open };
  struct decided {
    admission a;
    std::shared_ptr<const rule_set> rules; // the set that planned it (its releases and settlements use it)
    source from = source::redis;
    std::string member;             // the request's name in Redis (its leases and log entries)
    bool unavailable = false;       // on_failure: deny refused it (answer 503)
    rule_set* fallback = nullptr;   // the local rules that admitted it (source::local_fallback)
    std::shared_ptr<bool> renewing; // its leases are being renewed until release() clears it
  };

  io::task<decided> admit(link& l, std::shared_ptr<const rule_set> rules, const request_facts& facts, nanos now);
  // Gives back concurrency leases (or fallback slots); never waits on the request path.
  void release(link& l, const decided& d);
  // Corrects the token rules by the request's real usage (fire and forget).
  void settle_tokens(link& l, const decided& d, std::int64_t actual);
  // Keeps the request's leases alive (every lease/3) until release(): a lease
  // then expires only when its replica died holding it.
  void keep_leases(link& l, decided& d);

  // Announces this replica and learns the fleet's size, every redis.heartbeat (run on one worker).
  io::task<void> heartbeat(link& l, const std::atomic<bool>& stop);

  [[nodiscard]] int replicas() const noexcept { return replicas_.load(); }
  [[nodiscard]] bool redis_up() const noexcept { return up_.load(); }

  // A script's answer, or why there is none.
  struct answer {
    std::optional<redis::reply> reply;
    std::string why;
  };

private:
  using clock = std::chrono::steady_clock;
  // Calls a script by SHA (built by `build` from it) on the node of `slot`,
  // loading the script there first when that node lacks it (NOSCRIPT).
  io::task<answer> eval(link& l, script s, std::uint16_t slot, std::function<std::string(std::string_view sha)> build,
                        clock::time_point deadline);
  // The admit script for the planned rules `sub` (one slot's), answered by `deadline`.
  io::task<answer> admit_slot(link& l, const rule_set& rules, std::vector<planned_rule> sub, std::uint16_t slot,
                              std::string member, clock::time_point deadline);
  [[nodiscard]] std::vector<slot_group> slot_groups(const link& l, const rule_set& rules,
                                                    const std::vector<planned_rule>& plan) const;
  // Every slot's admit call at once.
  io::task<std::vector<answer>> admit_all(link& l, const std::shared_ptr<const rule_set>& rules,
                                          const std::vector<slot_group>& groups,
                                          const std::vector<std::vector<planned_rule>>& subs, const std::string& member,
                                          clock::time_point deadline);
  decided conclude(link& l, const request_facts& facts, nanos now, decided out, const std::vector<planned_rule>& plan,
                   const std::vector<slot_group>& groups, const std::vector<std::vector<planned_rule>>& subs,
                   const std::vector<answer>& answers, clock::time_point started);
  // An admission's holds by slot (all of them together when not a cluster).
  [[nodiscard]] std::vector<std::pair<std::uint16_t, admission>> by_slot(const link& l, const rule_set& rules,
                                                                         const admission& a) const;
  // Fire and forget: one script call per slot of the admission's holds.
  void send_by_slot(link& l, const rule_set& rules, script s, const admission& a,
                    std::function<std::string(std::string_view sha, const admission& part)> build);
  void send_release(link& l, const std::shared_ptr<const rule_set>& rules, const admission& a,
                    const std::string& member);
  void send_undo(link& l, const std::shared_ptr<const rule_set>& rules, std::vector<planned_rule> sub,
                 std::vector<decision> verdicts, std::uint16_t slot, const std::string& member, std::int64_t at_us);
  void release_unanswered(link& l, const std::shared_ptr<const rule_set>& rules, const std::vector<planned_rule>& plan,
                          const std::string& member);
  void note_failure(std::string_view why);
  void note_success();
  // The local rules of `rules` with every limit divided by the fleet size last seen.
  rule_set& fallback(const std::shared_ptr<const rule_set>& rules);

  const control::config& cfg_;
  std::shared_ptr<const tls::context> tls_; // redis.tls: every link's connections
  std::string replica_id_;
  std::atomic<std::uint64_t> next_member_{0};
  std::atomic<int> replicas_;
  std::atomic<bool> up_{true};
  std::mutex fallback_mutex_;
  // Fallback rule sets by the rules they stand for and the fleet size; kept
  // for the process's life, as admissions point into them (one per rule set
  // and fleet size seen during outages). The latest per fleet size carries
  // its state into the next rule set's.
  std::map<std::pair<const rule_set*, int>, std::pair<std::shared_ptr<const rule_set>, std::unique_ptr<rule_set>>>
      fallbacks_;
  std::map<int, rule_set*> latest_fallback_;
  observe::counter_family& decisions_;
  observe::counter& rollbacks_;
  observe::histogram& latency_;
  observe::gauge& up_gauge_;
  observe::gauge& replicas_gauge_;
};

} // namespace llmgate::limit
