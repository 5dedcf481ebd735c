#include "openai/response_rewrite.hpp"

#include "openai/error.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstring>

namespace llmgate::openai {

namespace json = boost::json;

namespace {

// Where `needle` first occurs in `hay`, found by memchr on its byte at
// `anchor`, chosen rare in answers (string_view::find anchors on the first
// byte and calls compare at each: for "reasoning", every 'r' of the text; for
// a key, every quote). These scans run over every answer and stream chunk.
std::size_t find_anchored(std::string_view hay, std::string_view needle, std::size_t anchor) {
  if (needle.size() > hay.size()) return std::string_view::npos;
  const char* const first = hay.data() + anchor;                             // where the anchor byte can first be
  const char* const last = hay.data() + hay.size() - needle.size() + anchor; // and last
  for (const char* p = first; p <= last;) {
    p = static_cast<const char*>(std::memchr(p, needle[anchor], static_cast<std::size_t>(last - p) + 1));
    if (!p) break;
    if (std::memcmp(p - anchor, needle.data(), needle.size()) == 0)
      return static_cast<std::size_t>(p - anchor - hay.data());
    ++p;
  }
  return std::string_view::npos;
}

// The same, backwards (memrchr): the last occurrence.
std::size_t rfind_anchored(std::string_view hay, std::string_view needle, std::size_t anchor) {
  if (needle.size() > hay.size()) return std::string_view::npos;
  const char* const first = hay.data() + anchor;
  const char* end = hay.data() + hay.size() - needle.size() + anchor + 1; // one past the last place
  while (end > first) {
    const auto* p = static_cast<const char*>(::memrchr(first, needle[anchor], static_cast<std::size_t>(end - first)));
    if (!p) break;
    if (std::memcmp(p - anchor, needle.data(), needle.size()) == 0)
      return static_cast<std::size_t>(p - anchor - hay.data());
    end = p;
  }
  return std::string_view::npos;
}

// The needles of the scans below, with their anchors: a 'g' for the
// reasoning fields, the 'u' of "usage".
constexpr std::size_t k_at_g = 8; // "reasoning"[8]
constexpr std::size_t k_at_u = 1; // "\"usage\""[1]

constexpr std::size_t k_max_choices_tracked = static_cast<std::size_t>(k_max_choices);

// Takes the reasoning a backend sent in either field, removing both.
std::string take_reasoning(json::object& o) {
  std::string out;
  for (const char* key : {"reasoning_content", "reasoning"}) {
    if (auto* v = o.if_contains(key)) {
      if (v->is_string() && out.empty()) out = v->get_string();
      o.erase(key);
    }
  }
  return out;
}

void put_reasoning(json::object& o, const std::string& text, reasoning_options opts) {
  if (!opts.return_reasoning || text.empty()) return;
  if (opts.field != reasoning_field::reasoning) o["reasoning_content"] = text;
  if (opts.field != reasoning_field::reasoning_content) o["reasoning"] = text;
}

std::optional<usage_counts> usage_of(const json::object& o) {
  const auto* u = o.if_contains("usage");
  if (!u || !u->is_object()) return std::nullopt;
  usage_counts c;
  if (const auto* p = u->get_object().if_contains("prompt_tokens"))
    if (const auto n = whole_number(*p)) c.prompt_tokens = *n;
  if (const auto* p = u->get_object().if_contains("completion_tokens"))
    if (const auto n = whole_number(*p)) c.completion_tokens = *n;
  return c;
}

// "usage": {...} rather than absent or "usage": null (vLLM sends null on
// every chunk). Searched from the end, where a chunk's usage key is.
bool carries_usage(std::string_view data) {
  for (auto hay = data;;) {
    const auto at = rfind_anchored(hay, "\"usage\"", k_at_u);
    if (at == std::string_view::npos) return false;
    const auto value = data.find_first_not_of(" :\t", at + 7);
    if (value != std::string_view::npos && data[value] == '{') return true;
    hay = hay.substr(0, at);
  }
}

// Whether a chunk carries generated text under this field: the field is
// there and its string is not empty. Anchored on the colon (quotes are
// twice as many).
bool carries_text(std::string_view data, std::string_view field_open) {
  const auto at = find_anchored(data, field_open, field_open.size() - 2);
  return at != std::string_view::npos && at + field_open.size() < data.size() && data[at + field_open.size()] != '"';
}

// The reasoning fields a body has as keys, found in one scan.
struct reasoning_keys {
  bool reasoning = false;
  bool reasoning_content = false;
  [[nodiscard]] bool any() const noexcept { return reasoning || reasoning_content; }
};

reasoning_keys find_reasoning_keys(std::string_view data) {
  constexpr std::string_view k_key = "\"reasoning";
  reasoning_keys keys;
  for (std::size_t from = 0; !(keys.reasoning && keys.reasoning_content);) {
    const auto at = find_anchored(data.substr(from), k_key, k_at_g + 1);
    if (at == std::string_view::npos) break;
    const auto rest = data.substr(from + at + k_key.size());
    if (rest.starts_with('"'))
      keys.reasoning = true;
    else if (rest.starts_with("_content\""))
      keys.reasoning_content = true;
    from += at + 1;
  }
  return keys;
}

// Whether the reasoning fields present must change to match what the client
// asked for (a rename, a copy for "both", or removal).
bool reasoning_fields_need_change(reasoning_keys keys, reasoning_options opts) {
  if (!opts.return_reasoning) return keys.any();
  switch (opts.field) {
  case reasoning_field::reasoning_content: return keys.reasoning;
  case reasoning_field::reasoning: return keys.reasoning_content;
  case reasoning_field::both: return keys.reasoning != keys.reasoning_content;
  }
  return true;
}
bool reasoning_fields_need_change(std::string_view data, reasoning_options opts) {
  return reasoning_fields_need_change(find_reasoning_keys(data), opts);
}

// The quote that closes the JSON string opened at `open`: the next one not
// escaped (after an even run of backslashes); the body's size if none.
std::size_t closing_quote(std::string_view body, std::size_t open) {
  std::size_t at = open;
  for (;;) {
    const auto* q = static_cast<const char*>(std::memchr(body.data() + at + 1, '"', body.size() - at - 1));
    if (!q) return body.size();
    at = static_cast<std::size_t>(q - body.data());
    std::size_t backslashes = 0; // the run stops at the opening quote at the latest
    while (body[at - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return at;
  }
}

// The usage object of a completion, read without parsing the rest: the last
// "usage" key (JSON escapes every quote inside strings, so a raw "usage" is a
// key or a whole string value) and its balanced braces.
std::optional<usage_counts> scan_usage(std::string_view body) {
  const auto at = rfind_anchored(body, "\"usage\"", k_at_u);
  if (at == std::string_view::npos) return std::nullopt;
  const auto open = body.find_first_not_of(" \t\r\n:", at + 7);
  if (open == std::string_view::npos || body[open] != '{') return std::nullopt;
  // The object's extent, nested objects (prompt_tokens_details) and strings included.
  std::size_t end = open;
  for (int depth = 0; end < body.size(); ++end) {
    const char c = body[end];
    if (c == '"') {
      end = closing_quote(body, end);
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      break;
    }
  }
  const auto usage = body.substr(open, end - open);
  auto number = [&](std::string_view key) -> std::int64_t {
    const auto k = find_anchored(usage, key, 1); // the key's first letter: quotes are everywhere
    if (k == std::string_view::npos) return 0;
    auto v = usage.find_first_not_of(" \t\r\n:", k + key.size());
    if (v == std::string_view::npos) return 0;
    std::int64_t n = 0;
    std::from_chars(usage.data() + v, usage.data() + usage.size(), n);
    return n;
  };
  return usage_counts{number("\"prompt_tokens\""), number("\"completion_tokens\"")};
}

// The content string of the one object opened by `object_open`
// ("message":{ or "delta":{) when the body has the plain shape: that key
// once, and a string "content" directly in it (no nested object or array
// before it). The positions of its opening and closing quotes; nullopt for
// any other shape. JSON escapes every quote inside a string, so a raw match
// of either needle is a key.
std::optional<std::pair<std::size_t, std::size_t>> plain_content(std::string_view body, std::string_view object_open) {
  constexpr std::string_view k_content = "\"content\":\"";
  // Anchored on the brace and the colon: rarer in an answer's text than letters.
  const auto at = find_anchored(body, object_open, object_open.size() - 1);
  if (at == std::string_view::npos ||
      find_anchored(body.substr(at + 1), object_open, object_open.size() - 1) != std::string_view::npos)
    return std::nullopt; // several choices
  const auto after = at + object_open.size();
  const auto found = find_anchored(body.substr(after), k_content, k_content.size() - 2);
  if (found == std::string_view::npos) return std::nullopt;
  const auto between = body.substr(after, found);
  if (between.find_first_of("{}[]") != std::string_view::npos) return std::nullopt; // nested: not this object's own
  const auto open = after + found + k_content.size() - 1;
  const auto close = closing_quote(body, open);
  if (close >= body.size()) return std::nullopt;
  return std::pair{open, close};
}

// The JSON string token body[open..close], decoded; nullopt if it is not
// one. A token without a backslash is its bytes (a generated token nearly
// always is): no parse.
std::optional<std::string> decode_string(std::string_view body, std::size_t open, std::size_t close) {
  const auto inner = body.substr(open + 1, close - open - 1);
  if (std::memchr(inner.data(), '\\', inner.size()) == nullptr) return std::string(inner);
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof arena);
  boost::system::error_code ec;
  const json::value decoded = json::parse(body.substr(open, close - open + 1), ec, &mr);
  if (ec || !decoded.is_string()) return std::nullopt;
  return std::string(decoded.get_string());
}

// The body with its string token [open..close] replaced by `text`, and the
// reasoning fields the options ask for right after it; the rest of the bytes
// as they were.
std::string splice_content(std::string_view body, std::size_t open, std::size_t close, std::string_view text,
                           std::string_view reasoning, reasoning_options opts) {
  std::string out;
  out.reserve(body.size() + 2 * reasoning.size() + 64);
  out += body.substr(0, open);
  append_json_string(out, text);
  if (opts.return_reasoning && !reasoning.empty()) {
    if (opts.field != reasoning_field::reasoning) {
      out += ",\"reasoning_content\":";
      append_json_string(out, reasoning);
    }
    if (opts.field != reasoning_field::reasoning_content) {
      out += ",\"reasoning\":";
      append_json_string(out, reasoning);
    }
  }
  out += body.substr(close + 1);
  return out;
}

// A whole answer whose one message content holds Qwen3's inline
// `<think>…</think>`, rewritten by splicing: the content string is decoded,
// split, and written back with the reasoning field after it, the rest of the
// bytes untouched. Parsing and serializing the whole answer cost ~8 times as
// much. Only for the plain shape (see plain_content; and no reasoning field
// anywhere); `nullopt` for any other, which takes the full parse. Like the
// fast path, it does not validate the rest of the body: a malformed answer
// reaches the client malformed either way.
std::optional<std::optional<std::string>> splice_think(std::string_view body, reasoning_options opts) {
  const auto content = plain_content(body, "\"message\":{");
  if (!content) return std::nullopt;
  const auto [open, close] = *content;
  const auto original = decode_string(body, open, close);
  if (!original) return std::nullopt;
  think_splitter split;
  auto parts = split.feed(*original);
  auto rest = split.finish();
  const std::string reasoning = parts.reasoning + rest.reasoning;
  const std::string text = parts.content + rest.content;
  if (text == *original && (!opts.return_reasoning || reasoning.empty()))
    return std::optional<std::string>{}; // nothing changes
  return std::optional<std::string>{splice_content(body, open, close, text, reasoning, opts)};
}

// The chunk's one `"key":` (the value's first byte), npos when absent,
// nullopt when there are several (not the plain shape).
std::optional<std::size_t> single_value(std::string_view data, std::string_view key, std::size_t anchor) {
  const auto at = find_anchored(data, key, anchor);
  if (at == std::string_view::npos) return std::string_view::npos;
  if (find_anchored(data.substr(at + 1), key, anchor) != std::string_view::npos) return std::nullopt;
  const auto v = data.find_first_not_of(" \t\r\n", at + key.size());
  return v == std::string_view::npos ? data.size() : v;
}

} // namespace

std::optional<usage_counts> read_usage(const json::object& o) { return usage_of(o); }

think_splitter& stream_rewriter::splitter(std::size_t index) {
  if (index >= splitters_.size()) splitters_.resize(index + 1);
  return splitters_[index];
}

std::optional<std::string> stream_rewriter::rewrite(std::string_view data) {
  // Fast path: a chunk that names no reasoning, holds no '<' and arrives when
  // every splitter is past its think block is relayed byte for byte.
  const bool splitters_idle =
      kind_ != endpoint::chat_completions ||
      std::all_of(splitters_.begin(), splitters_.end(), [](const think_splitter& s) { return s.passthrough(); });
  // Faster still: the chunk is the last fast-path chunk with other text in
  // its content (a model's answer streaming, token after token), so the
  // scans below would find what they found then.
  if (splitters_idle && !splitters_.empty() && !shape_head_.empty())
    if (const auto text = same_shape(data)) {
      if (!text->empty()) ++content_chunks_;
      return std::nullopt;
    }
  const bool may_carry_usage = carries_usage(data);
  // Completions have no chat template, hence no reasoning to split: only usage is read.
  if (kind_ != endpoint::chat_completions && !may_carry_usage) {
    if (carries_text(data, "\"text\":\"")) ++content_chunks_;
    return std::nullopt;
  }
  const auto keys = find_reasoning_keys(data);
  const bool rename = reasoning_fields_need_change(keys, opts_);
  if (splitters_idle && !splitters_.empty() && !rename && data.find('<') == std::string_view::npos &&
      !may_carry_usage) {
    if (carries_text(data, "\"content\":\"") || (keys.reasoning && carries_text(data, "\"reasoning\":\"")) ||
        (keys.reasoning_content && carries_text(data, "\"reasoning_content\":\"")))
      ++content_chunks_;
    if (!keys.any()) learn_shape(data);
    return std::nullopt;
  }
  // Inline thinking (no reasoning field, no usage) in the plain shape, as
  // Qwen3 streams while it thinks: spliced, not parsed and serialized.
  if (kind_ == endpoint::chat_completions && !may_carry_usage && !keys.any())
    if (auto spliced = splice(data)) return *spliced;
  // Parsed into a stack arena: a chunk's values live only for this call.
  unsigned char arena[8192];
  json::monotonic_resource mr(arena, sizeof arena);
  boost::system::error_code ec;
  json::value parsed = json::parse(data, ec, &mr);
  if (ec || !parsed.is_object()) return std::nullopt; // not ours to judge: relay as is
  auto& chunk = parsed.get_object();
  if (auto u = usage_of(chunk)) {
    usage_ = u;
    const auto* choices = chunk.if_contains("choices");
    if (drop_usage_chunk_ && choices && choices->is_array() && choices->get_array().empty()) return std::string();
  }
  remember(chunk);
  last_spliced_.clear();
  if (kind_ != endpoint::chat_completions) return std::nullopt;

  auto* choices = chunk.if_contains("choices");
  if (!choices || !choices->is_array()) return std::nullopt;
  bool changed = false;
  for (auto& choice_value : choices->get_array()) {
    if (!choice_value.is_object()) continue;
    auto& choice = choice_value.get_object();
    std::size_t index = 0;
    if (const auto* i = choice.if_contains("index"); i && i->is_int64() && i->get_int64() >= 0)
      index = static_cast<std::size_t>(i->get_int64());
    if (index >= k_max_choices_tracked) continue;
    auto* delta_value = choice.if_contains("delta");
    if (!delta_value || !delta_value->is_object()) continue;
    auto& delta = delta_value->get_object();
    auto& split = splitter(index);

    const bool had_fields = delta.contains("reasoning") || delta.contains("reasoning_content");
    std::string split_reasoning; // reasoning found inline in content
    auto* content = delta.if_contains("content");
    const bool finished = choice.contains("finish_reason") && !choice.at("finish_reason").is_null();
    if (content && content->is_string()) {
      const std::string original(content->get_string());
      auto parts = split.feed(original);
      if (finished) {
        auto rest = split.finish();
        parts.reasoning += rest.reasoning;
        parts.content += rest.content;
      }
      split_reasoning += parts.reasoning;
      if (parts.content != original) {
        *content = parts.content;
        changed = true;
      }
      if (!parts.content.empty() || !split_reasoning.empty() || had_fields) ++content_chunks_;
    } else if (finished) {
      auto rest = split.finish();
      split_reasoning += rest.reasoning;
      if (!rest.content.empty()) {
        delta["content"] = rest.content;
        changed = true;
      }
    }
    // Fields already in the client's dialect stay as they are (byte for byte).
    if ((rename && had_fields) || !split_reasoning.empty()) {
      put_reasoning(delta, take_reasoning(delta) + split_reasoning, opts_);
      changed = true;
    }
  }
  if (!changed) return std::nullopt;
  return json::serialize(chunk);
}

// The bytes before and after the chunk's first content string. Called only
// for a chunk the fast path relayed: no '<', no usage, no reasoning key.
void stream_rewriter::learn_shape(std::string_view data) {
  if (!remember_shape_) return;
  constexpr std::string_view k_content = "\"content\":\"";
  const auto at = find_anchored(data, k_content, k_content.size() - 2);
  if (at == std::string_view::npos) return;
  const auto open = at + k_content.size() - 1;
  const auto close = closing_quote(data, open);
  if (close >= data.size()) return;
  // The string is a value: a comma or the object's end comes next.
  const auto next = data.find_first_not_of(" \t\r\n", close + 1);
  if (next == std::string_view::npos || (data[next] != ',' && data[next] != '}')) return;
  shape_head_.assign(data.substr(0, open + 1));
  shape_tail_.assign(data.substr(close));
}

// The content text of a chunk that is the learned head, a string's text and
// the learned tail. The scans of the fast path would find in it what they
// found in the learned chunk as long as the text holds no quote (with one it
// could close the string and open keys: usage, reasoning) and no '<' (the
// content may be another choice's, one without a splitter yet, whose first
// text may be "<think>"). Escapes need no look: the scans read bytes, not
// strings.
std::optional<std::string_view> stream_rewriter::same_shape(std::string_view data) const {
  if (data.size() < shape_head_.size() + shape_tail_.size() || !data.starts_with(shape_head_) ||
      !data.ends_with(shape_tail_))
    return std::nullopt;
  const auto text = data.substr(shape_head_.size(), data.size() - shape_head_.size() - shape_tail_.size());
  if (std::memchr(text.data(), '"', text.size()) || std::memchr(text.data(), '<', text.size())) return std::nullopt;
  return text;
}

void stream_rewriter::remember(const json::object& chunk) {
  if (const auto* id = chunk.if_contains("id"); id && id->is_string()) last_id_ = id->get_string();
  if (const auto* m = chunk.if_contains("model"); m && m->is_string()) last_model_ = m->get_string();
  if (const auto* c = chunk.if_contains("created"))
    if (const auto n = whole_number(*c)) last_created_ = *n;
}

// The plain shape of a chunk: one "delta" object with a string "content"
// directly in it (plain_content), one "index" (or none: choice 0) and one
// "finish_reason", null (or none). A finishing chunk, several choices, tool
// calls with their own indexes: parsed.
std::optional<std::optional<std::string>> stream_rewriter::splice(std::string_view data) {
  const auto content = plain_content(data, "\"delta\":{");
  if (!content) return std::nullopt;
  std::size_t index = 0;
  const auto index_at = single_value(data, "\"index\":", 5); // anchored on the 'x'
  if (!index_at) return std::nullopt;
  if (*index_at != std::string_view::npos) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(data.data() + *index_at, data.data() + data.size(), n);
    if (ec != std::errc{} || n >= k_max_choices_tracked) return std::nullopt;
    index = static_cast<std::size_t>(n);
  }
  const auto finish_at = single_value(data, "\"finish_reason\":", 7); // the '_'
  if (!finish_at || (*finish_at != std::string_view::npos && data.substr(*finish_at, 4) != "null")) return std::nullopt;
  const auto [open, close] = *content;
  const auto original = decode_string(data, open, close);
  if (!original) return std::nullopt;
  // From here on the splitter has seen the text: no falling back to the parse.
  auto parts = splitter(index).feed(*original);
  last_spliced_.assign(data);
  if (!parts.content.empty() || !parts.reasoning.empty()) ++content_chunks_;
  if (parts.content == *original && parts.reasoning.empty()) return std::optional<std::string>{}; // unchanged
  return std::optional<std::string>{splice_content(data, open, close, parts.content, parts.reasoning, opts_)};
}

std::vector<std::string> stream_rewriter::flush() {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < splitters_.size(); ++i) {
    auto rest = splitters_[i].finish();
    if (rest.reasoning.empty() && rest.content.empty()) continue;
    json::object delta;
    if (!rest.content.empty()) delta["content"] = rest.content;
    put_reasoning(delta, rest.reasoning, opts_);
    if (delta.empty()) continue;
    if (!last_spliced_.empty()) { // the latest chunk's ids, read only when a chunk is made (rarely)
      boost::system::error_code ec;
      const auto parsed = json::parse(last_spliced_, ec);
      if (!ec && parsed.is_object()) remember(parsed.get_object());
      last_spliced_.clear();
    }
    json::object chunk{
        {"id", last_id_},
        {"object", "chat.completion.chunk"},
        {"created", last_created_},
        {"model", last_model_},
        {"choices", json::array{json::object{{"index", i}, {"delta", std::move(delta)}, {"finish_reason", nullptr}}}}};
    out.push_back(json::serialize(chunk));
  }
  return out;
}

