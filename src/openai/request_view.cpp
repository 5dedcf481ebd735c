#include "openai/request_view.hpp"

#include <algorithm>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <fmt/format.h>

namespace llmgate::openai {

namespace json = boost::json;

namespace {

using parse_result = boost::system::result<request_view, local_reply>;

std::string_view type_name(const json::value& v) {
  switch (v.kind()) {
  case json::kind::null: return "null";
  case json::kind::bool_: return "boolean";
  case json::kind::int64:
  case json::kind::uint64: return "integer";
  case json::kind::double_: return "number";
  case json::kind::string: return "string";
  case json::kind::array: return "array";
  case json::kind::object: return "object";
  }
  return "value";
}

local_reply wrong_type(std::string_view param, std::string_view expected, const json::value& got) {
  return invalid_request(fmt::format("'{}' must be {}, got {}.", param, expected, type_name(got)), param,
                         "invalid_type");
}

// An integer field (v: its value, null when absent): absent or null gives
// nullopt; a double that is integral is accepted (JS clients send 1.0).
boost::system::result<std::optional<std::int64_t>, local_reply> optional_int(const json::value* v,
                                                                             std::string_view key) {
  if (!v || v->is_null()) return std::optional<std::int64_t>{};
  if (v->is_uint64() && v->get_uint64() > static_cast<std::uint64_t>(INT64_MAX))
    return invalid_request(fmt::format("'{}' is too large.", key), key, "invalid_value");
  if (const auto n = whole_number(*v)) return std::optional<std::int64_t>{*n};
  return wrong_type(key, "an integer", *v);
}

boost::system::result<std::optional<bool>, local_reply> optional_bool(const json::value* v, std::string_view param) {
  if (!v || v->is_null()) return std::optional<bool>{};
  if (!v->is_bool()) return wrong_type(param, "a boolean", *v);
  return std::optional<bool>{v->get_bool()};
}

std::optional<local_reply> check_number(const json::value* v, std::string_view key, double lo, double hi) {
  if (!v || v->is_null()) return std::nullopt;
  if (!v->is_number()) return wrong_type(key, "a number", *v);
  const double d = v->to_number<double>();
  if (d < lo || d > hi)
    return invalid_request(fmt::format("'{}' must be between {} and {}, got {}.", key, lo, hi, d), key,
                           "invalid_value");
  return std::nullopt;
}

// The top-level fields the gateway reads, found in one pass over the body
// (a lookup per field scanned the object a dozen times per request).
struct top_fields {
  const json::value* model = nullptr;
  const json::value* messages = nullptr;
  const json::value* prompt = nullptr;
  const json::value* stream = nullptr;
  const json::value* stream_options = nullptr;
  const json::value* max_tokens = nullptr;
  const json::value* max_completion_tokens = nullptr;
  const json::value* n = nullptr;
  const json::value* temperature = nullptr;
  const json::value* top_p = nullptr;
  const json::value* tools = nullptr;
  const json::value* enable_thinking = nullptr;
  const json::value* return_reasoning = nullptr;
  const json::value* chat_template_kwargs = nullptr;
};

top_fields scan(const json::object& body) {
  top_fields f;
  for (const auto& kv : body) {
    const std::string_view k = kv.key();
    const json::value* v = &kv.value();
    switch (k.size()) { // the length first: most keys are settled by it
    case 1:
      if (k == "n") f.n = v;
      break;
    case 5:
      if (k == "model")
        f.model = v;
      else if (k == "top_p")
        f.top_p = v;
      else if (k == "tools")
        f.tools = v;
      break;
    case 6:
      if (k == "stream")
        f.stream = v;
      else if (k == "prompt")
        f.prompt = v;
      break;
    case 8:
      if (k == "messages") f.messages = v;
      break;
    case 10:
      if (k == "max_tokens") f.max_tokens = v;
      break;
    case 11:
      if (k == "temperature") f.temperature = v;
      break;
    case 14:
      if (k == "stream_options") f.stream_options = v;
      break;
    case 15:
      if (k == "enable_thinking") f.enable_thinking = v;
      break;
    case 16:
      if (k == "return_reasoning") f.return_reasoning = v;
      break;
    case 20:
      if (k == "chat_template_kwargs") f.chat_template_kwargs = v;
      break;
    case 21:
      if (k == "max_completion_tokens") f.max_completion_tokens = v;
      break;
    default: break;
    }
  }
  return f;
}

std::optional<local_reply> check_messages(const json::value* v) {
  if (!v) return invalid_request("'messages' is required.", "messages", "missing_required_parameter");
  if (!v->is_array()) return wrong_type("messages", "an array", *v);
  const auto& messages = v->get_array();
  if (messages.empty())
    return invalid_request("'messages' must contain at least one message.", "messages", "empty_array");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto param = [i] { return fmt::format("messages[{}]", i); }; // only for an error
    if (!messages[i].is_object()) return wrong_type(param(), "an object", messages[i]);
    const auto& m = messages[i].get_object();
    const auto* role = m.if_contains("role");
    if (!role)
      return invalid_request(fmt::format("'{}.role' is required.", param()), param() + ".role",
                             "missing_required_parameter");
    if (!role->is_string()) return wrong_type(param() + ".role", "a string", *role);
    const auto r = role->get_string();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer" && r != "function")
      return invalid_request(fmt::format("'{}.role' must be one of system, user, assistant, tool, developer, "
                                         "function; got '{}'.",
                                         param(), quote_input(r)),
                             param() + ".role", "invalid_value");
    if (const auto* content = m.if_contains("content");
        content && !content->is_string() && !content->is_array() && !content->is_null())
      return wrong_type(param() + ".content", "a string, an array of parts or null", *content);
  }
  return std::nullopt;
}

std::optional<local_reply> check_prompt(const json::value* v) {
  if (!v) return invalid_request("'prompt' is required.", "prompt", "missing_required_parameter");
  if (v->is_string()) return std::nullopt;
  if (!v->is_array()) return wrong_type("prompt", "a string or an array", *v);
  if (v->get_array().empty()) return invalid_request("'prompt' must not be empty.", "prompt", "empty_array");
  for (const auto& p : v->get_array())
    if (!p.is_string() && !p.is_int64() && !p.is_uint64() && !p.is_array())
      return wrong_type("prompt[]", "a string, a token or a token array", p);
  return std::nullopt;
}

// Boost.JSON reads a number beyond a double's range as infinity and would
// write it back as `Infinity`, which is not JSON: a body holding one could
// not go upstream as the client meant it (fuzz_request found it).
bool has_non_finite(const json::value& v) {
  switch (v.kind()) {
  case json::kind::double_: return !std::isfinite(v.get_double());
  case json::kind::array: return std::any_of(v.get_array().begin(), v.get_array().end(), has_non_finite);
  case json::kind::object:
    return std::any_of(v.get_object().begin(), v.get_object().end(),
                       [](const json::key_value_pair& kv) { return has_non_finite(kv.value()); });
  default: return false;
  }
}

} // namespace

