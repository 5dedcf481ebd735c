#pragma once
// Redis Cluster's key → slot mapping (CRC16/XMODEM of the key, or of its
// hash tag, modulo 16384), computed here so a request's keys can be grouped
// by slot before anything is sent. Written by hand: hiredis does not export
// it and Debian has no Redis Cluster client library.
#include <cstdint>
#include <string_view>

namespace llmgate::redis {

inline constexpr std::uint16_t k_slots = 16384;

// The part of a key that is hashed: the text between the first '{' and the
// first '}' after it when that is not empty, else the whole key.
[[nodiscard]] std::string_view hash_tag(std::string_view key) noexcept;

[[nodiscard]] std::uint16_t key_slot(std::string_view key) noexcept;

} // namespace llmgate::redis
