// Test harness for real processes: start kvd on a temporary data directory, run kvtool, send
// signals. Waits poll with deadlines; nothing sleeps for an event.
//
// For integration tests only; single-threaded use per object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kv::test {

// A temporary directory removed with everything under it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;  // -1 if killed by a signal
  std::string out;
  std::string err;
};

// Runs `argv` to completion, feeding `input` on stdin. Kills it after `timeout`.
RunResult Run(const std::vector<std::string>& argv, const std::string& input = "",
              std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Runs kvtool (the binary under test) with `args`.
RunResult Kvtool(const std::vector<std::string>& args, const std::string& input = "");

// Writes `text` to a new file of mode `mode` under `dir`; returns its path.
std::string WriteFile(const std::string& dir, const std::string& name, const std::string& text,
                      mode_t mode = 0600);

// A new gossip key from kvtool keygen.
std::string NewKey();

// Polls `pred` every 50 ms until it holds or `deadline` passes; returns its last value.
bool Eventually(const std::function<bool()>& pred, std::chrono::seconds deadline);

// Polls `kvtool --json status` on each of `hosts` until every one shows at least `members`
// members UP in state normal and no ring movement under way (joins done). False if that does
// not happen within `deadline`.
// `kvtool_flags` go before the command (TLS flags for a cluster that requires them).
bool WaitSettled(const std::vector<std::string>& hosts, std::size_t members,
                 std::chrono::seconds deadline = std::chrono::seconds(60),
                 const std::vector<std::string>& kvtool_flags = {});

// A kvd process. Start() returns once it printed its ready line (or fails the test).
class Kvd {
 public:
  // Listens for clients on `ip`:0. Gossip, if wanted, goes in `extra_flags` (--gossip IP:0).
  explicit Kvd(std::string data_dir, std::vector<std::string> extra_flags = {},
               std::string ip = "127.0.0.1");
  ~Kvd();  // SIGKILLs the process if still running

  // Starts on 127.0.0.1 with a free port (a restart may get another one: read address() again).
  // Returns false if it exited or did not get ready in time.
  bool Start(std::chrono::milliseconds deadline = std::chrono::seconds(30));
  // Sends `sig` and waits for the process to exit; returns its exit code, -1 if signalled.
  int Stop(int sig);
  // True if the process is still running.
  bool Alive();

  const std::string& address() const { return address_; }
  // The gossip address printed at start; empty without --gossip.
  const std::string& gossip_address() const { return gossip_; }
  std::uint64_t generation() const { return generation_; }
  const std::string& node_id() const { return node_id_; }
  pid_t pid() const { return pid_; }
  // Sends a signal without waiting (SIGSTOP, SIGCONT).
  void Signal(int sig);
  int port() const { return port_; }
  // Everything the process wrote on stderr so far (after Stop, all of it): reads what is
  // waiting in the pipe first.
  const std::string& stderr_text() {
    Drain(false);
    return err_;
  }

 private:
  void Drain(bool block);

  std::string data_dir_;
  std::vector<std::string> extra_;
  std::string ip_;
  std::string gossip_;
  std::string node_id_;
  std::uint64_t generation_ = 0;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_, err_;
  std::string address_;
  int port_ = 0;
};

}  // namespace kv::test
