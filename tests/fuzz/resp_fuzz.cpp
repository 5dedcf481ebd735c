// The RESP decoder (hiredis's reader) fed in pieces: protocol errors are
// reported, never crash.
#include "fuzz_input.hpp"
#include "redis/resp.hpp"

#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  llmgate::fuzz::input in(data, size);
  llmgate::redis::decoder decoder;
  try {
    while (!in.empty()) {
      if (!decoder.feed(in.piece())) return 0;
      while (decoder.next()) {
      }
    }
  } catch (const std::runtime_error&) { // a protocol error: the connection would be dropped
  }
  return 0;
}
