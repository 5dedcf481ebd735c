#include "tokenize/qwen_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <pcre2.h>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <utf8proc.h>

namespace llmgate::tokenize {

namespace json = boost::json;

namespace {

// GPT-2's byte-level alphabet: every byte is written as a printable code
// point in vocab and merges; this maps such a code point back to its byte.
std::array<int, 512> byte_of_codepoint() {
  std::array<int, 512> out;
  out.fill(-1);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    out[printable ? b : 256 + extra++] = b;
  }
  return out;
}

// A vocab or merge string (byte-level code points) as the raw bytes it stands for.
std::string to_bytes(std::string_view s, const std::array<int, 512>& table) {
  std::string out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(p, left, &cp);
    if (n <= 0 || cp < 0 || cp >= 512 || table[cp] < 0) throw std::runtime_error("not a byte-level token");
    out += static_cast<char>(table[cp]);
    p += n;
    left -= n;
  }
  return out;
}

struct pair_hash {
  std::size_t operator()(const std::pair<std::int32_t, std::int32_t>& p) const noexcept {
    return std::hash<std::uint64_t>{}((static_cast<std::uint64_t>(p.first) << 32) |
                                      static_cast<std::uint32_t>(p.second));
  }
};

} // namespace

struct qwen_tokenizer::impl {
  std::unordered_map<std::string, std::int32_t> vocab; // raw bytes → id
  // (left id, right id) → (rank, merged id)
  std::unordered_map<std::pair<std::int32_t, std::int32_t>, std::pair<std::int32_t, std::int32_t>, pair_hash> merges;
  std::array<std::int32_t, 256> byte_ids{};
  std::vector<std::pair<std::string, std::int32_t>> added; // content, id; longest first
  pcre2_code* pattern = nullptr;

  ~impl() {
    if (pattern) pcre2_code_free(pattern);
  }

