#pragma once
// Beast's timed TCP stream on llmgate's executor (io/io.hpp). Include only
// from the few translation units that speak HTTP (Beast is slow to compile).
#include "io/io.hpp"

#include <boost/beast/core/tcp_stream.hpp>

namespace llmgate::io {

using tcp_stream = boost::beast::basic_stream<boost::asio::ip::tcp, executor>;

} // namespace llmgate::io
