#pragma once
// Keep-alive connections to one backend, owned by one worker (not
// thread-safe: each event-loop thread has its own pools, so no locks on the
// request path). Include only from translation units that speak HTTP.
#include "control/config.hpp"
#include "io/beast.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace llmgate::tls {
class context;
}

namespace llmgate::upstream {

namespace net = boost::asio;
namespace beast = boost::beast;

struct connection {
  explicit connection(io::socket s) : stream(std::move(s)) {}
  io::tcp_stream stream;
  beast::flat_buffer buffer;
  std::string head;    // each request's head is written here: its room is kept for the next request
  bool reused = false; // came from the idle list: the backend may have closed it meanwhile
  std::chrono::steady_clock::time_point idle_since; // when it went back to the idle list
};

class pool final {
public:
  // tls: for an https:// backend (it outlives the pool), else null.
  pool(io::executor ex, const control::backend_config& backend, std::size_t max_idle, const tls::context* tls = nullptr)
      : ex_(std::move(ex)), backend_(backend), max_idle_(max_idle), tls_(tls) {}

  // An idle connection that is still open, or null. Not a coroutine: on the
  // request path there nearly always is one, and a coroutine's frame (too
  // large for Asio's recycling) cost an allocation per request.
  [[nodiscard]] std::unique_ptr<connection> take_idle();
  // A new connection (connect, and the TLS handshake of an https:// backend,
  // bounded by timeout).
  io::task<boost::system::result<std::unique_ptr<connection>>> connect(control::duration timeout);
  // Back to the idle list, when the exchange left it reusable.
  void release(std::unique_ptr<connection> c);

  [[nodiscard]] std::size_t idle() const noexcept { return idle_.size(); }
  [[nodiscard]] const control::backend_config& backend() const noexcept { return backend_; }

private:
  io::executor ex_;
  const control::backend_config& backend_;
  std::size_t max_idle_;
  const tls::context* tls_;
  std::vector<std::unique_ptr<connection>> idle_;
};

} // namespace llmgate::upstream
