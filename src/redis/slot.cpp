#include "redis/slot.hpp"

#include <array>

namespace llmgate::redis {

namespace {

// CRC16/XMODEM (polynomial 0x1021, initial value 0), as the Redis Cluster specification defines it.
constexpr std::array<std::uint16_t, 256> make_table() {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    auto c = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) c = static_cast<std::uint16_t>((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
    t[i] = c;
  }
  return t;
}

constexpr auto k_table = make_table();

} // namespace

std::string_view hash_tag(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

std::uint16_t key_slot(std::string_view key) noexcept {
  std::uint16_t crc = 0;
  for (const char ch : hash_tag(key))
    crc = static_cast<std::uint16_t>((crc << 8) ^ k_table[((crc >> 8) ^ static_cast<unsigned char>(ch)) & 0xff]);
  return static_cast<std::uint16_t>(crc & (k_slots - 1));
}

} // namespace llmgate::redis
