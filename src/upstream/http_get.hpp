#pragma once
// A one-shot HTTP/1.1 GET on a new connection, for probes and metric
// scrapes (not the request path, which uses pooled connections).
#include "control/config.hpp"
#include "control/duration.hpp"
#include "io/io.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmgate::tls {
class context;
}

namespace llmgate::upstream {

using http_url = control::http_url; // parsed by control::parse_http_url

struct get_result {
  int status = 0;
  std::string content_type;
  std::string body;
};

// Connect, send and read, all within `timeout`; the body is capped at max_body bytes.
// bearer: sent as "Authorization: Bearer <bearer>" when not empty (a backend's api_key).
// tls: the client context for an https:// url (an https url without one fails).
io::task<boost::system::result<get_result>> http_get(const http_url& url, control::duration timeout,
                                                     std::size_t max_body = 8 << 20, std::string_view bearer = {},
                                                     const tls::context* tls = nullptr);

// The same, run to completion on a private event loop (for the CLI).
[[nodiscard]] boost::system::result<get_result> http_get_blocking(const http_url& url, control::duration timeout,
                                                                  const tls::context* tls = nullptr);

} // namespace llmgate::upstream