parse_result parse_request(std::string_view text, endpoint kind, json::storage_ptr storage) {
  // One parser per thread, reset for each request: json::parse would set up
  // (and tear down) a parser and its value stack every time.
  thread_local json::parser parser;
  parser.reset(std::move(storage));
  boost::system::error_code ec;
  parser.write(text, ec);
  if (ec) parser.reset(); // what it built so far goes now, while its storage is alive
  json::value parsed = ec ? json::value() : parser.release();
  if (ec)
    return invalid_request(fmt::format("We could not parse the JSON body of your request: {}.", ec.message()), {},
                           "invalid_json");
  if (!parsed.is_object()) return invalid_request("The request body must be a JSON object.", {}, "invalid_json");
  if (has_non_finite(parsed))
    return invalid_request("A number in the request is beyond the range of a double (about 1.8e308).", {},
                           "invalid_value");

  // Moved in by construction, so the body stays in the caller's storage (an
  // assignment would deep-copy it onto the heap: another storage).
  request_view view{.kind = kind, .body = json::object(std::move(parsed.get_object()))};
  const auto& body = view.body;

  const auto f = scan(body);

  const auto* model = f.model;
  if (!model) return invalid_request("'model' is required.", "model", "missing_required_parameter");
  if (!model->is_string()) return wrong_type("model", "a string", *model);
  if (model->get_string().empty()) return invalid_request("'model' must not be empty.", "model", "invalid_value");
  view.model = model->get_string();

  if (auto err = kind == endpoint::chat_completions ? check_messages(f.messages) : check_prompt(f.prompt)) return *err;

  auto stream = optional_bool(f.stream, "stream");
  if (!stream) return stream.error();
  view.stream = stream->value_or(false);
  if (const auto* opts = f.stream_options; opts && !opts->is_null()) {
    if (!opts->is_object()) return wrong_type("stream_options", "an object", *opts);
    auto usage = optional_bool(opts->get_object().if_contains("include_usage"), "stream_options.include_usage");
    if (!usage) return usage.error();
    view.include_usage = usage->value_or(false);
  }

  for (const auto& [key, value] : {std::pair<std::string_view, const json::value*>{"max_tokens", f.max_tokens},
                                   {"max_completion_tokens", f.max_completion_tokens}}) {
    auto n = optional_int(value, key);
    if (!n) return n.error();
    if (!*n) continue;
    if (**n < 1)
      return invalid_request(fmt::format("'{}' must be at least 1, got {}.", key, **n), key, "invalid_value");
    view.max_tokens = **n;
  }
  auto n = optional_int(f.n, "n");
  if (!n) return n.error();
  if (*n && (**n < 1 || **n > k_max_choices))
    return invalid_request(fmt::format("'n' must be between 1 and {}, got {}.", k_max_choices, **n), "n",
                           "invalid_value");
  if (auto err = check_number(f.temperature, "temperature", 0, 2)) return *err;
  if (auto err = check_number(f.top_p, "top_p", 0, 1)) return *err;
  if (const auto* tools = f.tools; tools && !tools->is_null() && !tools->is_array())
    return wrong_type("tools", "an array", *tools);

  // Qwen3's switches: the top level is where LangChain's extra_body and
  // modelKwargs put them; chat_template_kwargs is vLLM's and SGLang's own place.
  auto top_thinking = optional_bool(f.enable_thinking, "enable_thinking");
  if (!top_thinking) return top_thinking.error();
  auto top_return = optional_bool(f.return_reasoning, "return_reasoning");
  if (!top_return) return top_return.error();
  view.thinking_at_top_level = top_thinking->has_value() || top_return->has_value();
  view.enable_thinking = *top_thinking;
  view.return_reasoning = top_return->value_or(true);
  if (const auto* kw = f.chat_template_kwargs; kw && !kw->is_null()) {
    if (!kw->is_object()) return wrong_type("chat_template_kwargs", "an object", *kw);
    const auto& kwo = kw->get_object();
    auto inner = optional_bool(kwo.if_contains("enable_thinking"), "chat_template_kwargs.enable_thinking");
    if (!inner) return inner.error();
    if (*inner && !view.enable_thinking) view.enable_thinking = *inner;
    auto inner_return = optional_bool(kwo.if_contains("return_reasoning"), "chat_template_kwargs.return_reasoning");
    if (!inner_return) return inner_return.error();
    if (*inner_return && !top_return->has_value()) view.return_reasoning = **inner_return;
  }
  return view;
}

} // namespace llmgate::openai

