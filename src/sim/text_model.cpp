#include "sim/text_model.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace llmgate::sim {

namespace {

constexpr std::array<std::string_view, 48> k_words = {
    "the",     "model", "answer",   "Qwen3",  "gateway", "request", "token",   "limit",   "stream",  "server",
    "latency", "GPU",   "batch",    "cache",  "window",  "bucket",  "breaker", "backend", "replica", "Redis",
    "metric",  "level", "fallback", "reply",  "so",      "and",     "then",    "because", "while",   "with",
    "from",    "into",  "quickly",  "safely", "always",  "never",   "often",   "each",    "every",   "some",
    "is",      "runs",  "keeps",    "serves", "counts",  "waits",   "answers", "holds"};

constexpr std::array<std::string_view, 16> k_thoughts = {"Let",  "me",    "think", "about", "what", "the",
                                                         "user", "asks",  "first", "check", "the",  "facts",
                                                         "then", "write", "a",     "reply"};

struct rng {
  std::uint64_t state;
  std::uint64_t next() { // splitmix64
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

} // namespace

std::uint64_t fnv1a(std::string_view text, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::int64_t estimate_tokens(std::string_view text) { return static_cast<std::int64_t>(text.size() / 4 + 1); }

generation generate(const generation_request& req) {
  rng r{fnv1a(req.prompt)};
  std::size_t answer = req.answer_tokens ? req.answer_tokens : 16 + r.next() % 33;
  const std::size_t thought = req.thinking_tokens ? req.thinking_tokens : 8 + r.next() % 17;
  const std::size_t block = req.thinking ? thought + 5 : 0; // <think>, "\n", the thought, ".\n", </think>, "\n\n"
  if (req.ignore_eos && req.max_tokens > 0) {               // the answer runs on until max_tokens cuts it
    // At most Qwen3's context (40,960 tokens), as a server stops there too.
    const auto wanted = static_cast<std::size_t>(std::min<std::int64_t>(req.max_tokens, 40960));
    answer = std::max(answer, wanted + 1 - std::min(block, wanted));
  }
  // Tokens past max_tokens would be cut off: only those within it are made
  // (the same ones, as each word's draw depends only on the draws before it).
  const std::size_t limit =
      req.max_tokens > 0 ? static_cast<std::size_t>(req.max_tokens) : std::numeric_limits<std::size_t>::max();
  generation g;
  g.tokens.reserve(std::min(block + answer, limit));
  if (req.thinking) {
    g.tokens.emplace_back("<think>");
    g.tokens.emplace_back("\n");
    for (std::size_t i = 0; i < thought; ++i)
      g.tokens.push_back((i ? " " : "") + std::string(k_thoughts[(i + r.next() % 3) % k_thoughts.size()]));
    g.tokens.emplace_back(".\n");
    g.tokens.emplace_back("</think>");
    g.tokens.emplace_back("\n\n");
    g.reasoning_tokens = g.tokens.size();
  }
  const std::size_t words = std::min(answer, limit - std::min(limit, block));
  for (std::size_t i = 0; i < words; ++i) {
    auto& token = g.tokens.emplace_back(i ? " " : "");
    token += k_words[r.next() % k_words.size()];
    if (i == 0 && token[0] >= 'a' && token[0] <= 'z') token[0] = static_cast<char>(token[0] - 32);
  }
  if (words == answer) g.tokens.back() += ".";
  if (block + answer > limit) {
    g.tokens.resize(limit);
    g.truncated = true;
    if (g.reasoning_tokens > g.tokens.size()) g.reasoning_tokens = g.tokens.size();
  }
  return g;
}

} // namespace llmgate::sim
