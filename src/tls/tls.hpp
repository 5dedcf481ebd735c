#pragma once
// TLS for the listener, the backends and Redis, with OpenSSL through Asio.
//
// The HTTP and RESP code speaks to one kind of socket. Rather than make all
// of it generic over the stream type (Beast in more translation units, a
// second copy of every coroutine), a TLS connection is terminated here and
// its plain bytes relayed through a local socket pair: the caller gets the
// pair's other end and reads and writes it as it would a TCP connection.
// Timeouts stay with the caller: when it closes its end, the relay sends
// close_notify and closes the TLS connection; when the peer closes, the
// caller reads end of file. Only this file's .cpp includes OpenSSL.
#include "control/config.hpp"
#include "control/duration.hpp"
#include "io/io.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/result.hpp>
#include <memory>
#include <string_view>

namespace llmgate::tls {

// An OpenSSL context (certificates, trusted authorities, protocol floor),
// built once and shared by every connection and thread.
class context final {
public:
  // The listener's: throws std::runtime_error naming the file and OpenSSL's reason.
  [[nodiscard]] static context server(const control::tls_server_config& cfg);
  // A client's (backends, Redis): the same on a bad file.
  [[nodiscard]] static context client(const control::tls_client_config& cfg);

  struct impl;
  [[nodiscard]] const impl& get() const noexcept { return *impl_; }

private:
  explicit context(std::shared_ptr<impl> i) : impl_(std::move(i)) {}
  std::shared_ptr<impl> impl_;
};

// Runs the TLS handshake on `socket` (as the context's side) within
// `timeout`, then relays. `host` is the name a client context checks the
// certificate against and sends as SNI, unless the context names its own
// server_name. The socket returned is plain: one end of the relay's pair
// (not a TCP socket, though typed as one; TCP options on it fail harmlessly).
[[nodiscard]] io::task<boost::system::result<io::socket>> secure(io::socket socket, const context& ctx,
                                                                 std::string_view host, control::duration timeout);

} // namespace llmgate::tls
