// The SSE reader fed in pieces, each event through the stream rewriter (the
// <think> split, usage), and the whole input as a non-streamed answer.
#include "fuzz_input.hpp"
#include "openai/response_rewrite.hpp"
#include "openai/sse.hpp"

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
  std::vector<sse_event> events;
  while (!in.empty()) {
    events.clear();
    if (!reader.feed(in.piece(), events)) break;
    for (const auto& e : events) (void)rewriter.rewrite(e.data);
  }
  (void)rewriter.flush();
  return 0;
}
