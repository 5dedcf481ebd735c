#pragma once
// Server-sent events: an incremental reader (bytes in any pieces → whole
// events) and the writer. The reader follows the WHATWG event-stream rules:
// CRLF, LF or CR line ends; "data:" lines joined by "\n"; ":" comments skipped.
// Not thread-safe (one per stream).
#include <cstddef>
#include <forward_list>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::openai {

// An event as views: into the bytes fed, or into the reader's own storage
// for one that came in pieces or has several data lines. Valid until the
// reader's next feed.
struct sse_event {
  std::string_view event; // the "event:" field, empty for the default "message"
  std::string_view data;
};

class sse_reader final {
public:
  explicit sse_reader(std::size_t max_event_bytes = 4 << 20) : max_event_bytes_(max_event_bytes) {}

  // Reads bytes; their complete events are pushed to out (views valid until
  // the next feed). Returns false when an event grows past the limit (the
  // stream is then broken).
  [[nodiscard]] bool feed(std::string_view bytes, std::vector<sse_event>& out);
  // True when the bytes fed last are exactly what append_sse writes for the
  // events they gave, in order: nothing carried in from before or left for
  // the next bytes, every line "data: …" ended by LF, one per event, and a
  // blank line after each. A relay sends such bytes on as they came when no
  // event changes.
  [[nodiscard]] bool verbatim() const noexcept { return verbatim_; }
  // True when bytes were fed that do not yet form a complete event.
  [[nodiscard]] bool has_partial() const noexcept { return !line_.empty() || has_data_ || !event_.empty(); }

private:
  void take_line(std::string_view line, bool whole, std::vector<sse_event>& out);
  // The event being read keeps its own copy of what it holds (before the bytes it points into go).
  void own_current();

  std::size_t max_event_bytes_;
  std::string line_; // a line cut off at the end of the bytes fed
  bool last_was_cr_ = false;
  bool verbatim_ = false;
  // The event being read: its data, a view (one data line, where it lies)
  // until a second line or the end of the bytes makes it a copy in data_.
  bool has_data_ = false;
  bool data_owned_ = false;
  std::string_view data_view_;
  std::string data_;
  std::string event_;
  std::forward_list<std::string> kept_; // the copies the last feed's events point into
};

// "data: <data>\n\n" (with "event: <event>\n" first when named).
void append_sse(std::string& out, std::string_view data, std::string_view event = {});
inline constexpr std::string_view k_sse_done = "data: [DONE]\n\n";

} // namespace llmgate::openai
