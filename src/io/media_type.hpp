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

  media_type() = default;
  media_type(std::string_view type) { assign(type); } // NOLINT: converts like the string it replaces
  media_type(const char* type) : media_type(std::string_view(type)) {}
  media_type& operator=(std::string_view type) {
    assign(type);
    return *this;
  }
  media_type& operator=(const char* type) { return *this = std::string_view(type); }

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
  [[nodiscard]] bool empty() const noexcept { return view().empty(); }
  [[nodiscard]] bool starts_with(std::string_view prefix) const noexcept { return view().starts_with(prefix); }
  friend bool operator==(const media_type& a, std::string_view b) noexcept { return a.view() == b; }

private:
  enum class known : unsigned char { other, json, event_stream };
  known known_ = known::other;
  std::string other_; // the type when it is neither of the two
};

} // namespace llmgate::io
