#include "openai/sse.hpp"

#include <cstring>

namespace llmgate::openai {

namespace {

// The first CR or LF in [p, end), or end.
const char* line_end(const char* p, const char* end) {
  const auto* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
  const char* stop = lf ? lf : end;
  const auto* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(stop - p)));
  return cr ? cr : stop;
}

constexpr std::string_view k_data_prefix = "data: ";

} // namespace

// Line by line, each found with memchr and taken whole: a line that arrived
// in one piece (nearly all) is read where it lies, and an event of one such
// data line is a view of it: no copy. Byte by byte appends were a third of a
// relayed stream's instructions, and a string per event a tenth.
bool sse_reader::feed(std::string_view bytes, std::vector<sse_event>& out) {
  kept_.clear();
  verbatim_ = !has_partial() && !last_was_cr_;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end) {
    if (last_was_cr_) { // the LF of a CRLF pair: the line already ended at CR
      last_was_cr_ = false;
      if (*p == '\n') {
        ++p;
        continue;
      }
    }
    const char* const eol = line_end(p, end);
    const std::string_view piece(p, static_cast<std::size_t>(eol - p));
    const std::size_t held = data_owned_ ? data_.size() : data_view_.size();
    if (line_.size() + piece.size() + held > max_event_bytes_) return false;
    if (eol == end) { // the line goes on in the next bytes
      line_.append(piece);
      break;
    }
    last_was_cr_ = *eol == '\r';
    if (last_was_cr_) verbatim_ = false;
    if (line_.empty()) {
      take_line(piece, true, out);
    } else {
      line_.append(piece);
      take_line(line_, false, out);
      line_.clear();
    }
    p = eol + 1;
  }
  if (has_partial()) {
    verbatim_ = false;
    own_current(); // the bytes it points into are gone after this call
  }
  return true;
}

void sse_reader::own_current() {
  if (!has_data_ || data_owned_) return;
  data_.assign(data_view_);
  data_owned_ = true;
  data_view_ = {};
}

// `whole`: the line is a view of the bytes fed (it may be kept as one);
// otherwise it is line_, about to be cleared.
void sse_reader::take_line(std::string_view line, bool whole, std::vector<sse_event>& out) {
  if (line.empty()) { // blank line: dispatch
    if (has_data_) {
      sse_event e{{}, data_view_};
      if (data_owned_) {
        kept_.push_front(std::move(data_));
        data_.clear();
        e.data = kept_.front();
      }
      if (!event_.empty()) {
        kept_.push_front(std::move(event_));
        event_.clear();
        e.event = kept_.front();
      }
      out.push_back(e);
    } else {
      verbatim_ = false; // a block without data: append_sse writes none
    }
    event_.clear();
    has_data_ = data_owned_ = false;
    data_view_ = {};
    return;
  }
  if (line.front() == ':') { // a comment
    verbatim_ = false;
    return;
  }
  std::string_view field = line, value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (!line.starts_with(k_data_prefix)) verbatim_ = false;
    if (has_data_) { // a second data line: joined in a copy
      own_current();
      data_ += '\n';
      data_.append(value);
      verbatim_ = false;
    } else if (whole) {
      data_view_ = value;
    } else {
      data_.assign(value);
      data_owned_ = true;
    }
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
    verbatim_ = false;
  } else { // id and retry mean nothing to a relay
    verbatim_ = false;
  }
}

void append_sse(std::string& out, std::string_view data, std::string_view event) {
  if (!event.empty()) {
    out += "event: ";
    out.append(event);
    out += '\n';
  }
  // A data value may span lines; each line needs its own "data:" prefix.
  std::size_t start = 0;
  while (true) {
    const auto nl = data.find('\n', start);
    out += k_data_prefix;
    out.append(data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
}

} // namespace llmgate::openai
