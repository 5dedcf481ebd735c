#include "openai/body_rewrite.hpp"

#include <boost/json/serialize.hpp>

namespace llmgate::openai {

namespace json = boost::json;

namespace {

json::object* last_user_message(json::object& body) {
  auto* messages = body.if_contains("messages");
  if (!messages || !messages->is_array()) return nullptr;
  auto& arr = messages->get_array();
  for (auto it = arr.rbegin(); it != arr.rend(); ++it) {
    if (!it->is_object()) continue;
    auto& m = it->get_object();
    if (const auto* role = m.if_contains("role"); role && role->is_string() && role->get_string() == "user") return &m;
  }
  return nullptr;
}

void append_no_think(json::object& body) {
  auto* m = last_user_message(body);
  if (!m) return;
  auto& content = (*m)["content"];
  if (content.is_string()) {
    std::string text(content.get_string());
    text += " /no_think";
    content = text;
  } else if (content.is_array()) {
    content.get_array().push_back(json::object{{"type", "text"}, {"text", "/no_think"}});
  }
}

std::string_view text_of(const json::value& content) {
  if (content.is_string()) return content.get_string();
  if (content.is_array() && !content.get_array().empty()) {
    const auto& last = content.get_array().back();
    if (last.is_object())
      if (const auto* t = last.get_object().if_contains("text"); t && t->is_string()) return t->get_string();
  }
  return {};
}

} // namespace

bool has_soft_switch(const json::object& body, bool* thinking_on) {
  auto* m = last_user_message(const_cast<json::object&>(body));
  if (!m) return false;
  const auto* content = m->if_contains("content");
  if (!content) return false;
  const std::string_view text = text_of(*content);
  // Qwen3 obeys the last switch in the turn.
  const auto no = text.rfind("/no_think");
  const auto yes = text.rfind("/think");
  if (no == std::string_view::npos && yes == std::string_view::npos) return false;
  if (thinking_on) *thinking_on = no == std::string_view::npos || (yes != std::string_view::npos && yes > no + 1);
  return true;
}

std::optional<std::string> rewrite_request(const request_view& view, std::string_view upstream_model, backend_kind kind,
                                           const rewrite_options& opts) {
  const bool stream_off = opts.stream_off && view.stream;
  const bool add_usage = opts.want_usage && view.stream && !view.include_usage && !stream_off;
  const std::optional<bool> enable_thinking = opts.thinking_off ? std::optional<bool>(false) : view.enable_thinking;
  const bool chat = view.kind == endpoint::chat_completions;
  const bool needs_soft_switch = chat && enable_thinking == false && !takes_template_kwargs(kind);
  const bool needs_kwargs = chat && enable_thinking.has_value() && takes_template_kwargs(kind) &&
                            view.kwargs_enable_thinking != enable_thinking;
  const bool kwargs_unwanted = view.kwargs_present && !takes_template_kwargs(kind);
  // Decided from what parse_request read: the body is built only to be rewritten.
  if (view.model == upstream_model && !view.thinking_at_top_level && !view.kwargs_return_reasoning &&
      !needs_soft_switch && !needs_kwargs && !kwargs_unwanted && !add_usage && !stream_off)
    return std::nullopt;

  json::object body = view.body();
  body["model"] = upstream_model;
  if (stream_off) {
    body["stream"] = false;
    body.erase("stream_options");
  }
  if (add_usage) {
    auto& opts = body["stream_options"];
    if (!opts.is_object()) opts = json::object{};
    opts.get_object()["include_usage"] = true;
  }
  body.erase("enable_thinking");
  body.erase("return_reasoning");
  if (auto* kw = body.if_contains("chat_template_kwargs"); kw && kw->is_object()) {
    kw->get_object().erase("return_reasoning");
    if (!takes_template_kwargs(kind)) kw->get_object().erase("enable_thinking");
    if (kw->get_object().empty()) body.erase("chat_template_kwargs");
  }
  if (chat && enable_thinking.has_value()) {
    if (takes_template_kwargs(kind)) {
      auto& kw = body["chat_template_kwargs"];
      if (!kw.is_object()) kw = json::object{};
      kw.get_object()["enable_thinking"] = *enable_thinking;
    } else if (!*enable_thinking) {
      // The client's own switch stands, except a "/think" under the ladder's
      // L2: a "/no_think" after it wins (Qwen3 obeys the last one).
      bool on = false;
      if (!has_soft_switch(body, &on) || (on && opts.thinking_off)) append_no_think(body);
    }
  }
  return json::serialize(body);
}

} // namespace llmgate::openai
