#include "tests/integration/process.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <filesystem>
#include <regex>
#include <stdexcept>

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> v;
  for (const auto& a : args) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

// Reads what is available from `fd` into `out`; returns false at EOF.
bool ReadSome(int fd, std::string* out) {
  char buf[65536];
  const ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    out->append(buf, n);
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  return false;
}

pid_t Spawn(const std::vector<std::string>& argv, int* in_fd, int* out_fd, int* err_fd) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    throw std::runtime_error("pipe failed");
  }
  auto args = Argv(argv);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(args[0], args.data());  // a bare name is looked up in PATH
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  *in_fd = in[1];
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

}  // namespace

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kv_it_XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

RunResult Run(const std::vector<std::string>& argv, const std::string& input,
              std::chrono::milliseconds timeout) {
  signal(SIGPIPE, SIG_IGN);
  int in_fd, out_fd, err_fd;
  const pid_t pid = Spawn(argv, &in_fd, &out_fd, &err_fd);
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  RunResult r;
  std::size_t written = 0;
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  const auto deadline = Clock::now() + timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out_fd, POLLIN, 0};
    if (err_open) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    poll(fds, n, static_cast<int>(std::min<long>(left.count(), 1000)));
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == out_fd && !ReadSome(out_fd, &r.out)) out_open = false;
      if (fds[i].fd == err_fd && !ReadSome(err_fd, &r.err)) err_open = false;
      if (fds[i].fd == in_fd) {
        const ssize_t w = write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += w;
        if (w < 0 && errno != EAGAIN) written = input.size();
        if (written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  close(out_fd);
  close(err_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

RunResult Kvtool(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv = {KV_KVTOOL_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, input);
}

Kvd::Kvd(std::string data_dir, std::vector<std::string> extra_flags, std::string ip)
    : data_dir_(std::move(data_dir)), extra_(std::move(extra_flags)), ip_(std::move(ip)) {}

void Kvd::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

Kvd::~Kvd() {
  if (pid_ > 0) Stop(SIGKILL);
  // A sanitizer report makes the node exit (TSan and ASan halt on error), and the test then
  // sees only a dead peer: fail here with the report, so the failure names its cause.
  for (const char* mark : {"ThreadSanitizer", "AddressSanitizer", "LeakSanitizer", "runtime error:"}) {
    if (err_.find(mark) == std::string::npos) continue;
    ADD_FAILURE() << "kvd " << node_id_ << " (" << data_dir_ << ") reported " << mark
                  << ":\n" << err_;
    break;
  }
}

bool Kvd::Start(std::chrono::milliseconds deadline_in) {
  std::vector<std::string> argv = {KV_KVD_PATH, "--data-dir", data_dir_, "--listen", ip_ + ":0"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  int in_fd;
  out_.clear();
  pid_ = Spawn(argv, &in_fd, &out_fd_, &err_fd_);
  close(in_fd);
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  static const std::regex ready(
      "node ([0-9a-f]+) generation ([0-9]+) listening on ([0-9.]+):([0-9]+)( gossip on "
      "([0-9.]+:[0-9]+))?\n");
  const auto deadline = Clock::now() + deadline_in;
  while (Clock::now() < deadline) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    poll(fds, 2, 100);
    Drain(false);
    std::smatch m;
    if (std::regex_search(out_, m, ready)) {
      node_id_ = m[1];
      generation_ = std::stoull(m[2]);
      port_ = std::stoi(m[4]);
      address_ = std::string(m[3]) + ":" + std::string(m[4]);
      gossip_ = m[6];
      return true;
    }
    if (!Alive()) return false;
  }
  return false;
}

void Kvd::Drain(bool block) {
  for (int fd : {out_fd_, err_fd_}) {
    if (fd < 0) continue;
    if (block) fcntl(fd, F_SETFL, 0);
    std::string* dst = fd == out_fd_ ? &out_ : &err_;
    while (true) {
      char buf[4096];
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        dst->append(buf, n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
  }
}

bool Kvd::Alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    Drain(true);  // keep everything it said before it died
    close(out_fd_);
    close(err_fd_);
    out_fd_ = err_fd_ = -1;
    return false;
  }
  return true;
}

int Kvd::Stop(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  // A clean stop must come in time; past the deadline the process is killed and the stop
  // reported as signalled.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  bool exited = false;
  while (Clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited = true;
      break;
    }
    pollfd none[1] = {{-1, 0, 0}};
    poll(none, 0, 10);
    Drain(false);
  }
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    status = SIGKILL;  // reported as signalled below
  }
  pid_ = -1;
  Drain(true);
  close(out_fd_);
  close(err_fd_);
  out_fd_ = err_fd_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool Eventually(const std::function<bool()>& pred, std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval, not a wait
  }
  return pred();
}

bool WaitSettled(const std::vector<std::string>& hosts, std::size_t members,
                 std::chrono::seconds deadline, const std::vector<std::string>& kvtool_flags) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    bool all = true;
    for (const std::string& host : hosts) {
      std::vector<std::string> args = kvtool_flags;
      args.insert(args.end(), {"--host", host, "--timeout-ms", "2000", "--json", "status"});
      auto r = Kvtool(args);
      if (r.exit_code != 0) {
        all = false;
        break;
      }
      const auto j = nlohmann::json::parse(r.out, nullptr, false);
      if (j.is_discarded() || !j["movement"].is_null()) {
        all = false;
        break;
      }
      std::size_t normal = 0;
      for (const auto& m : j["nodes"]) {
        normal += m["status"] == "UP" && m["state"] == "normal";
      }
      if (normal < members) {
        all = false;
        break;
      }
    }
    if (all) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
  }
}

std::string WriteFile(const std::string& dir, const std::string& name, const std::string& text,
                      mode_t mode) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
  return path;
}

std::string NewKey() {
  auto r = Kvtool({"keygen"});
  if (r.exit_code != 0) throw std::runtime_error("kvtool keygen failed: " + r.err);
  return r.out;
}

}  // namespace kv::test
