#include "redis/resp.hpp"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <new>
#include <stdexcept>

namespace llmgate::redis {

namespace {

// hiredis's reader builds each reply through these functions, straight into
// our values: an array's elements are laid out when its header arrives and
// each child fills its own slot (only the root is ever freed by hiredis).
// An array header claims memory before its elements come, so one that
// announces more than k_max_elements is a protocol error instead of an
// allocation of gigabytes (fuzz_resp found `*222222220`: 1.7 GB, then a
// 13-second free). Exceptions never cross the C code: a failure is NULL,
// which hiredis reports as out of memory.
constexpr int k_max_elements = 1 << 20;

struct reader_state {
  long long refused_elements = 0; // the array header refused, for the error message
};

reply* place(const redisReadTask* task, reply::kind k) {
  reply* r = nullptr;
  if (task->parent) {
    auto* parent = static_cast<reply*>(task->parent->obj);
    r = &parent->elements[static_cast<std::size_t>(task->idx)];
  } else {
    r = new (std::nothrow) reply; // the root: taken by decoder::next, or freed by free_reply
    if (!r) return nullptr;
  }
  r->type = k;
  return r;
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) {
  const auto k = task->type == REDIS_REPLY_ERROR    ? reply::kind::error
                 : task->type == REDIS_REPLY_STATUS ? reply::kind::status
                                                    : reply::kind::string;
  auto* r = place(task, k);
  if (!r) return nullptr;
  try {
    r->text.assign(str, len);
  } catch (const std::bad_alloc&) {
    if (!task->parent) delete r;
    return nullptr;
  }
  return r;
}

void* create_array(const redisReadTask* task, int elements) {
  if (elements > k_max_elements) {
    if (task->privdata) static_cast<reader_state*>(task->privdata)->refused_elements = elements;
    return nullptr;
  }
  auto* r = place(task, reply::kind::array);
  if (!r) return nullptr;
  try {
    r->elements.resize(static_cast<std::size_t>(std::max(elements, 0)));
  } catch (const std::bad_alloc&) {
    if (!task->parent) delete r;
    return nullptr;
  }
  return r;
}

void* create_integer(const redisReadTask* task, long long value) {
  auto* r = place(task, reply::kind::integer);
  if (r) r->integer = value;
  return r;
}

void* create_nil(const redisReadTask* task) { return place(task, reply::kind::nil); }

void free_reply(void* root) { delete static_cast<reply*>(root); }

redisReplyObjectFunctions k_builders{create_string, create_array, create_integer, create_nil, free_reply};

} // namespace

void append_command(std::string& out, std::span<const std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* encoded = nullptr;
  const int n = redisFormatCommandArgv(&encoded, static_cast<int>(args.size()), argv.data(), lens.data());
  if (n < 0 || !encoded) throw std::bad_alloc();
  out.append(encoded, static_cast<std::size_t>(n));
  redisFreeCommand(encoded);
}

std::string command(std::initializer_list<std::string_view> args) {
  std::string out;
  append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
  return out;
}

struct decoder::impl {
  reader_state state;
  redisReader* reader = redisReaderCreateWithFunctions(&k_builders);
  ~impl() {
    if (reader) redisReaderFree(reader);
  }
};

decoder::decoder() : impl_(std::make_unique<impl>()) {
  if (!impl_->reader) throw std::bad_alloc();
  impl_->reader->privdata = &impl_->state; // each read task carries it
}

decoder::~decoder() = default;

bool decoder::feed(std::string_view bytes) {
  return redisReaderFeed(impl_->reader, bytes.data(), bytes.size()) == REDIS_OK;
}

std::optional<reply> decoder::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(impl_->reader, &raw) != REDIS_OK) {
    if (const auto n = impl_->state.refused_elements)
      throw std::runtime_error(
          fmt::format("redis protocol error: an array of {} elements (at most {} are read)", n, k_max_elements));
    throw std::runtime_error(std::string("redis protocol error: ") + impl_->reader->errstr);
  }
  if (!raw) return std::nullopt;
  std::unique_ptr<reply> root(static_cast<reply*>(raw));
  return std::move(*root);
}

} // namespace llmgate::redis
