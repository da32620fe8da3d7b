// RepairRunner: anti-entropy of every range this node replicates, against each of the range's
// other replicas, one exchange at a time (repair/exchange.h over rpc/repair_service.h).
//
// For each peer, the ranges this node and the peer both replicate are joined where contiguous
// (with N=3 on three nodes, the whole ring is one range per peer). Peers the failure detector
// reports DOWN, and exchanges that fail, are skipped and named in the summary; the rest go on.
// A byte rate limit paces the exchanges' steps (rpc/pacer.h). Lives on the RPC thread.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "repair/store_reader.h"
#include "rpc/cluster_control.h"
#include "rpc/pacer.h"
#include "rpc/peers.h"
#include "rpc/storage_pool.h"

namespace kv::rpc {

struct PeerTraffic {
  std::uint64_t keys_sent = 0, keys_received = 0;    // records pushed / pulled
  std::uint64_t bytes_sent = 0, bytes_received = 0;  // encoded record bytes
};

struct RepairProgress {
  std::size_t ranges_total = 0, ranges_done = 0;
  std::uint64_t keys_moved = 0, bytes_moved = 0;
  double elapsed_s = 0;
};

struct RepairSummary {
  Status status;  // ok when every range was compared; unavailable naming what was skipped
  bool dry_run = false;
  std::size_t ranges_total = 0, ranges_compared = 0;
  std::vector<std::string> skipped;  // "[begin, end) with PEER: why"
  std::uint64_t nodes_exchanged = 0, leaves_differing = 0, keys_differing = 0;
  std::uint64_t bytes_on_wire = 0;
  std::uint64_t tombstones_purged = 0;  // here; each peer purges the same keys
  // Per peer, in the order first met. (A vector: GCC 12 misreads a std::map carried in a
  // kj::Promise as uninitialised.)
  std::vector<std::pair<std::uint64_t, PeerTraffic>> peers;
  double elapsed_s = 0;
  double finished_at = 0;  // seconds since the Unix epoch

  PeerTraffic& Traffic(std::uint64_t peer) {
    for (auto& [id, t] : peers) {
      if (id == peer) return t;
    }
    return peers.emplace_back(peer, PeerTraffic()).second;
  }
};

// One anti-entropy exchange of `range` (not wrapping) between this node (the initiator) and
// `peer` at `address`: each side ends holding what either held. Every request is bounded by
// `timeout`; `bytes_on_wire` accumulates the messages' sizes. The status says why it failed
// (the peer's answer, or "peer unreachable: ..."). `copy`: this node is a new replica of the
// range and copies it rather than compares trees (repair::Initiator::PreferCopy).
struct RangeExchange {
  Status status;
  repair::ExchangeStats stats;
};
// The exchange's steps run on `pool` (null: inline).
kj::Promise<RangeExchange> ExchangeRange(StoragePool* pool, repair::RangeReader* reader,
                                         PeerPool* peers,
                                         int tree_bits, std::uint64_t peer,
                                         const std::string& address, ring::TokenRange range,
                                         bool dry_run, kj::Duration timeout,
                                         std::uint64_t* bytes_on_wire, bool copy = false,
                                         Pacer* pacer = nullptr);

class RepairRunner {
 public:
  struct Options {
    int tree_bits = 16;
    int n = 3;
    kj::Duration timeout = 10 * kj::SECONDS;  // each request of an exchange
    std::uint64_t rate_bytes_per_s = 0;        // 0: unlimited; paced per step (rpc/pacer.h)
    // Tombstones older than this are purged after a run that confirmed every range with every
    // other replica (none skipped); 0: never.
    std::uint64_t tombstone_grace_s = 10 * 86400;
    std::function<std::uint64_t()> clock;  // seconds since the epoch; the wall clock if unset
  };
  // Every pointer must outlive the runner; `reader` is used on `pool`'s threads only (null
  // pool: inline).
  RepairRunner(StoragePool* pool, repair::RangeReader* reader, std::uint64_t self,
               ClusterControl* cluster, PeerPool* peers, Options options);

  // Runs a full repair. REQUIRES: !running() (one repair at a time per node).
  kj::Promise<RepairSummary> Run(bool dry_run);
  bool running() const { return running_; }
  const RepairProgress& progress() const { return progress_; }
  // The last completed run (finished_at 0 if none).
  const RepairSummary& last() const { return last_; }
  // Since start, over every completed run that moved data (dry runs excluded): runs by outcome
  // and what moved with each peer.
  struct Totals {
    std::uint64_t runs_ok = 0, runs_incomplete = 0;
    std::uint64_t tombstones_purged = 0;
    std::vector<std::pair<std::uint64_t, PeerTraffic>> peers;
  };
  const Totals& totals() const { return totals_; }

 private:
  struct Item {
    std::uint64_t peer;
    ring::TokenRange range;
  };
  std::vector<Item> Plan();
  // Tombstone GC over every item once the run confirmed them all.
  kj::Promise<void> Purge(std::shared_ptr<std::vector<Item>> items, std::size_t next,
                          std::shared_ptr<RepairSummary> summary, std::uint64_t cutoff);
  kj::Promise<void> RunItems(std::shared_ptr<std::vector<Item>> items, std::size_t next,
                             std::shared_ptr<RepairSummary> summary,
                             std::chrono::steady_clock::time_point start);

  StoragePool* const pool_;
  repair::RangeReader* const reader_;
  const std::uint64_t self_;
  ClusterControl* const cluster_;
  PeerPool* const peers_;
  const Options options_;
  Pacer pacer_;  // options_.rate_bytes_per_s, step by step
  bool running_ = false;
  RepairProgress progress_;
  RepairSummary last_;
  Totals totals_;
};

}  // namespace kv::rpc
