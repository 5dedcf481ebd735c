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

} // namespace

// Line by line, each found with memchr and taken whole: a line that arrived
// in one piece (nearly all) is read where it lies, without a copy. Byte by
// byte appends were a third of a relayed stream's instructions.
bool sse_reader::feed(std::string_view bytes, std::vector<sse_event>& out) {
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
    if (line_.size() + piece.size() + current_.data.size() > max_event_bytes_) return false;
    if (eol == end) { // the line goes on in the next bytes
      line_.append(piece);
      break;
    }
    last_was_cr_ = *eol == '\r';
    if (line_.empty()) {
      take_line(piece, out);
    } else {
      line_.append(piece);
      take_line(line_, out);
      line_.clear();
    }
    p = eol + 1;
  }
  return true;
}

void sse_reader::take_line(std::string_view line, std::vector<sse_event>& out) {
  if (line.empty()) { // blank line: dispatch
    if (has_data_) out.push_back(std::move(current_));
    current_ = {};
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return; // a comment
  std::string_view field = line, value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) current_.data += '\n';
    current_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    current_.event.assign(value);
  } // id and retry mean nothing to a relay
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
    out += "data: ";
    out.append(data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
}

} // namespace llmgate::openai
