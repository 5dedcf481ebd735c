#include "openai/think_splitter.hpp"

#include <algorithm>

namespace llmgate::openai {

namespace {

constexpr std::string_view k_open = "<think>";
constexpr std::string_view k_close = "</think>";

std::size_t leading_space(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  return i;
}

// Length of the longest suffix of s that is a proper prefix of tag.
std::size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (std::size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

} // namespace

think_splitter::parts think_splitter::feed(std::string_view text) {
  parts out;
  switch (state_) {
  case state::start: {
    held_.append(text);
    const std::string_view h = held_;
    const std::string_view rest = h.substr(leading_space(h));
    if (rest.size() < k_open.size() && k_open.starts_with(rest)) return out; // could still become "<think>"
    if (rest.starts_with(k_open)) {
      state_ = state::thinking;
      skip_newlines_ = true;
      std::string after(rest.substr(k_open.size()));
      held_.clear();
      feed_thinking(after, out);
    } else {
      state_ = state::content;
      std::string all = std::move(held_);
      held_.clear();
      feed_content(all, out);
    }
    return out;
  }
  case state::thinking: feed_thinking(text, out); return out;
  case state::content: feed_content(text, out); return out;
  }
  return out;
}

void think_splitter::feed_thinking(std::string_view text, parts& out) {
  std::string buf = std::move(held_);
  held_.clear();
  buf.append(text);
  std::string_view view = buf;
  if (skip_newlines_) {
    const auto n = view.find_first_not_of("\r\n");
    if (n == std::string_view::npos) return; // only newlines so far: keep skipping
    view.remove_prefix(n);
    skip_newlines_ = false;
  }
  if (const auto pos = view.find(k_close); pos != std::string_view::npos) {
    out.reasoning.append(view.substr(0, pos));
    state_ = state::content;
    skip_newlines_ = true;
    feed_content(view.substr(pos + k_close.size()), out);
    return;
  }
  const auto keep = partial_tag_suffix(view, k_close);
  out.reasoning.append(view.substr(0, view.size() - keep));
  held_.assign(view.substr(view.size() - keep));
}

void think_splitter::feed_content(std::string_view text, parts& out) {
  if (skip_newlines_) {
    const auto n = text.find_first_not_of("\r\n");
    if (n == std::string_view::npos) return;
    text.remove_prefix(n);
    skip_newlines_ = false;
  }
  out.content.append(text);
}

think_splitter::parts think_splitter::finish() {
  parts out;
  if (state_ == state::thinking)
    out.reasoning = std::move(held_);
  else
    out.content = std::move(held_);
  held_.clear();
  return out;
}

} // namespace llmgate::openai
