#pragma once
// Who is calling: the API key's name and tier (the key itself goes no
// further), or an anonymous caller; and the client's address, taking
// X-Forwarded-For only from configured trusted proxies. Pure; thread-safe
// (reads an immutable config).
#include "control/config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace llmgate::control {

struct caller {
  std::string name; // the key's name; "ip:<client ip>" for anonymous callers
  std::string tier;
  bool anonymous = true;
};

// From the Authorization header's value. No key, "Bearer EMPTY" (the seed's
// api_key="EMPTY") and, under auth.mode optional, unknown keys are anonymous;
// under auth.mode required an unknown or missing key gives nullopt (401).
// Keys are compared in constant time against every configured key.
[[nodiscard]] std::optional<caller> identify(const config& cfg, std::string_view authorization,
                                             std::string_view client_ip);

// Whether `address` lies in one of the configured trusted_proxies.
[[nodiscard]] bool is_trusted_proxy(const config& cfg, std::string_view address);

// The client's address: the peer, or, when the peer is a trusted proxy, the
// nearest untrusted address in X-Forwarded-For (read from the right).
[[nodiscard]] std::string client_address(const config& cfg, std::string_view peer, std::string_view forwarded_for);

// Equal contents, in time that depends only on the lengths.
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b);

} // namespace llmgate::control
