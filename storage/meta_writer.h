// MetaWriter: writes node metadata (Engine::PutMeta, synced) on a thread of its own, for callers
// that must not wait for an fsync: the gossip thread saving the peers it learned, and the RPC
// thread saving a movement's checkpoint.
//
// Latest value wins: a name written again before its earlier value reached the disk is written
// once, with the newer value. Values of one name reach the disk in the order given. What a
// crash loses is the last values not yet written, which callers must tolerate (saved peers are
// a starting point that gossip corrects; a lost checkpoint re-copies ranges). Flush() waits
// until everything given so far is written.
//
// Thread-safe. The destructor writes what is pending, then joins the thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "storage/engine.h"

namespace kv::storage {

class MetaWriter {
 public:
  // `engine` must outlive the writer. `on_error(name, status)` is called on the writer's thread
  // when a write fails (the value is dropped); may be null.
  MetaWriter(Engine* engine, std::function<void(const std::string&, const Status&)> on_error);
  ~MetaWriter();

  void Put(const std::string& name, std::string value);
  // Blocks until every value given before the call is written (or failed).
  void Flush();
  std::uint64_t written() const;

 private:
  void Loop();

  Engine* const engine_;
  const std::function<void(const std::string&, const Status&)> on_error_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::map<std::string, std::string> pending_;  // guarded by mu_
  std::uint64_t given_ = 0, done_ = 0;          // guarded by mu_: Put calls, and those written
  std::uint64_t written_ = 0;                   // guarded by mu_
  bool stop_ = false;                           // guarded by mu_
  std::thread thread_;
};

}  // namespace kv::storage
