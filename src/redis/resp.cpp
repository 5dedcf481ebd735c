#include "redis/resp.hpp"

#include <cstdlib>
#include <hiredis/hiredis.h>
#include <stdexcept>

namespace llmgate::redis {

namespace {

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
  case REDIS_REPLY_STRING:
    out.type = reply::kind::string;
    out.text.assign(r->str, r->len);
    break;
  case REDIS_REPLY_STATUS:
    out.type = reply::kind::status;
    out.text.assign(r->str, r->len);
    break;
  case REDIS_REPLY_ERROR:
    out.type = reply::kind::error;
    out.text.assign(r->str, r->len);
    break;
  case REDIS_REPLY_INTEGER:
    out.type = reply::kind::integer;
    out.integer = r->integer;
    break;
  case REDIS_REPLY_ARRAY:
    out.type = reply::kind::array;
    out.elements.reserve(r->elements);
    for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
    break;
  default: out.type = reply::kind::nil; break;
  }
  return out;
}

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
  redisReader* reader = redisReaderCreate();
  ~impl() {
    if (reader) redisReaderFree(reader);
  }
};

decoder::decoder() : impl_(std::make_unique<impl>()) {
  if (!impl_->reader) throw std::bad_alloc();
}

decoder::~decoder() = default;

bool decoder::feed(std::string_view bytes) {
  return redisReaderFeed(impl_->reader, bytes.data(), bytes.size()) == REDIS_OK;
}

std::optional<reply> decoder::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(impl_->reader, &raw) != REDIS_OK)
    throw std::runtime_error(std::string("redis protocol error: ") + impl_->reader->errstr);
  if (!raw) return std::nullopt;
  auto* r = static_cast<redisReply*>(raw);
  auto out = convert(r);
  freeReplyObject(r);
  return out;
}

} // namespace llmgate::redis
