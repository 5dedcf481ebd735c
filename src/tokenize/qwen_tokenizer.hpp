#pragma once
// The Qwen3 tokenizer in C++: byte-level BPE loaded from the tokenizer.json
// that ships with every Qwen3 model — its NFC normalizer, its split pattern
// (PCRE2: Unicode letter/number classes and a look-ahead, which std::regex
// cannot do), its merges and its added tokens (<|im_start|>, <think>, ...).
// Loading is slow (seconds); encoding is thread-safe (the cache is per thread).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmgate::tokenize {

class qwen_tokenizer final {
public:
  // Throws std::runtime_error naming what is wrong with the file.
  static std::shared_ptr<const qwen_tokenizer> load(const std::string& tokenizer_json_path);
  ~qwen_tokenizer();

  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const;
  [[nodiscard]] std::size_t count(std::string_view text) const { return encode(text).size(); }
  [[nodiscard]] std::size_t vocab_size() const;

  struct impl;

private:
  explicit qwen_tokenizer(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

} // namespace llmgate::tokenize
