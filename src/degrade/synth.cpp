#include "degrade/synth.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>

namespace llmgate::degrade {

namespace json = boost::json;

namespace {

void add_event(std::string& out, const json::object& chunk) {
  out += "data: ";
  out += json::serialize(chunk);
  out += "\n\n";
}

// A chunk's envelope: the completion's id, created and model, and its kind of object.
json::object envelope(const json::object& c, bool chat) {
  json::object e;
  for (const auto* k : {"id", "created", "model", "system_fingerprint"})
    if (const auto* v = c.if_contains(k)) e[k] = *v;
  e["object"] = chat ? "chat.completion.chunk" : "text_completion";
  return e;
}

} // namespace

std::optional<std::string> completion_to_sse(std::string_view completion, openai::endpoint kind, bool include_usage) {
  boost::system::error_code ec;
  auto parsed = json::parse(completion, ec);
  if (ec || !parsed.is_object()) return std::nullopt;
  const auto& c = parsed.get_object();
  const auto* choices = c.if_contains("choices");
  if (!choices || !choices->is_array()) return std::nullopt;
  const bool chat = kind == openai::endpoint::chat_completions;

  auto first = envelope(c, chat), last = envelope(c, chat);
  json::array first_choices, last_choices;
  for (const auto& ch : choices->get_array()) {
    if (!ch.is_object()) return std::nullopt;
    const auto& choice = ch.get_object();
    const auto index = choice.contains("index") ? choice.at("index") : json::value(first_choices.size());
    json::object a{{"index", index}}, b{{"index", index}};
    if (chat) {
      const auto* message = choice.if_contains("message");
      if (!message || !message->is_object()) return std::nullopt;
      json::object delta{{"role", "assistant"}};
      for (const auto& [k, v] : message->get_object()) {
        if (k == "role") continue;
        if (k == "tool_calls" && v.is_array()) { // a stream's tool calls carry their index
          json::array calls;
          std::size_t i = 0;
          for (const auto& call : v.get_array()) {
            json::object one{{"index", i++}};
            if (call.is_object())
              for (const auto& [ck, cv] : call.get_object()) one[ck] = cv;
            calls.push_back(std::move(one));
          }
          delta["tool_calls"] = std::move(calls);
        } else if (!v.is_null()) {
          delta[k] = v;
        }
      }
      a["delta"] = std::move(delta);
      b["delta"] = json::object{};
    } else {
      a["text"] = choice.contains("text") ? choice.at("text") : json::value("");
      b["text"] = "";
    }
    a["logprobs"] = nullptr;
    a["finish_reason"] = nullptr;
    b["finish_reason"] = choice.contains("finish_reason") ? choice.at("finish_reason") : json::value("stop");
    first_choices.push_back(std::move(a));
    last_choices.push_back(std::move(b));
  }
  first["choices"] = std::move(first_choices);
  last["choices"] = std::move(last_choices);
  std::string out;
  add_event(out, first);
  add_event(out, last);
  if (include_usage) {
    auto usage = envelope(c, chat);
    usage["choices"] = json::array{};
    usage["usage"] = c.contains("usage") ? c.at("usage") : json::value(nullptr);
    add_event(out, usage);
  }
  out += "data: [DONE]\n\n";
  return out;
}

std::string static_completion(std::string_view text, std::string_view model, openai::endpoint kind, bool stream,
                              bool include_usage, std::string_view id) {
  const bool chat = kind == openai::endpoint::chat_completions;
  const auto created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  json::object choice{{"index", 0}, {"finish_reason", "stop"}, {"logprobs", nullptr}};
  if (chat)
    choice["message"] = json::object{{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  json::object c{{"id", std::string(chat ? "chatcmpl-" : "cmpl-") + std::string(id)},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", model},
                 {"choices", json::array{std::move(choice)}},
                 {"usage", json::object{{"prompt_tokens", 0}, {"completion_tokens", 0}, {"total_tokens", 0}}}};
  auto whole = json::serialize(c);
  if (!stream) return whole;
  return *completion_to_sse(whole, kind, include_usage);
}

} // namespace llmgate::degrade
