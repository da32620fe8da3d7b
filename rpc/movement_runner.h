// MovementRunner: the edge of ring movements on one node (membership/movement_driver.h is the
// logic, membership/topology.h what every node derives from it).
//
// It runs the driver of the movement this node drives, if any: publishes its state through
// ClusterControl, asks every live member what movement it sees (KvReplica.movement, the
// barrier), makes new replicas copy their ranges (KvReplica.pull, or here), paces the copies to
// `rate_bytes_per_s` (each copy it pulls step by step, rpc/pacer.h; those it drives elsewhere
// range by range, on average), saves the checkpoint through `save`, and removes members. It also serves
// the copies other drivers ask of this node (Pull).
//
// Lives on the RPC thread; every method is called there.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "membership/movement_driver.h"
#include "repair/exchange.h"
#include "rpc/cluster_control.h"
#include "rpc/pacer.h"
#include "rpc/peers.h"
#include "rpc/storage_pool.h"
#include "rpc/repair_runner.h"

namespace kv::rpc {

class MovementRunner final : private kj::TaskSet::ErrorHandler {
 public:
  struct Options {
    int tree_bits = 16;
    std::size_t n = 3;
    kj::Duration timeout = 10 * kj::SECONDS;  // each request of a copy or barrier
    std::uint64_t rate_bytes_per_s = 0;        // copies' pace (0: unlimited)
    kj::Duration poll = 100 * kj::MILLISECONDS;  // how often a waiting driver looks again
  };
  // How a driven movement ended (ok, or why it failed and was withdrawn).
  using Done = std::function<void(membership::MovementKind kind, const Status& status)>;
  // Persists a checkpoint (empty string: clears it).
  using Save = std::function<Status(const std::string& encoded)>;

  // Every pointer must outlive the runner; `reader` is used on `pool`'s threads (null: inline).
  MovementRunner(StoragePool* pool, repair::RangeReader* reader, std::uint64_t self,
                 ClusterControl* cluster, PeerPool* peers, Options options, Save save);
  ~MovementRunner();

  // Starts driving a movement. Unavailable if this node drives one already.
  Status Start(membership::MovementDriver::Options driver, membership::MovementCheckpoint resumed,
               Done done);
  bool driving() const { return driver_ != nullptr; }
  // The progress of the last movement driven here when it ended.
  const membership::MovementProgress& last_progress() const { return last_progress_; }
  // The movement driven here now, else the last one.
  const membership::MovementProgress& progress() const {
    return driver_ != nullptr ? driver_->progress() : last_progress_;
  }
  // The movement this node sees, with the driver's progress when it is this node, and how the
  // last one it drove ended.
  void Describe(wire::MovementInfo::Builder out);

  // Copies `range` here from each of `sources` (KvReplica.pull, and this node's own copies).
  struct Pulled {
    Status status;
    std::uint64_t keys = 0, bytes = 0;
  };
  kj::Promise<Pulled> Pull(ring::TokenRange range, std::vector<std::uint64_t> sources);

 private:
  kj::Promise<void> Step();
  kj::Promise<void> Barrier(const membership::MovementDriver::Action& a);
  kj::Promise<void> Copy(const membership::MovementDriver::Action& a);
  kj::Promise<void> PullFrom(std::shared_ptr<std::vector<std::uint64_t>> sources, std::size_t next,
                             ring::TokenRange range, std::shared_ptr<Pulled> out);
  // The parts of `range` this node gains in the movement its view shows (it is a new replica
  // there); Unavailable if it sees none.
  Status GainedHere(ring::TokenRange range, std::vector<ring::TokenRange>* out);
  membership::Time Now() const;
  void taskFailed(kj::Exception&& exception) override;

  StoragePool* const pool_;
  repair::RangeReader* const reader_;
  const std::uint64_t self_;
  ClusterControl* const cluster_;
  PeerPool* const peers_;
  const Options options_;
  Save save_;
  std::unique_ptr<membership::MovementDriver> driver_;
  membership::MovementKind kind_ = membership::MovementKind::kJoin;
  Done done_;
  std::string outcome_;
  membership::MovementProgress last_progress_;  // of the last movement driven here: "done" or why it failed
  std::uint64_t paced_bytes_ = 0;  // bytes copied since pacing_start_
  kj::TimePoint pacing_start_ = kj::origin<kj::TimePoint>();
  Pacer pacer_;  // the copies this node pulls (Pull), step by step
  kj::TaskSet tasks_;  // last: destroyed first
};

}  // namespace kv::rpc
