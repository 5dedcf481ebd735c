// The <think> splitter fed in pieces: nothing is lost or invented — every
// byte of its output came from the input, in order.
#include "fuzz_input.hpp"
#include "openai/think_splitter.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llmgate::openai;
  llmgate::fuzz::input in(data, size);
  const std::string whole(in.rest());
  think_splitter splitter;
  std::string reasoning, content;
  auto take = [&](const think_splitter::parts& p) {
    reasoning += p.reasoning;
    content += p.content;
  };
  while (!in.empty()) take(splitter.feed(in.piece()));
  take(splitter.finish());
  if (reasoning.size() + content.size() > whole.size()) __builtin_trap();
  return 0;
}