std::optional<std::string> rewrite_response(std::string_view body, endpoint kind, reasoning_options opts,
                                            usage_counts* usage) {
  // Fast path: nothing to split or rename (thinking off, or a backend already
  // speaking the client's dialect): only usage is read, without a full parse.
  // One scan for the common case of no reasoning at all.
  const bool mentions_reasoning = find_anchored(body, "reasoning", k_at_g) != std::string_view::npos;
  if (kind != endpoint::chat_completions || (body.find("<think>") == std::string_view::npos &&
                                             (!mentions_reasoning || !reasoning_fields_need_change(body, opts)))) {
    if (usage)
      if (auto u = scan_usage(body)) *usage = *u;
    return std::nullopt;
  }
  if (!mentions_reasoning) // inline <think> only: spliced when the answer has the plain shape
    if (auto spliced = splice_think(body, opts)) {
      if (usage)
        if (auto u = scan_usage(body)) *usage = *u;
      return *spliced;
    }
  unsigned char arena[16384];
  json::monotonic_resource mr(arena, sizeof arena);
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec, &mr);
  if (ec || !parsed.is_object()) return std::nullopt;
  auto& root = parsed.get_object();
  if (usage)
    if (auto u = usage_of(root)) *usage = *u;
  if (kind != endpoint::chat_completions) return std::nullopt;
  auto* choices = root.if_contains("choices");
  if (!choices || !choices->is_array()) return std::nullopt;
  const bool rename = reasoning_fields_need_change(body, opts);
  bool changed = false;
  for (auto& choice_value : choices->get_array()) {
    if (!choice_value.is_object()) continue;
    auto* message_value = choice_value.get_object().if_contains("message");
    if (!message_value || !message_value->is_object()) continue;
    auto& message = message_value->get_object();
    const bool had_fields = message.contains("reasoning") || message.contains("reasoning_content");
    std::string split_reasoning;
    if (auto* content = message.if_contains("content"); content && content->is_string()) {
      think_splitter split;
      auto parts = split.feed(content->get_string());
      auto rest = split.finish();
      split_reasoning = parts.reasoning + rest.reasoning;
      std::string text = parts.content + rest.content;
      if (text != content->get_string()) {
        *content = text;
        changed = true;
      }
    }
    if ((rename && had_fields) || !split_reasoning.empty()) {
      put_reasoning(message, take_reasoning(message) + split_reasoning, opts);
      changed = true;
    }
  }
  if (!changed) return std::nullopt;
  return json::serialize(root);
}

} // namespace llmgate::openai
