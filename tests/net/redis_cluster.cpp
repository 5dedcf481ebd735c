#include "redis_cluster.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace llmgate::testing {

namespace {

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 4096> buf{};
  while (const auto n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

} // namespace

redis_cluster::redis_cluster() {
  for (int i = 0; i < 3; ++i) {
    char tmpl[] = "/tmp/llmgate-cluster-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dirs_.emplace_back(tmpl);
    nodes_.push_back(std::make_unique<redis_server>(
        std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir",
                                 dirs_.back(), "--cluster-node-timeout", "2000"}));
  }
  std::string create = "redis-cli --cluster create";
  for (const auto port : ports()) create += " 127.0.0.1:" + std::to_string(port);
  create += " --cluster-replicas 0 --cluster-yes 2>&1";
  const auto out = run_command(create);
  if (out.find("All 16384 slots covered") == std::string::npos)
    throw std::runtime_error("redis-cli --cluster create failed: " + out);
  settle();
}

redis_cluster::~redis_cluster() {
  nodes_.clear(); // stops them (SIGTERM, then SIGKILL), by PID
  for (const auto& d : dirs_) {
    std::error_code ignored;
    std::filesystem::remove_all(d, ignored);
  }
}

std::vector<std::uint16_t> redis_cluster::ports() const {
  std::vector<std::uint16_t> out;
  for (const auto& n : nodes_) out.push_back(n->port());
  return out;
}

std::string redis_cluster::cli(std::uint16_t port, const std::string& args) {
  return run_command("redis-cli -p " + std::to_string(port) + " " + args + " 2>&1");
}

std::uint16_t redis_cluster::owner(int slot) const {
  // CLUSTER SLOTS in redis-cli's raw form, one value per line: first, last, then the master's host, port, id...
  const auto raw = cli(ports().front(), "--raw CLUSTER SLOTS");
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at <= raw.size()) {
    const auto nl = raw.find('\n', at);
    lines.push_back(raw.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  auto number = [](const std::string& l) {
    return !l.empty() && l.find_first_not_of("0123456789") == std::string::npos;
  };
  for (std::size_t i = 0; i + 3 < lines.size(); ++i) // first, last, then the master's host and port
    if (number(lines[i]) && number(lines[i + 1]) && lines[i + 2] == "127.0.0.1" && number(lines[i + 3]) &&
        std::stoi(lines[i]) <= slot && slot <= std::stoi(lines[i + 1]))
      return static_cast<std::uint16_t>(std::stoi(lines[i + 3]));
  throw std::runtime_error("no owner for slot " + std::to_string(slot) + " in: " + raw);
}

void redis_cluster::settle() const {
  using namespace std::chrono_literals;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < until) {
    bool ok = true;
    std::string first_view;
    for (const auto port : ports()) {
      const auto info = cli(port, "CLUSTER INFO");
      if (info.find("cluster_state:ok") == std::string::npos || info.find("cluster_known_nodes:3") == std::string::npos)
        ok = false;
      // Every node sees the same owners (the id columns aside, CLUSTER SLOTS lists the same lines).
      const auto view = cli(port, "--raw CLUSTER SLOTS");
      if (first_view.empty()) first_view = view;
      if (view != first_view) ok = false;
    }
    if (ok) return;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("the cluster did not settle within 30 s");
}

} // namespace llmgate::testing
