#include "openai/sse.hpp"

namespace llmgate::openai {

bool sse_reader::feed(std::string_view bytes, std::vector<sse_event>& out) {
  for (char c : bytes) {
    if (c == '\n' && last_was_cr_) { // the LF of a CRLF pair: the line already ended at CR
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = c == '\r';
    if (c == '\n' || c == '\r') {
      take_line(out);
      continue;
    }
    line_ += c;
    if (line_.size() + current_.data.size() > max_event_bytes_) return false;
  }
  return true;
}

void sse_reader::take_line(std::vector<sse_event>& out) {
  if (line_.empty()) { // blank line: dispatch
    if (has_data_) out.push_back(std::move(current_));
    current_ = {};
    has_data_ = false;
    return;
  }
  std::string_view line = line_;
  if (line.front() != ':') {
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
  line_.clear();
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
