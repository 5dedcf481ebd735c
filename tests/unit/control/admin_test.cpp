#include "control/admin.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <vector>

namespace llmgate::control {
namespace {

namespace json = boost::json;

struct recorder final : admin_target {
  std::vector<std::string> calls;
  std::string status_json() override { return R"({"models":[]})"; }
  std::optional<admin_failure> set_level(std::string_view model, int level, const std::string& who) override {
    if (model != "Qwen/Qwen3-1.7B") return admin_failure{404, "no model"};
    calls.push_back(std::string(model) + "=" + std::to_string(level) + " by " + who);
    return std::nullopt;
  }
  std::optional<admin_failure> release_level(std::string_view model, const std::string&) override {
    calls.push_back("release " + std::string(model));
    return std::nullopt;
  }
  std::optional<admin_failure> set_limit(std::string_view rule, std::string_view limit,
                                         std::optional<std::int64_t> burst, const std::string&) override {
    calls.push_back(std::string(rule) + "=" + std::string(limit) + (burst ? "/" + std::to_string(*burst) : ""));
    return std::nullopt;
  }
  std::optional<admin_failure> reload(const std::string&) override {
    calls.push_back("reload");
    return admin_failure{409, "bad config"};
  }
};

admin_response call(recorder& t, std::string_view method, std::string_view path, std::string_view body = {},
                    std::string_view auth = "Bearer s3cret", std::string_view token = "s3cret") {
  return handle_admin({method, path, auth, body, "10.0.0.9"}, t, token);
}

TEST(admin, closed_without_a_token_and_refused_without_the_right_one) {
  recorder t;
  EXPECT_EQ(call(t, "GET", "/admin/status", {}, "Bearer ", "").status, 403) << "an empty token never opens it";
  EXPECT_EQ(call(t, "GET", "/admin/status", {}, "").status, 401);
  EXPECT_EQ(call(t, "GET", "/admin/status", {}, "Bearer s3crex").status, 401);
  EXPECT_EQ(call(t, "GET", "/admin/status", {}, "Bearer s3cret2").status, 401);
  EXPECT_EQ(call(t, "GET", "/admin/status", {}, "s3cret").status, 401) << "the Bearer scheme is required";
  const auto ok = call(t, "GET", "/admin/status");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"models":[]})");
  const auto refused = json::parse(call(t, "GET", "/admin/status", {}, "").body);
  EXPECT_EQ(refused.at("error").at("code"), "invalid_admin_token"); // OpenAI-shaped
  EXPECT_TRUE(t.calls.empty());
}

TEST(admin, levels_limits_and_reload_reach_the_target) {
  recorder t;
  EXPECT_EQ(call(t, "PUT", "/admin/models/Qwen/Qwen3-1.7B/level", R"({"level":3})").status, 200);
  EXPECT_EQ(call(t, "PUT", "/admin/models/nope/level", R"({"level":3})").status, 404);
  EXPECT_EQ(call(t, "PUT", "/admin/models/Qwen/Qwen3-1.7B/level", R"({"level":5})").status, 400);
  EXPECT_EQ(call(t, "PUT", "/admin/models/Qwen/Qwen3-1.7B/level", "level=3").status, 400);
  EXPECT_EQ(call(t, "DELETE", "/admin/models/Qwen/Qwen3-1.7B/level").status, 200);
  EXPECT_EQ(call(t, "PUT", "/admin/rules/per-ip/limit", R"({"limit":"3/hour","burst":2})").status, 200);
  EXPECT_EQ(call(t, "PUT", "/admin/rules/per-ip/limit", R"({"limit":3})").status, 400);
  EXPECT_EQ(call(t, "PUT", "/admin/rules/per-ip/limit", R"({"limit":"3/hour","burst":0})").status, 400);
  EXPECT_EQ(call(t, "POST", "/admin/reload").status, 409);
  EXPECT_EQ(call(t, "GET", "/admin/reload").status, 405);
  EXPECT_EQ(call(t, "GET", "/admin/nothing").status, 404);
  EXPECT_EQ(t.calls, (std::vector<std::string>{"Qwen/Qwen3-1.7B=3 by 10.0.0.9", "release Qwen/Qwen3-1.7B",
                                               "per-ip=3/hour/2", "reload"}));
}

} // namespace
} // namespace llmgate::control
