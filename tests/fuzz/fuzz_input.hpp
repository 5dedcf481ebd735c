#pragma once
// Splitting a fuzzer's input: a few leading bytes choose options, the rest is
// the data, fed in pieces whose sizes come from the input too (so that
// incremental readers see every way the bytes can arrive).
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llmgate::fuzz {

class input final {
public:
  input(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

  // One byte of options (0 when the input is used up).
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // The next piece: 1..64 bytes, its length from one byte of the input.
  std::string_view piece() {
    const std::size_t n = 1 + byte() % 64;
    const auto p = rest_.substr(0, n);
    rest_.remove_prefix(p.size());
    return p;
  }
  [[nodiscard]] std::string_view rest() const noexcept { return rest_; }
  [[nodiscard]] bool empty() const noexcept { return rest_.empty(); }

private:
  std::string_view rest_;
};

} // namespace llmgate::fuzz
