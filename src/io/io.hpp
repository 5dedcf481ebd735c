#pragma once
// The executor every coroutine, socket and timer of llmgate runs on: the
// io_context's own executor type instead of Asio's default, the type-erased
// any_io_executor, whose construction, copies and dispatch on every
// asynchronous step were ~10% of a proxied request's instructions
// (docs/BENCHMARKS.md, "Instructions per request"). Everything here runs on
// io_contexts, so nothing needed the type erasure. Include only from
// translation units that already use Asio (it is slow to compile).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace llmgate::io {

using executor = boost::asio::io_context::executor_type;
template <class T = void> using task = boost::asio::awaitable<T, executor>;
using socket = boost::asio::ip::tcp::socket::rebind_executor<executor>::other;
using acceptor = boost::asio::ip::tcp::acceptor::rebind_executor<executor>::other;
using resolver = boost::asio::ip::tcp::resolver::rebind_executor<executor>::other;
using timer = boost::asio::steady_timer::rebind_executor<executor>::other;
// The completion token of a co_await on this executor.
inline constexpr boost::asio::use_awaitable_t<executor> use_task{};
// A co_await with the error code returned in a tuple instead of thrown. The
// operation is deferred: the awaiting coroutine starts it itself, where
// use_awaitable would wrap each initiation in a coroutine frame of its own,
// allocated, pumped and freed (~550 of a proxied request's 34.8k
// instructions; docs/BENCHMARKS.md).
inline constexpr auto k_tuple = boost::asio::as_tuple(boost::asio::deferred);
// The same through use_awaitable, for initiations written before Asio had
// deferred operations (Beast's basic_stream::async_connect to a range).
inline constexpr auto k_tuple_awaitable = boost::asio::as_tuple(use_task);

} // namespace llmgate::io
