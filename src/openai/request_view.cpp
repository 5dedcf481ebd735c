#include "openai/request_view.hpp"

#include <algorithm>
#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace llmgate::openai {

namespace json = boost::json;

namespace {

using parse_result = boost::system::result<request_view, local_reply>;

// A value as the checks see it: its kind, and a scalar's value (a string's
// text is kept beside where it is needed: the model, a role). Plain data, so
// noting one costs a few stores (boost::json::value's assignments are calls).
struct seen {
  bool present = false;
  json::kind kind = json::kind::null;
  bool b = false;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;
  [[nodiscard]] const seen* get() const { return present ? this : nullptr; }
  [[nodiscard]] bool is(json::kind k) const { return kind == k; }
  [[nodiscard]] bool is_number() const {
    return kind == json::kind::int64 || kind == json::kind::uint64 || kind == json::kind::double_;
  }
  [[nodiscard]] json::value number() const {
    return kind == json::kind::int64 ? json::value(i) : kind == json::kind::uint64 ? json::value(u) : json::value(d);
  }
};

seen of_kind(json::kind k) { return {.present = true, .kind = k}; }

bool known_role(std::string_view r) {
  return r == "system" || r == "user" || r == "assistant" || r == "tool" || r == "developer" || r == "function";
}

std::string_view type_name(json::kind k) {
  switch (k) {
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

local_reply wrong_type(std::string_view param, std::string_view expected, const seen& got) {
  return invalid_request(fmt::format("'{}' must be {}, got {}.", param, expected, type_name(got.kind)), param,
                         "invalid_type");
}

// An integer field (v: its value, null when absent): absent or null gives
// nullopt; a double that is integral is accepted (JS clients send 1.0).
boost::system::result<std::optional<std::int64_t>, local_reply> optional_int(const seen* v, std::string_view key) {
  if (!v || v->is(json::kind::null)) return std::optional<std::int64_t>{};
  if (v->is(json::kind::uint64) && v->u > static_cast<std::uint64_t>(INT64_MAX))
    return invalid_request(fmt::format("'{}' is too large.", key), key, "invalid_value");
  if (v->is_number())
    if (const auto n = whole_number(v->number())) return std::optional<std::int64_t>{*n};
  return wrong_type(key, "an integer", *v);
}

boost::system::result<std::optional<bool>, local_reply> optional_bool(const seen* v, std::string_view param) {
  if (!v || v->is(json::kind::null)) return std::optional<bool>{};
  if (!v->is(json::kind::bool_)) return wrong_type(param, "a boolean", *v);
  return std::optional<bool>{v->b};
}

std::optional<local_reply> check_number(const seen* v, std::string_view key, double lo, double hi) {
  if (!v || v->is(json::kind::null)) return std::nullopt;
  if (!v->is_number()) return wrong_type(key, "a number", *v);
  const double d = v->number().to_number<double>();
  if (d < lo || d > hi)
    return invalid_request(fmt::format("'{}' must be between {} and {}, got {}.", key, lo, hi, d), key,
                           "invalid_value");
  return std::nullopt;
}

// The reader and its key writer live as long as their thread: they keep
// their room from one body to the next, but not what a large body made them take.
constexpr std::size_t k_kept_room = 64 * 1024;

// The fields the gateway reads at the top level of a body.
enum class field : std::uint8_t {
  other,
  model,
  messages,
  prompt,
  stream,
  stream_options,
  max_tokens,
  max_completion_tokens,
  n,
  temperature,
  top_p,
  tools,
  enable_thinking,
  return_reasoning,
  chat_template_kwargs,
  count
};

field top_field(std::string_view k) {
  switch (k.size()) { // the length first: most keys are settled by it
  case 1: return k == "n" ? field::n : field::other;
  case 5: return k == "model" ? field::model : k == "top_p" ? field::top_p : k == "tools" ? field::tools : field::other;
  case 6: return k == "stream" ? field::stream : k == "prompt" ? field::prompt : field::other;
  case 8: return k == "messages" ? field::messages : field::other;
  case 10: return k == "max_tokens" ? field::max_tokens : field::other;
  case 11: return k == "temperature" ? field::temperature : field::other;
  case 14: return k == "stream_options" ? field::stream_options : field::other;
  case 15: return k == "enable_thinking" ? field::enable_thinking : field::other;
  case 16: return k == "return_reasoning" ? field::return_reasoning : field::other;
  case 20: return k == "chat_template_kwargs" ? field::chat_template_kwargs : field::other;
  case 21: return k == "max_completion_tokens" ? field::max_completion_tokens : field::other;
  default: return field::other;
  }
}

// The fields read one level down: in a message, in stream_options, in
// chat_template_kwargs.
enum class member : std::uint8_t { other, role, content, include_usage, enable_thinking, return_reasoning };

member member_of(std::string_view k) {
  if (k == "role") return member::role;
  if (k == "content") return member::content;
  if (k == "include_usage") return member::include_usage;
  if (k == "enable_thinking") return member::enable_thinking;
  if (k == "return_reasoning") return member::return_reasoning;
  return member::other;
}

// Where a key goes in the canonical form: the keys the gateway knows by
// their rank, in the order clients usually write them (the list first, the
// sampling parameters, what an SDK's extra_body adds last), the others by
// their bytes (between the sampling parameters and the extras at the top
// level, after the known ones below it). A usual body is then in order as
// written and canonical_writer does not rewrite it (~500 instructions of a
// proxied request). Any fixed order gives the same key for the same request.
using key_rank = std::uint8_t;
constexpr key_rank k_unranked = 10;

key_rank rank_of(field f) {
  switch (f) {
  case field::messages: return 0;
  case field::prompt: return 1;
  case field::max_completion_tokens: return 2;
  case field::max_tokens: return 3;
  case field::n: return 4;
  case field::stream: return 5;
  case field::stream_options: return 6;
  case field::temperature: return 7;
  case field::tools: return 8;
  case field::top_p: return 9;
  case field::enable_thinking: return 11;
  case field::return_reasoning: return 12;
  case field::chat_template_kwargs: return 13;
  default: return k_unranked; // model is left out of the form
  }
}

key_rank rank_of(member m) {
  switch (m) {
  case member::role: return 0;
  case member::content: return 1;
  case member::include_usage: return 2;
  case member::enable_thinking: return 3;
  case member::return_reasoning: return 4;
  default: return k_unranked;
  }
}

// The body in a canonical form, for the response cache's key, written as the
// parser reads it: objects' members sorted by key (rank_of, then bytes), recursively (of equal
// keys the last is kept, as boost::json::object keeps it), arrays in order,
// strings as their length and bytes (unambiguous without escaping), numbers
// as values (1e2 is 100; a double is marked, so 1.0 is not 1), and the top
// level without `model` (the caller adds the model's canonical name) and
// `user` (it does not change the answer). Nothing of the body is copied but
// into the key.
class canonical_writer {
public:
  // Writes into out, sized ahead for a body of body_size (and trimmed by
  // finish), with room left for what degrade::cache_key appends (the
  // model's name, the endpoint, the caller: no second allocation).
  void start(std::string& out, std::size_t body_size) {
    out_ = &out;
    out.resize(body_size + 192);
    at_ = 0;
    frames_.clear();
    members_.clear();
    skip_from_ = std::string::npos;
    if (scratch_.capacity() > k_kept_room) std::string().swap(scratch_);
    if (members_.capacity() * sizeof(written) > k_kept_room) std::vector<written>().swap(members_);
  }
  void finish() { out_->resize(at_); }

  // Before every value: an array's separator.
  void value() {
    if (frames_.empty() || frames_.back().object) return;
    if (frames_.back().count++) put(',');
  }
  // An object's key; top: in the root object; rank: where it sorts (rank_of).
  void key(std::string_view k, bool top, key_rank rank) {
    if (top && (k == "model" || k == "user")) {
      skip_from_ = at_;
      return;
    }
    auto& f = frames_.back();
    if (f.count++) put(',');
    const auto begin = at_;
    text(k);
    members_.push_back({begin, 0, at_ - k.size(), k.size(), rank});
    put(':');
  }
  void string(std::string_view s) {
    text(s);
    ended();
  }
  template <class Number> void number(Number n) {
    char* p = room(32);
    if constexpr (std::is_floating_point_v<Number>) *p++ = 'd';
    at_ = static_cast<std::size_t>(std::to_chars(p, p + 31, n).ptr - out_->data());
    ended();
  }
  void literal(std::string_view s) {
    put(s);
    ended();
  }
  void open(bool object) {
    frames_.push_back({at_, members_.size(), 0, object});
    put(object ? '{' : '[');
  }
  void close() {
    const frame f = frames_.back();
    frames_.pop_back();
    if (f.object && f.count > 1) order(f);
    members_.resize(f.first);
    put(f.object ? '}' : ']');
    ended();
  }

private:
  struct frame {
    std::size_t open;  // where its bracket is
    std::size_t first; // its first member in members_
    std::size_t count; // members or elements so far
    bool object;
  };
  struct written {
    std::size_t begin, end; // the member, key to value
    std::size_t key_at, key_size;
    key_rank rank;
  };

  // Written through a pointer into room made ahead: std::string's own
  // appends are a call each, and a key is many small pieces.
  [[gnu::always_inline]] char* room(std::size_t n) {
    if (at_ + n > out_->size()) [[unlikely]]
      grow(n);
    return out_->data() + at_;
  }
  [[gnu::noinline]] void grow(std::size_t n) { out_->resize(std::max(2 * out_->size(), at_ + n)); }
  [[gnu::always_inline]] void put(char c) {
    *room(1) = c;
    ++at_;
  }
  [[gnu::always_inline]] void put(std::string_view s) {
    if (s.empty()) return; // its data may be null, which memcpy must not get
    std::memcpy(room(s.size()), s.data(), s.size());
    at_ += s.size();
  }
  void text(std::string_view s) {
    char* p = room(24);
    if (s.size() < 10) { // most keys and values: their length in one digit, without to_chars
      *p++ = static_cast<char>('0' + s.size());
    } else {
      p = std::to_chars(p, p + 22, s.size()).ptr;
    }
    *p++ = '"';
    at_ = static_cast<std::size_t>(p - out_->data());
    put(s);
  }
  // A value ended: the last member of an object ends here, or a left-out
  // top-level member goes.
  void ended() {
    if (frames_.empty() || !frames_.back().object) return;
    if (skip_from_ != std::string::npos && frames_.size() == 1) {
      at_ = skip_from_;
      skip_from_ = std::string::npos;
      return;
    }
    members_.back().end = at_;
  }
  [[nodiscard]] std::string_view key_of(const written& m) const { return {out_->data() + m.key_at, m.key_size}; }
  // An object's members in key order, the last of equal keys kept: rewritten
  // only when they were not in order already.
  void order(const frame& f) {
    const std::span<written> ms(members_.data() + f.first, members_.size() - f.first);
    const auto before = [this](const written& a, const written& b) {
      return a.rank != b.rank ? a.rank < b.rank : key_of(a) < key_of(b);
    };
    if (std::adjacent_find(ms.begin(), ms.end(), [&](const written& a, const written& b) { return !before(a, b); }) ==
        ms.end())
      return;              // in order, no key twice
    if (ms.size() <= 16) { // stable: equal keys keep the body's order
      for (std::size_t i = 1; i < ms.size(); ++i)
        for (std::size_t j = i; j > 0 && before(ms[j], ms[j - 1]); --j) std::swap(ms[j], ms[j - 1]);
    } else {
      std::stable_sort(ms.begin(), ms.end(), before);
    }
    const auto body = f.open + 1;
    scratch_.assign(out_->data() + body, at_ - body);
    at_ = body;
    // Read from the copy from here on: the members are written over the original.
    const std::string_view was(scratch_);
    const auto key = [&](const written& m) { return was.substr(m.key_at - body, m.key_size); };
    for (std::size_t i = 0; i < ms.size(); ++i) {
      if (i + 1 < ms.size() && key(ms[i]) == key(ms[i + 1])) continue; // a later one wins
      if (at_ > body) put(',');
      put(was.substr(ms[i].begin - body, ms[i].end - ms[i].begin));
    }
  }

  std::string* out_ = nullptr;
  std::size_t at_ = 0; // the end of what is written
  std::vector<frame> frames_;
  std::vector<written> members_;
  std::string scratch_;
  std::size_t skip_from_ = std::string::npos; // a left-out top-level member started here
};

// The handler boost::json::basic_parser calls as it reads a body: it notes
// what the checks need, writes the canonical form when asked, and builds the
// body when asked (the events boost::json::parser's own handler turns into
// a value). Reading the body this way instead of into a value cost ~2,500
// instructions fewer for a typical request.
class request_reader {
public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  void start(endpoint kind, json::value_stack* stack, std::string* canonical, std::size_t body_size) {
    kind_ = kind;
    stack_ = stack;
    canonical_ = canonical != nullptr;
    if (canonical) writer_.start(*canonical, body_size);
    depth_ = 0;
    root_object_ = false;
    non_finite_ = false;
    top_ = field::other;
    for (auto& s : fields_) s = {};
    model_.clear();
    chars_.clear();
    if (chars_.capacity() > k_kept_room) std::string().swap(chars_);
    in_message_ = false;
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return begin(json::kind::object); }
  bool on_object_end(std::size_t n, json::error_code&) {
    if (--depth_ == 2 && in_message_) end_message();
    if (stack_) stack_->push_object(n);
    if (canonical_) writer_.close();
    return true;
  }
  bool on_array_begin(json::error_code&) { return begin(json::kind::array); }
  bool on_array_end(std::size_t n, json::error_code&) {
    --depth_;
    if (stack_) stack_->push_array(n);
    if (canonical_) writer_.close();
    return true;
  }
  bool on_key_part(std::string_view s, std::size_t, json::error_code&) { return part(s); }
  bool on_key(std::string_view s, std::size_t, json::error_code&) {
    if (stack_) stack_->push_key(s);
    const auto k = whole(s);
    key_rank rank = k_unranked;
    if (depth_ == 1 && root_object_) {
      top_ = top_field(k);
      rank = rank_of(top_);
      // The other endpoint's list is not read: one count serves messages or prompt.
      if (top_ == (kind_ == endpoint::chat_completions ? field::prompt : field::messages)) top_ = field::other;
    } else if (depth_ == 2 || (depth_ == 3 && in_message_)) {
      member_ = member_of(k);
      rank = rank_of(member_);
    }
    if (canonical_) writer_.key(k, depth_ == 1, rank);
    chars_.clear();
    return true;
  }
  bool on_string_part(std::string_view s, std::size_t, json::error_code&) { return part(s); }
  bool on_string(std::string_view s, std::size_t, json::error_code&) {
    if (stack_) stack_->push_string(s);
    const auto text = whole(s);
    value(of_kind(json::kind::string));
    if (depth_ == 1 && root_object_ && top_ == field::model) {
      model_ = text;
    } else if (depth_ == 3 && in_message_ && member_ == member::role) {
      role_known_ = known_role(text);
      if (!role_known_) role_text_ = text; // only for the error
    }
    if (canonical_) writer_.string(text);
    chars_.clear();
    return true;
  }
  bool on_number_part(std::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, std::string_view, json::error_code&) {
    if (stack_) stack_->push_int64(i);
    value({.present = true, .kind = json::kind::int64, .i = i});
    if (canonical_) writer_.number(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, std::string_view, json::error_code&) {
    if (stack_) stack_->push_uint64(u);
    value({.present = true, .kind = json::kind::uint64, .u = u});
    if (canonical_) writer_.number(u);
    return true;
  }
  bool on_double(double d, std::string_view, json::error_code&) {
    if (stack_) stack_->push_double(d);
    // Boost.JSON reads a number beyond a double's range as infinity and would
    // write it back as `Infinity`, which is not JSON (fuzz_request found it).
    if (!std::isfinite(d)) non_finite_ = true;
    value({.present = true, .kind = json::kind::double_, .d = d});
    if (canonical_) writer_.number(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    if (stack_) stack_->push_bool(b);
    value({.present = true, .kind = json::kind::bool_, .b = b});
    if (canonical_) writer_.literal(b ? "true" : "false");
    return true;
  }
  bool on_null(json::error_code&) {
    if (stack_) stack_->push_null();
    value(of_kind(json::kind::null));
    if (canonical_) writer_.literal("null");
    return true;
  }
  bool on_comment_part(std::string_view, json::error_code&) { return true; } // comments are not allowed
  bool on_comment(std::string_view, json::error_code&) { return true; }

  // The view, or the first problem the checks find, in the order a client
  // would fix them.
  parse_result settle(std::string_view text, json::storage_ptr storage);
  void finish() {
    if (canonical_) writer_.finish();
  }
  [[nodiscard]] bool root_object() const { return root_object_; }

private:
  // A string or key that comes in parts (one holding escapes, read through
  // the parser's buffer) is whole at its last part.
  bool part(std::string_view s) {
    if (stack_) stack_->push_chars(s);
    chars_.append(s);
    return true;
  }
  std::string_view whole(std::string_view last) {
    if (chars_.empty()) return last;
    chars_.append(last);
    return chars_;
  }

  // An object or array opens: a value at this depth, the next ones below it.
  bool begin(json::kind k) {
    value(of_kind(k));
    if (canonical_) writer_.open(k == json::kind::object);
    ++depth_;
    return true;
  }
  // Every value, before it is read: where it sits says what it is.
  void value(const seen& v) {
    if (canonical_) writer_.value();
    switch (depth_) {
    case 0: root_object_ = v.is(json::kind::object); break;
    case 1:
      if (root_object_) top_value(v);
      break;
    case 2:
      if (root_object_) inner_value(v);
      break;
    case 3:
      if (in_message_) message_value(v);
      break;
    default: break;
    }
  }
  // A top-level field's value; a field given twice is the last one (as in
  // boost::json::object), so what was read of an earlier one goes.
  void top_value(const seen& v) {
    fields_[static_cast<std::size_t>(top_)] = v;
    switch (top_) {
    case field::messages:
    case field::prompt:
      items_ = 0;
      items_error_.reset();
      break;
    case field::stream_options: include_usage_ = {}; break;
    case field::chat_template_kwargs:
      kw_thinking_ = {};
      kw_return_ = {};
      break;
    default: break;
    }
  }
  // A value one level down: an element of messages or prompt, a member of
  // stream_options or chat_template_kwargs.
  void inner_value(const seen& v) {
    switch (top_) {
    case field::messages:
      if (!top_is(json::kind::array)) return;
      in_message_ = v.is(json::kind::object);
      if (in_message_) {
        role_ = {};
        content_ = {};
        role_known_ = false;
      } else if (!items_error_) {
        items_error_ = wrong_type(fmt::format("messages[{}]", items_), "an object", v);
      }
      ++items_;
      break;
    case field::prompt:
      if (!top_is(json::kind::array)) return;
      if (!items_error_ && !v.is(json::kind::string) && !v.is(json::kind::int64) && !v.is(json::kind::uint64) &&
          !v.is(json::kind::array))
        items_error_ = wrong_type("prompt[]", "a string, a token or a token array", v);
      ++items_;
      break;
    case field::stream_options:
      if (top_is(json::kind::object) && member_ == member::include_usage) include_usage_ = v;
      break;
    case field::chat_template_kwargs:
      if (!top_is(json::kind::object)) return;
      if (member_ == member::enable_thinking) kw_thinking_ = v;
      if (member_ == member::return_reasoning) kw_return_ = v;
      break;
    default: break;
    }
  }
  void message_value(const seen& v) {
    if (member_ == member::role) role_ = v;
    if (member_ == member::content) content_ = v;
  }
  // A message's object closed: its role and content checked.
  void end_message() {
    in_message_ = false;
    if (items_error_) return;
    const auto param = [i = items_ - 1] { return fmt::format("messages[{}]", i); }; // only for an error
    if (!role_.present) {
      items_error_ = invalid_request(fmt::format("'{}.role' is required.", param()), param() + ".role",
                                     "missing_required_parameter");
    } else if (!role_.is(json::kind::string)) {
      items_error_ = wrong_type(param() + ".role", "a string", role_);
    } else if (!role_known_) {
      items_error_ = invalid_request(fmt::format("'{}.role' must be one of system, user, assistant, tool, developer, "
                                                 "function; got '{}'.",
                                                 param(), quote_input(role_text_)),
                                     param() + ".role", "invalid_value");
    } else if (const auto& c = content_;
               c.present && !c.is(json::kind::string) && !c.is(json::kind::array) && !c.is(json::kind::null)) {
      items_error_ = wrong_type(param() + ".content", "a string, an array of parts or null", c);
    }
  }

  [[nodiscard]] const seen& got(field f) const { return fields_[static_cast<std::size_t>(f)]; }
  // The kind of the top-level value being read (the values below it come
  // before the next top-level key).
  [[nodiscard]] bool top_is(json::kind k) const { return got(top_).is(k); }

  endpoint kind_ = endpoint::chat_completions;
  json::value_stack* stack_ = nullptr; // the body is built when set
  bool canonical_ = false;
  canonical_writer writer_;
  std::size_t depth_ = 0; // containers open around the next event
  bool root_object_ = false;
  bool non_finite_ = false;
  field top_ = field::other;      // the top-level field being read
  member member_ = member::other; // the key one level down
  std::array<seen, static_cast<std::size_t>(field::count)> fields_{};
  std::string model_;
  std::size_t items_ = 0;                  // messages or prompt elements so far
  std::optional<local_reply> items_error_; // the first bad one
  bool in_message_ = false;                // a message's object is open
  seen role_, content_;
  bool role_known_ = false; // the role is one of Qwen3's
  std::string role_text_;   // else its text
  seen include_usage_, kw_thinking_, kw_return_;
  std::string chars_; // a key or string's earlier parts
};

parse_result request_reader::settle(std::string_view text, json::storage_ptr storage) {
  if (!root_object_) return invalid_request("The request body must be a JSON object.", {}, "invalid_json");
  if (non_finite_)
    return invalid_request("A number in the request is beyond the range of a double (about 1.8e308).", {},
                           "invalid_value");
  request_view view{.kind = kind_, .text = text, .storage = std::move(storage)};

  const auto& model = got(field::model);
  if (!model.present) return invalid_request("'model' is required.", "model", "missing_required_parameter");
  if (!model.is(json::kind::string)) return wrong_type("model", "a string", model);
  if (model_.empty()) return invalid_request("'model' must not be empty.", "model", "invalid_value");
  view.model = std::move(model_);

  const bool chat = kind_ == endpoint::chat_completions;
  const auto& items = got(chat ? field::messages : field::prompt);
  if (!items.present)
    return chat ? invalid_request("'messages' is required.", "messages", "missing_required_parameter")
                : invalid_request("'prompt' is required.", "prompt", "missing_required_parameter");
  if (chat || !items.is(json::kind::string)) {
    if (!items.is(json::kind::array))
      return chat ? wrong_type("messages", "an array", items) : wrong_type("prompt", "a string or an array", items);
    if (items_ == 0)
      return chat ? invalid_request("'messages' must contain at least one message.", "messages", "empty_array")
                  : invalid_request("'prompt' must not be empty.", "prompt", "empty_array");
    if (items_error_) return std::move(*items_error_);
  }

  auto stream = optional_bool(got(field::stream).get(), "stream");
  if (!stream) return stream.error();
  view.stream = stream->value_or(false);
  if (const auto* opts = got(field::stream_options).get(); opts && !opts->is(json::kind::null)) {
    if (!opts->is(json::kind::object)) return wrong_type("stream_options", "an object", *opts);
    auto usage = optional_bool(include_usage_.get(), "stream_options.include_usage");
    if (!usage) return usage.error();
    view.include_usage = usage->value_or(false);
  }

  for (const auto& [key, value] : {std::pair<std::string_view, const seen*>{"max_tokens", got(field::max_tokens).get()},
                                   {"max_completion_tokens", got(field::max_completion_tokens).get()}}) {
    auto n = optional_int(value, key);
    if (!n) return n.error();
    if (!*n) continue;
    if (**n < 1)
      return invalid_request(fmt::format("'{}' must be at least 1, got {}.", key, **n), key, "invalid_value");
    view.max_tokens = **n;
  }
  auto n = optional_int(got(field::n).get(), "n");
  if (!n) return n.error();
  if (*n && (**n < 1 || **n > k_max_choices))
    return invalid_request(fmt::format("'n' must be between 1 and {}, got {}.", k_max_choices, **n), "n",
                           "invalid_value");
  const auto* temperature = got(field::temperature).get();
  if (auto err = check_number(temperature, "temperature", 0, 2)) return *err;
  if (temperature && temperature->is_number()) view.temperature = temperature->number().to_number<double>();
  if (auto err = check_number(got(field::top_p).get(), "top_p", 0, 1)) return *err;
  if (const auto* tools = got(field::tools).get();
      tools && !tools->is(json::kind::null) && !tools->is(json::kind::array))
    return wrong_type("tools", "an array", *tools);

  // Qwen3's switches: the top level is where LangChain's extra_body and
  // modelKwargs put them; chat_template_kwargs is vLLM's and SGLang's own place.
  auto top_thinking = optional_bool(got(field::enable_thinking).get(), "enable_thinking");
  if (!top_thinking) return top_thinking.error();
  auto top_return = optional_bool(got(field::return_reasoning).get(), "return_reasoning");
  if (!top_return) return top_return.error();
  view.thinking_at_top_level = top_thinking->has_value() || top_return->has_value();
  view.enable_thinking = *top_thinking;
  view.return_reasoning = top_return->value_or(true);
  const auto& kw = got(field::chat_template_kwargs);
  view.kwargs_present = kw.present;
  if (kw.present && !kw.is(json::kind::null)) {
    if (!kw.is(json::kind::object)) return wrong_type("chat_template_kwargs", "an object", kw);
    auto inner = optional_bool(kw_thinking_.get(), "chat_template_kwargs.enable_thinking");
    if (!inner) return inner.error();
    view.kwargs_enable_thinking = *inner;
    if (*inner && !view.enable_thinking) view.enable_thinking = *inner;
    auto inner_return = optional_bool(kw_return_.get(), "chat_template_kwargs.return_reasoning");
    if (!inner_return) return inner_return.error();
    view.kwargs_return_reasoning = kw_return_.present;
    if (*inner_return && !top_return->has_value()) view.return_reasoning = **inner_return;
  }
  return view;
}

} // namespace

parse_result parse_request(std::string_view text, endpoint kind, json::storage_ptr storage, request_parse make) {
  // One parser (and value stack) per thread, reset for each request.
  thread_local json::basic_parser<request_reader> parser{json::parse_options{}};
  thread_local json::value_stack stack;
  std::string canonical;
  auto& reader = parser.handler();
  if (make.body) stack.reset(storage);
  reader.start(kind, make.body ? &stack : nullptr, make.canonical ? &canonical : nullptr, text.size());
  parser.reset();
  json::error_code ec;
  const auto used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::error::extra_data;
  reader.finish();
  std::optional<json::object> body;
  if (make.body && !ec && reader.root_object()) body.emplace(std::move(stack.release().get_object()));
  if (make.body) stack.reset(); // what it holds goes now, while its storage is alive
  if (ec)
    return invalid_request(fmt::format("We could not parse the JSON body of your request: {}.", ec.message()), {},
                           "invalid_json");
  auto view = reader.settle(text, std::move(storage));
  if (view) {
    view->canonical = std::move(canonical);
    view->parsed_body = std::move(body);
  }
  return view;
}

const json::object& request_view::body() const {
  if (!parsed_body) {
    json::error_code ec;
    auto v = text.empty() ? json::value(json::object_kind, storage) : json::parse(text, ec, storage);
    if (ec || !v.is_object()) throw std::logic_error("request_view: the body no longer parses");
    parsed_body.emplace(std::move(v.get_object()));
  }
  return *parsed_body;
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
    const auto* messages = view.body().if_contains("messages");
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
  } else if (const auto* p = view.body().if_contains("prompt")) {
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
