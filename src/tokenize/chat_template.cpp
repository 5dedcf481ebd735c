#include "tokenize/chat_template.hpp"

#include "openai/error.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

namespace llmgate::tokenize {

namespace json = boost::json;

namespace {

void dump(std::string& out, const json::value& v) {
  switch (v.kind()) {
  case json::kind::null: out += "null"; return;
  case json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
  case json::kind::int64: out += std::to_string(v.get_int64()); return;
  case json::kind::uint64: out += std::to_string(v.get_uint64()); return;
  case json::kind::double_: { // Python's repr: shortest round trip, "1.0" rather than "1"
    auto text = fmt::format("{}", v.get_double());
    if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
    out += text;
    return;
  }
  case json::kind::string: {
    // Python escapes the quote, backslash and control characters (\\uXXXX
    // in lower case for those without a short form); ensure_ascii=False
    // keeps the rest: what the OpenAI layer's JSON string writer does.
    openai::append_json_string(out, v.get_string());
    return;
  }
  case json::kind::array: {
    out += '[';
    bool first = true;
    for (const auto& e : v.get_array()) {
      if (!first) out += ", ";
      first = false;
      dump(out, e);
    }
    out += ']';
    return;
  }
  case json::kind::object: {
    out += '{';
    bool first = true;
    for (const auto& [k, e] : v.get_object()) {
      if (!first) out += ", ";
      first = false;
      dump(out, json::value(k));
      out += ": ";
      dump(out, e);
    }
    out += '}';
    return;
  }
  }
}

// A message's content as text: a string, or the text parts of an array.
std::string text_of(const json::object& m) {
  const auto* c = m.if_contains("content");
  if (!c || c->is_null()) return {};
  if (c->is_string()) return std::string(c->get_string());
  std::string out;
  if (c->is_array())
    for (const auto& part : c->get_array())
      if (part.is_object())
        if (const auto* t = part.get_object().if_contains("text"); t && t->is_string()) out += t->get_string();
  return out;
}

std::string role_of(const json::object& m) {
  const auto* r = m.if_contains("role");
  return r && r->is_string() ? std::string(r->get_string()) : std::string();
}

std::string strip(std::string s, const char* chars, bool left, bool right) {
  if (left) s.erase(0, s.find_first_not_of(chars) == std::string::npos ? s.size() : s.find_first_not_of(chars));
  if (right) {
    const auto last = s.find_last_not_of(chars);
    s.erase(last == std::string::npos ? 0 : last + 1);
  }
  return s;
}

} // namespace

std::string python_json(const json::value& v) {
  std::string out;
  dump(out, v);
  return out;
}

std::string render_qwen3_chat(const json::object& body, std::optional<bool> enable_thinking) {
  std::vector<const json::object*> messages;
  if (const auto* ms = body.if_contains("messages"); ms && ms->is_array())
    for (const auto& m : ms->get_array())
      if (m.is_object()) messages.push_back(&m.get_object());
  const json::array* tools = nullptr;
  if (const auto* t = body.if_contains("tools"); t && t->is_array() && !t->get_array().empty()) tools = &t->get_array();

  std::string out;
  const bool first_is_system = !messages.empty() && role_of(*messages[0]) == "system";
  if (tools) {
    out += "<|im_start|>system\n";
    if (first_is_system) out += text_of(*messages[0]) + "\n\n";
    out += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
           "function signatures within <tools></tools> XML tags:\n<tools>";
    for (const auto& tool : *tools) out += "\n" + python_json(tool);
    out += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
           "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
           "<args-json-object>}\n</tool_call><|im_end|>\n";
  } else if (first_is_system) {
    out += "<|im_start|>system\n" + text_of(*messages[0]) + "<|im_end|>\n";
  }
  // The last user query that is not a tool response: reasoning is kept only after it.
  std::size_t last_query = messages.empty() ? 0 : messages.size() - 1;
  for (std::size_t i = messages.size(); i-- > 0;) {
    const auto text = text_of(*messages[i]);
    if (role_of(*messages[i]) == "user" &&
        !(text.starts_with("<tool_response>") && text.ends_with("</tool_response>"))) {
      last_query = i;
      break;
    }
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = *messages[i];
    const auto role = role_of(m);
    if (role == "user" || (role == "system" && i != 0)) {
      out += "<|im_start|>" + role + "\n" + text_of(m) + "<|im_end|>\n";
    } else if (role == "assistant") {
      std::string content = text_of(m);
      std::string reasoning;
      if (const auto* r = m.if_contains("reasoning_content"); r && r->is_string()) {
        reasoning = r->get_string();
      } else if (const auto end = content.find("</think>"); end != std::string::npos) {
        std::string before = content.substr(0, content.rfind("</think>"));
        reasoning = strip(before, "\n", false, true);
        if (const auto open = reasoning.rfind("<think>"); open != std::string::npos)
          reasoning = reasoning.substr(open + 7);
        reasoning = strip(reasoning, "\n", true, false);
        content = strip(content.substr(content.rfind("</think>") + 8), "\n", true, false);
      }
      const bool last = i + 1 == messages.size();
      if (i > last_query && (last || !reasoning.empty()))
        out += "<|im_start|>" + role + "\n<think>\n" + strip(reasoning, "\n", true, true) + "\n</think>\n\n" +
               strip(content, "\n", true, false);
      else
        out += "<|im_start|>" + role + "\n" + content;
      if (const auto* calls = m.if_contains("tool_calls"); calls && calls->is_array()) {
        bool first = true;
        for (const auto& call_value : calls->get_array()) {
          if (!call_value.is_object()) continue;
          const json::object* call = &call_value.get_object();
          if (const auto* f = call->if_contains("function"); f && f->is_object()) call = &f->get_object();
          if ((first && !content.empty()) || !first) out += "\n";
          first = false;
          const auto* name = call->if_contains("name");
          out += "<tool_call>\n{\"name\": \"" + std::string(name && name->is_string() ? name->get_string() : "") +
                 "\", \"arguments\": ";
          const auto* args = call->if_contains("arguments");
          if (args && args->is_string())
            out += args->get_string();
          else if (args)
            out += python_json(*args);
          out += "}\n</tool_call>";
        }
      }
      out += "<|im_end|>\n";
    } else if (role == "tool") {
      if (i == 0 || role_of(*messages[i - 1]) != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + text_of(m) + "\n</tool_response>";
      if (i + 1 == messages.size() || role_of(*messages[i + 1]) != "tool") out += "<|im_end|>\n";
    }
  }
  out += "<|im_start|>assistant\n";
  if (enable_thinking == false) out += "<think>\n\n</think>\n\n";
  return out;
}

} // namespace llmgate::tokenize
