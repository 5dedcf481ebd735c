#include "control/caller.hpp"

#include <algorithm>

namespace llmgate::control {

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::optional<caller> identify(const config& cfg, std::string_view authorization, std::string_view client_ip) {
  std::string_view token = authorization;
  if (token.size() >= 7 && (token.substr(0, 7) == "Bearer " || token.substr(0, 7) == "bearer ")) token.remove_prefix(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  caller anonymous{"ip:" + std::string(client_ip), cfg.default_tier, true};
  if (token.empty() || token == "EMPTY") {
    if (cfg.auth_required) return std::nullopt;
    return anonymous;
  }
  // Every key is compared, whichever matches: the time taken says nothing about which one or how close.
  const key_config* found = nullptr;
  for (const auto& k : cfg.keys)
    if (constant_time_equal(k.key, token) && !found) found = &k;
  if (!found) {
    if (cfg.auth_required) return std::nullopt;
    return anonymous; // a random key buys no fresh quota: it is keyed by the client's address
  }
  return caller{found->name, found->tier.empty() ? cfg.default_tier : found->tier, false};
}

bool is_trusted_proxy(const config& cfg, std::string_view address) {
  const auto a = parse_address(address);
  return a && std::any_of(cfg.trusted_proxies.begin(), cfg.trusted_proxies.end(),
                          [&](const cidr& c) { return c.contains(*a); });
}

std::string client_address(const config& cfg, std::string_view peer, std::string_view forwarded_for) {
  auto trusted = [&](std::string_view address) { return is_trusted_proxy(cfg, address); };
  if (forwarded_for.empty() || cfg.trusted_proxies.empty() || !trusted(peer)) return std::string(peer);
  std::string_view rest = forwarded_for;
  std::string_view hop = peer;
  while (!rest.empty()) {
    const auto comma = rest.rfind(',');
    std::string_view item = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!parse_address(item)) break; // garbage: stop at the last hop we could trust
    hop = item;
    if (!trusted(item)) break;
  }
  return std::string(hop);
}

} // namespace llmgate::control
