#pragma once
// A response's Content-Type, held without an allocation for the two an LLM
// API answers with: "application/json" is one byte longer than what
// std::string keeps inline (15), so every answer's type was an allocation
// where the backend's head was parsed and another where the answer was
// handed on. Any other type is kept in a string.
#include <string>
#include <string_view>

namespace llmgate::io {

class media_type {
public:
  static constexpr std::string_view k_json = "application/json";
  static constexpr std::string_view k_event_stream = "text/event-stream";

  media_type& operator=(std::string_view type) {
    assign(type);
    return *this;
  }

  void assign(std::string_view type) {
    if (type == k_json) {
      known_ = known::json;
      other_.clear();
    } else if (type == k_event_stream) {
      known_ = known::event_stream;
      other_.clear();
    } else {
      known_ = known::other;
      other_.assign(type);
    }
  }

  [[nodiscard]] std::string_view view() const noexcept {
    switch (known_) {
    case known::json: return k_json;
    case known::event_stream: return k_event_stream;
    case known::other: break;
    }
    return other_;
  }
  operator std::string_view() const noexcept { return view(); } // NOLINT: read where a string_view is taken

private:
  enum class known : unsigned char { other, json, event_stream };
  known known_ = known::other;
  std::string other_; // the type when it is neither of the two
};

} // namespace llmgate::io
