#pragma once
// Server-sent events: an incremental reader (bytes in any pieces → whole
// events) and the writer. The reader follows the WHATWG event-stream rules:
// CRLF, LF or CR line ends; "data:" lines joined by "\n"; ":" comments skipped.
// Not thread-safe (one per stream).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::openai {

struct sse_event {
  std::string event; // the "event:" field, empty for the default "message"
  std::string data;
};

class sse_reader final {
public:
  explicit sse_reader(std::size_t max_event_bytes = 4 << 20) : max_event_bytes_(max_event_bytes) {}

  // Appends bytes; complete events are pushed to out. Returns false when an
  // event grows past the limit (the stream is then broken).
  [[nodiscard]] bool feed(std::string_view bytes, std::vector<sse_event>& out);
  // True when bytes were fed that do not yet form a complete event.
  [[nodiscard]] bool has_partial() const noexcept { return !line_.empty() || has_data_ || !current_.event.empty(); }

private:
  void take_line(std::string_view line, std::vector<sse_event>& out);

  std::size_t max_event_bytes_;
  std::string line_;
  bool last_was_cr_ = false;
  bool has_data_ = false;
  sse_event current_;
};

// "data: <data>\n\n" (with "event: <event>\n" first when named).
void append_sse(std::string& out, std::string_view data, std::string_view event = {});
inline constexpr std::string_view k_sse_done = "data: [DONE]\n\n";

} // namespace llmgate::openai
