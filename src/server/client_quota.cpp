#include "server/client_quota.hpp"

namespace llmgate::server {

bool client_quota::take(const std::string& address) {
  if (cap_ == 0) return true;
  std::lock_guard lock(mutex_);
  auto& n = open_[address];
  if (n >= cap_) return false; // n > 0 here, so the entry was already there
  ++n;
  return true;
}

void client_quota::give_back(const std::string& address) {
  if (cap_ == 0) return;
  std::lock_guard lock(mutex_);
  if (const auto it = open_.find(address); it != open_.end() && --it->second == 0) open_.erase(it);
}

std::size_t client_quota::tracked() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

} // namespace llmgate::server
