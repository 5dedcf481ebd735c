// The request view (parse and validate a client's body) and the body rewrite
// for every backend kind and ladder option.
#include "fuzz_input.hpp"
#include "openai/body_rewrite.hpp"
#include "openai/request_view.hpp"

#include <boost/json/serialize.hpp>

namespace {
bool has_double(const boost::json::value& v) {
  if (v.is_double()) return true;
  if (const auto* a = v.if_array())
    for (const auto& e : *a)
      if (has_double(e)) return true;
  if (const auto* o = v.if_object())
    for (const auto& kv : *o)
      if (has_double(kv.value())) return true;
  return false;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llmgate::openai;
  llmgate::fuzz::input in(data, size);
  const auto flags = in.byte();
  const auto kind = flags & 1 ? endpoint::completions : endpoint::chat_completions;
  const auto body = in.rest();
  auto view = parse_request(body, kind);
  if (!view) return 0;
  // What the parse read agrees with the body it describes, built at once or
  // on first use; and the canonical form (the cache's key) is the same for
  // the same body written out again, without its spacing or repeated keys.
  const auto eager = parse_request(body, kind, {}, {.body = true, .canonical = true});
  if (!eager || !eager->parsed_body || *eager->parsed_body != view->body() || eager->model != view->model)
    __builtin_trap();
  const auto written = boost::json::serialize(view->body());
  const auto again = parse_request(written, kind, {}, {.canonical = true});
  // (Unless it holds a double: Boost.JSON 1.81 does not read every long
  // literal to the nearest double, so one written out and read again may
  // differ in its last bit.)
  if (!again || (again->canonical != eager->canonical && !has_double(boost::json::value(view->body()))))
    __builtin_trap();
  (void)prompt_prefix(*view);
  rewrite_options opts;
  opts.want_usage = flags & 2;
  opts.stream_off = flags & 4;
  opts.thinking_off = flags & 8;
  for (const auto k :
       {backend_kind::vllm, backend_kind::sglang, backend_kind::llamacpp, backend_kind::ollama, backend_kind::openai}) {
    const auto out = rewrite_request(*view, "Qwen/Qwen3-1.7B", k, opts);
    // What goes upstream is a request the gateway itself accepts.
    if (!parse_request(out ? std::string_view(*out) : body, kind)) __builtin_trap();
  }
  return 0;
}