  // BPE on one pre-token: start from single bytes, merge the lowest-ranked adjacent pair until none applies.
  void bpe(std::string_view piece, std::vector<std::int32_t>& out) const {
    // Words repeat: a per-thread cache of their ids, bounded.
    thread_local std::unordered_map<std::string, std::vector<std::int32_t>> cache;
    thread_local const impl* cache_owner = nullptr;
    if (cache_owner != this) {
      cache.clear();
      cache_owner = this;
    }
    const std::string word(piece);
    if (auto it = cache.find(word); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    // Merges by rank in O(n log n): symbols in a linked list, candidate pairs
    // in a min-heap checked lazily (a pair whose sides changed is skipped), so
    // a long run of letters cannot stall the worker.
    const std::size_t n = piece.size();
    std::vector<std::int32_t> id(n);
    std::vector<std::int32_t> prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (std::size_t i = 0; i < n; ++i) {
      id[i] = byte_ids[static_cast<unsigned char>(piece[i])];
      prev[i] = static_cast<std::int32_t>(i) - 1;
      next[i] = i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1;
    }
    struct candidate {
      std::int32_t rank, left, left_id, right_id;
      bool operator>(const candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<candidate, std::vector<candidate>, std::greater<>> heap;
    auto consider = [&](std::int32_t left) {
      if (left < 0 || next[left] < 0) return;
      const auto it = merges.find({id[left], id[next[left]]});
      if (it != merges.end()) heap.push({it->second.first, left, id[left], id[next[left]]});
    };
    for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(n); ++i) consider(i);
    while (!heap.empty()) {
      const auto c = heap.top();
      heap.pop();
      const auto right = next[c.left];
      if (!alive[c.left] || right < 0 || id[c.left] != c.left_id || id[right] != c.right_id) continue; // stale
      id[c.left] = merges.at({c.left_id, c.right_id}).second;
      alive[right] = false;
      next[c.left] = next[right];
      if (next[right] >= 0) prev[next[right]] = c.left;
      consider(prev[c.left]);
      consider(c.left);
    }
    std::vector<std::int32_t> ids;
    for (std::int32_t i = 0; i >= 0 && static_cast<std::size_t>(i) < n; i = next[i])
      if (alive[i]) ids.push_back(id[i]);
    out.insert(out.end(), ids.begin(), ids.end());
    if (word.size() <= 64) { // short words repeat; long ones would only fill memory
      if (cache.size() > 100'000) cache.clear();
      cache.emplace(word, std::move(ids));
    }
  }

  // NFC, the split pattern, then BPE on each piece.
  void encode_plain(std::string_view text, std::vector<std::int32_t>& out) const {
    if (text.empty()) return;
    utf8proc_uint8_t* normalized = nullptr;
    const auto len =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                     &normalized, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    std::string nfc;
    if (len >= 0) {
      nfc.assign(reinterpret_cast<char*>(normalized), static_cast<std::size_t>(len));
      std::free(normalized);
    } else {
      nfc.assign(text); // invalid UTF-8: tokenised as raw bytes
    }
    const std::uint32_t match_options = len >= 0 ? PCRE2_NO_UTF_CHECK : 0;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(pattern, nullptr);
    PCRE2_SIZE at = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(nfc.data());
    while (at < nfc.size()) {
      const int rc = pcre2_match(pattern, subject, nfc.size(), at, match_options, md, nullptr);
      if (rc < 0) { // no match (or invalid UTF-8): the rest as one piece
        bpe(std::string_view(nfc).substr(at), out);
        break;
      }
      const auto* ov = pcre2_get_ovector_pointer(md);
      if (ov[0] > at) bpe(std::string_view(nfc).substr(at, ov[0] - at), out); // text the pattern skipped
      if (ov[1] == ov[0]) { // an empty match: step one byte to make progress
        bpe(std::string_view(nfc).substr(ov[0], 1), out);
        at = ov[0] + 1;
        continue;
      }
      bpe(std::string_view(nfc).substr(ov[0], ov[1] - ov[0]), out);
      at = ov[1];
    }
    pcre2_match_data_free(md);
  }
};

qwen_tokenizer::qwen_tokenizer(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
qwen_tokenizer::~qwen_tokenizer() = default;

std::size_t qwen_tokenizer::vocab_size() const { return impl_->vocab.size() + impl_->added.size(); }

std::shared_ptr<const qwen_tokenizer> qwen_tokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read tokenizer file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  auto root = json::parse(ss.str(), ec);
  if (ec || !root.is_object()) throw std::runtime_error(fmt::format("{}: not a JSON tokenizer file", path));
  auto m = std::make_unique<impl>();
  const auto table = byte_of_codepoint();
  try {
    const auto& model = root.at("model").as_object();
    if (model.at("type").as_string() != "BPE") throw std::runtime_error("model.type is not BPE");
    for (const auto& [token, id] : model.at("vocab").as_object())
      m->vocab.emplace(to_bytes(token, table), static_cast<std::int32_t>(id.to_number<std::int64_t>()));
    for (int b = 0; b < 256; ++b) {
      const auto it = m->vocab.find(std::string(1, static_cast<char>(b)));
      if (it == m->vocab.end()) throw std::runtime_error(fmt::format("byte {} has no token", b));
      m->byte_ids[static_cast<std::size_t>(b)] = it->second;
    }
    std::int32_t rank = 0;
    for (const auto& merge : model.at("merges").as_array()) {
      std::string left, right;
      if (merge.is_array()) { // ["a", "b"] (newer files)
        left = to_bytes(merge.as_array().at(0).as_string(), table);
        right = to_bytes(merge.as_array().at(1).as_string(), table);
      } else { // "a b"
        const std::string_view s = merge.as_string();
        const auto space = s.find(' ');
        left = to_bytes(s.substr(0, space), table);
        right = to_bytes(s.substr(space + 1), table);
      }
      const auto l = m->vocab.find(left), r = m->vocab.find(right), both = m->vocab.find(left + right);
      if (l == m->vocab.end() || r == m->vocab.end() || both == m->vocab.end())
        throw std::runtime_error(fmt::format("merge {} refers to tokens outside the vocab", rank));
      m->merges.emplace(std::pair{l->second, r->second}, std::pair{rank++, both->second});
    }
    for (const auto& t : root.at("added_tokens").as_array())
      m->added.emplace_back(std::string(t.at("content").as_string()),
                            static_cast<std::int32_t>(t.at("id").to_number<std::int64_t>()));
    std::sort(m->added.begin(), m->added.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    // The split pattern of the pre-tokenizer (a Sequence whose Split holds the Regex).
    std::string regex;
    const auto& pre = root.at("pre_tokenizer").as_object();
    auto find_regex = [&](const json::object& o) {
      if (o.at("type").as_string() == "Split") regex = o.at("pattern").at("Regex").as_string();
    };
    if (pre.at("type").as_string() == "Sequence")
      for (const auto& p : pre.at("pretokenizers").as_array()) find_regex(p.as_object());
    else
      find_regex(pre);
    if (regex.empty()) throw std::runtime_error("no Split pattern in pre_tokenizer");
    int err = 0;
    PCRE2_SIZE offset = 0;
    m->pattern = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), PCRE2_UTF | PCRE2_UCP, &err,
                               &offset, nullptr);
    if (!m->pattern) throw std::runtime_error(fmt::format("split pattern does not compile (at {})", offset));
    pcre2_jit_compile(m->pattern, PCRE2_JIT_COMPLETE); // optional speed-up; the interpreter is the fallback
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  return std::shared_ptr<const qwen_tokenizer>(new qwen_tokenizer(std::move(m)));
}

std::vector<std::int32_t> qwen_tokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  // Added tokens are atomic: split on the earliest (then longest) occurrence
  // of any. Each token's next position is remembered and searched again only
  // once the cursor has passed it, so the text is scanned once per token.
  const auto& added = impl_->added;
  std::vector<std::size_t> next_at(added.size(), 0);
  std::vector<bool> known(added.size(), false);
  std::size_t cursor = 0;
  while (cursor < text.size()) {
    std::size_t best_at = std::string_view::npos;
    std::size_t best = added.size();
    for (std::size_t i = 0; i < added.size(); ++i) {
      if (!known[i] || (next_at[i] != std::string_view::npos && next_at[i] < cursor)) {
        next_at[i] = text.find(added[i].first, cursor);
        known[i] = true;
      }
      if (next_at[i] < best_at) { // ties: the longer token (added is sorted longest first)
        best_at = next_at[i];
        best = i;
      }
    }
    if (best == added.size()) {
      impl_->encode_plain(text.substr(cursor), out);
      break;
    }
    impl_->encode_plain(text.substr(cursor, best_at - cursor), out);
    out.push_back(added[best].second);
    cursor = best_at + added[best].first.size();
  }
  return out;
}

} // namespace llmgate::tokenize
