#include "redis_server.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstring>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace llmgate::testing {

namespace {

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

} // namespace

redis_server::redis_server(std::vector<std::string> extra_args, std::string config_file)
    : args_(std::move(extra_args)), config_file_(std::move(config_file)) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_port();
    spawn();
    for (int i = 0; i < 200 && !answers(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (answers()) return;
    kill(); // the port was taken meanwhile: another one
  }
  throw std::runtime_error("redis-server did not start (is it installed? make deps installs it)");
}

redis_server::~redis_server() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill();
}

void redis_server::spawn() {
  std::vector<std::string> argv{"redis-server"};
  if (!config_file_.empty()) argv.push_back(config_file_); // first, as redis-server wants it
  for (const char* a : {"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel",
                        "warning", "--port"})
    argv.emplace_back(a);
  argv.push_back(std::to_string(port_));
  argv.insert(argv.end(), args_.begin(), args_.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execvp("redis-server", raw.data());
    ::_exit(127);
  }
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

bool redis_server::answers() const {
  if (pid_ <= 0 || ::waitpid(pid_, nullptr, WNOHANG) == pid_) return false;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port_);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (ok) { // a PING answered: started, and not just the port open
    const char ping[] = "PING\r\n";
    char buf[16] = {};
    ok = ::send(fd, ping, sizeof ping - 1, 0) == static_cast<ssize_t>(sizeof ping - 1) && ::recv(fd, buf, 7, 0) > 0 &&
         (buf[0] == '+' || std::strncmp(buf, "-NOAUTH", 7) == 0); // PONG, or alive behind requirepass
  }
  ::close(fd);
  return ok;
}

void redis_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void redis_server::restart() {
  kill();
  spawn();
  for (int i = 0; i < 500 && !answers(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!answers()) throw std::runtime_error("redis-server did not restart");
}

} // namespace llmgate::testing
