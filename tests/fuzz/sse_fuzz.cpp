// The SSE reader fed in pieces, each event through the stream rewriter (the
// <think> split, usage), and the whole input as a non-streamed answer. Checks
// that bytes the reader calls verbatim are what append_sse writes for their
// events, and that a rewriter remembering chunk shapes says what one reading
// every chunk in full says.
#include "fuzz_input.hpp"
#include "openai/response_rewrite.hpp"
#include "openai/sse.hpp"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llmgate::openai;
  llmgate::fuzz::input in(data, size);
  const auto flags = in.byte();
  reasoning_options opts;
  opts.field = static_cast<reasoning_field>(flags % 3);
  opts.return_reasoning = flags & 4;
  const auto kind = flags & 8 ? endpoint::completions : endpoint::chat_completions;
  (void)rewrite_response(in.rest(), kind, opts);
  sse_reader reader(1 << 16);
  stream_rewriter rewriter(kind, opts, flags & 16);
  stream_rewriter reference(kind, opts, flags & 16, false);
  std::vector<sse_event> events;
  while (!in.empty()) {
    events.clear();
    const auto piece = in.piece();
    if (!reader.feed(piece, events)) break;
    if (reader.verbatim()) {
      std::string written;
      for (const auto& e : events) append_sse(written, e.data, e.event);
      if (written != piece) std::abort();
    }
    for (const auto& e : events)
      if (rewriter.rewrite(e.data) != reference.rewrite(e.data)) std::abort();
  }
  if (rewriter.flush() != reference.flush()) std::abort();
  const auto u = rewriter.usage(), r = reference.usage();
  if (u.has_value() != r.has_value() ||
      (u && (u->prompt_tokens != r->prompt_tokens || u->completion_tokens != r->completion_tokens)))
    std::abort();
  if (rewriter.chunks_with_content() != reference.chunks_with_content()) std::abort();
  return 0;
}