namespace llmgate::openai {

namespace {

void append_capped(std::string& out, std::string_view s, std::size_t max_bytes) {
  if (out.size() < max_bytes) out.append(s.substr(0, max_bytes - out.size()));
}

void append_text(std::string& out, const boost::json::value& content, std::size_t max_bytes) {
  if (content.is_string()) {
    append_capped(out, content.get_string(), max_bytes);
  } else if (content.is_int64() || content.is_uint64()) { // a token id of a pre-tokenized prompt
    append_capped(out, boost::json::serialize(content), max_bytes);
    append_capped(out, " ", max_bytes);
  } else if (content.is_array()) { // content parts' text, or token ids
    for (const auto& part : content.get_array()) {
      if (out.size() >= max_bytes) break;
      if (const auto* o = part.if_object()) {
        if (const auto* t = o->if_contains("text"); t && t->is_string()) append_capped(out, t->get_string(), max_bytes);
      } else {
        append_text(out, part, max_bytes);
      }
    }
  }
}

} // namespace

std::string prompt_prefix(const request_view& view, std::size_t max_bytes) {
  std::string out;
  if (view.kind == endpoint::chat_completions) {
    const auto* messages = view.body.if_contains("messages");
    if (!messages || !messages->is_array()) return out;
    for (const auto& m : messages->get_array()) {
      if (out.size() >= max_bytes) break;
      const auto* o = m.if_object();
      if (!o) continue;
      if (const auto* role = o->if_contains("role"); role && role->is_string())
        append_capped(out, role->get_string(), max_bytes);
      append_capped(out, "\n", max_bytes);
      if (const auto* c = o->if_contains("content")) append_text(out, *c, max_bytes);
      append_capped(out, "\n", max_bytes);
    }
  } else if (const auto* p = view.body.if_contains("prompt")) {
    // A batch of prompts (strings or token lists): the first one; a token list: itself.
    const bool batch = p->is_array() && !p->get_array().empty() &&
                       (p->get_array().front().is_string() || p->get_array().front().is_array());
    append_text(out, batch ? p->get_array().front() : *p, max_bytes);
  }
  return out;
}

std::optional<std::int64_t> whole_number(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v.get_uint64());
  if (v.is_double()) {
    const double d = v.get_double();
    if (d > -9e18 && d < 9e18 && d == static_cast<double>(static_cast<std::int64_t>(d))) // the range first
      return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

} // namespace llmgate::openai
