#pragma once
// The admin API, without I/O: routes, the bearer token, request bodies, and
// OpenAI-shaped errors. The gateway serves it on its own listener
// (admin.listen) and does what it asks through admin_target. An empty
// admin.token keeps the API closed. Every change is logged with who (the
// caller's address) and what, by the target. Pure.
//
//   GET    /admin/status                  levels, breakers, backends, rules with their use
//   PUT    /admin/models/{model}/level    {"level": 0..4}: set by hand (overrides the triggers)
//   DELETE /admin/models/{model}/level    released: the triggers decide again
//   PUT    /admin/rules/{rule}/limit      {"limit": "100/minute", "burst": 10}: in force at once
//   POST   /admin/reload                  re-reads the config file (as SIGHUP does)
#include <optional>
#include <string>
#include <string_view>

namespace llmgate::control {

struct admin_request {
  std::string_view method;        // GET, PUT, DELETE, POST
  std::string_view path;          // without the query
  std::string_view authorization; // the Authorization header
  std::string_view body;
  std::string who; // the caller, for the log (its address)
};

struct admin_response {
  int status = 200;
  std::string body; // JSON
};

// What the API acts on. A change returns nullopt when done, else why not
// (with the status to answer: 404 for an unknown name, 400 for a bad value,
// 409 when it cannot be done now).
struct admin_failure {
  int status = 400;
  std::string message;
};
class admin_target {
public:
  virtual ~admin_target() = default;
  [[nodiscard]] virtual std::string status_json() = 0;
  virtual std::optional<admin_failure> set_level(std::string_view model, int level, const std::string& who) = 0;
  virtual std::optional<admin_failure> release_level(std::string_view model, const std::string& who) = 0;
  virtual std::optional<admin_failure> set_limit(std::string_view rule, std::string_view limit,
                                                 std::optional<std::int64_t> burst, const std::string& who) = 0;
  virtual std::optional<admin_failure> reload(const std::string& who) = 0;
};

[[nodiscard]] admin_response handle_admin(const admin_request& r, admin_target& target, std::string_view token);

} // namespace llmgate::control
