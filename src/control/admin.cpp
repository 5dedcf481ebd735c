#include "control/admin.hpp"

#include "openai/error.hpp"

#include <boost/json.hpp>
#include <cstdint>

namespace llmgate::control {

namespace json = boost::json;

namespace {

admin_response error(int status, std::string_view message, std::string_view code) {
  const std::string_view type = status == 401   ? "authentication_error"
                                : status == 404 ? "not_found_error"
                                : status == 405 ? "invalid_request_error"
                                : status == 409 ? "conflict_error"
                                                : "invalid_request_error";
  return {status, openai::error_body(message, type, {}, code)};
}

// The token compared in time independent of where the first difference is.
bool same_secret(std::string_view given, std::string_view token) {
  if (given.size() != token.size()) return false; // its length is not the secret
  unsigned char diff = 0;
  for (std::size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token[i]);
  return diff == 0;
}

std::optional<json::object> body_object(std::string_view body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

admin_response done(const std::optional<admin_failure>& f, std::string_view what) {
  if (f) return error(f->status, f->message, f->status == 404 ? "not_found" : "invalid_value");
  return {200, json::serialize(json::object{{"ok", true}, {"done", what}})};
}

// "/admin/models/{name}/level" → name (names may hold '/', e.g. Qwen/Qwen3-1.7B).
std::optional<std::string_view> between(std::string_view path, std::string_view prefix, std::string_view suffix) {
  if (!path.starts_with(prefix) || !path.ends_with(suffix) || path.size() <= prefix.size() + suffix.size())
    return std::nullopt;
  return path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
}

} // namespace

admin_response handle_admin(const admin_request& r, admin_target& target, std::string_view token) {
  if (token.empty()) return error(403, "The admin API is closed: admin.token is empty.", "admin_closed");
  constexpr std::string_view bearer = "Bearer ";
  const auto given = r.authorization.starts_with(bearer) ? r.authorization.substr(bearer.size()) : std::string_view{};
  if (!same_secret(given, token))
    return error(401, "The admin API needs Authorization: Bearer <admin.token>.", "invalid_admin_token");

  const auto& m = r.method;
  if (r.path == "/admin/status") {
    if (m != "GET") return error(405, "Use GET.", "method_not_allowed");
    return {200, target.status_json()};
  }
  if (r.path == "/admin/reload") {
    if (m != "POST") return error(405, "Use POST.", "method_not_allowed");
    return done(target.reload(r.who), "reload");
  }
  if (const auto model = between(r.path, "/admin/models/", "/level")) {
    if (m == "DELETE") return done(target.release_level(*model, r.who), "release");
    if (m != "PUT" && m != "POST")
      return error(405, "Use PUT to set a level, DELETE to release it.", "method_not_allowed");
    const auto body = body_object(r.body);
    const auto* level = body ? body->if_contains("level") : nullptr;
    if (!level || !level->is_int64() || level->get_int64() < 0 || level->get_int64() > 4)
      return error(400, R"(Expected a body {"level": 0..4}.)", "invalid_value");
    return done(target.set_level(*model, static_cast<int>(level->get_int64()), r.who), "set level");
  }
  if (const auto rule = between(r.path, "/admin/rules/", "/limit")) {
    if (m != "PUT" && m != "POST") return error(405, "Use PUT.", "method_not_allowed");
    const auto body = body_object(r.body);
    const auto* limit = body ? body->if_contains("limit") : nullptr;
    if (!limit || !limit->is_string())
      return error(400, R"(Expected a body {"limit": "100/minute"} (and optionally "burst": N).)", "invalid_value");
    std::optional<std::int64_t> burst;
    if (const auto* b = body->if_contains("burst")) {
      if (!b->is_int64() || b->get_int64() < 1)
        return error(400, "burst must be a whole number from 1.", "invalid_value");
      burst = b->get_int64();
    }
    return done(target.set_limit(*rule, limit->get_string(), burst, r.who), "set limit");
  }
  return error(404, "No such admin endpoint (see docs/OPERATIONS.md).", "not_found");
}

} // namespace llmgate::control
