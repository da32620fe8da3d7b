// Coordinator: runs a client's read or write across the replicas of its key (Dynamo-style).
//
// Rings: membership/topology.h. While a movement runs, a write goes to the replicas of the
// rings before and after it and succeeds only once each set has its consistency; reads (and the
// node that makes a version) use the ring before until the copy is complete, then the ring
// after.
//
// Writes: the replica plan (replica_plan.h) names the live owners and, for DOWN owners, stand-ins
// that hold the write as a hint. One owner makes the new version: this node when it is a live
// owner, otherwise the first live owner, to which the request is forwarded (KvReplica.coordinate)
// so that versions are only made where the key's record is kept. The new record then goes to
// every other target in parallel; the write succeeds once `required` of them (this node
// included) acknowledged, and fails with unavailable or timeout once that can no longer happen.
// Replicas that did not acknowledge in time get a hint kept here (with hinted handoff on).
//
// Reads: every target is asked in parallel; the read answers once `required` replied, with the
// merge of their records. When all have replied (or timed out), replicas that returned less
// than the merge of every reply are sent that merge (read repair).
//
// Hinted handoff: now and then, hints held for members that are UP again are sent to them and
// deleted once acknowledged (and only if unchanged since they were read). Hints held for a
// member that left or was removed go to the keys' current owners instead.
//
// Lives on the RPC thread; every method is called there.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "membership/topology.h"
#include "rpc/cluster_control.h"
#include "rpc/peers.h"
#include "rpc/replica_plan.h"
#include "rpc/storage_pool.h"
#include "rpc/write_batcher.h"
#include "storage/local_store.h"

namespace kv::rpc {

struct CoordinatorOptions {
  ReplicationSettings replication;
  kj::Duration request_timeout = 2 * kj::SECONDS;  // each replica call, and a whole request
  kj::Duration handoff_interval = 1 * kj::SECONDS;
  std::size_t handoff_batch = 256;  // hints read and sent at once per target
  // A hint whose first write is older than this is dropped instead of delivered (0: never). kvd
  // sets it to the tombstone grace period: a hint from before a delete must not outlive the
  // tombstone, or it would bring the deleted value back once the tombstone is purged
  // (Cassandra bounds hints by gc_grace_seconds for the same reason). Repair restores what the
  // dropped hint held from the other replicas.
  std::uint64_t hint_ttl_s = 0;
  std::function<std::uint64_t()> clock_s;  // Unix seconds; the system clock when empty
};

struct CoordinatorCounters {
  std::uint64_t forwarded = 0;        // client writes sent on to an owner
  std::uint64_t read_repairs = 0;     // replica records sent by read repair
  std::uint64_t hints_stored = 0;     // hints kept here for replicas that did not acknowledge
  std::uint64_t hints_delivered = 0;  // hints handed off and deleted
  std::uint64_t hints_expired = 0;    // hints dropped undelivered, older than hint_ttl_s
};

class Coordinator final : private kj::TaskSet::ErrorHandler {
 public:
  // Every pointer must outlive the coordinator. Its own reads run on `pool`, hint scans and
  // deletes on `background` (null: inline), its writes through `batcher`.
  Coordinator(storage::LocalStore* store, StoragePool* pool, StoragePool* background,
              WriteBatcher* batcher, ClusterControl* cluster, PeerPool* peers,
              CoordinatorOptions options);
  ~Coordinator();

  struct WriteRequest {
    storage::WriteOp::Kind kind = storage::WriteOp::Kind::kPut;  // kPut, kDelete, kDeleteSeen
    std::string key;
    storage::CausalContext seen;
    std::string value;
    Consistency consistency = Consistency::kDefault;
  };
  struct WriteOutcome {
    Status status;        // NotFound for a delete that found no live value (still written)
    std::string context;  // encoded context after the write, when ok or NotFound
  };
  // `forwarded`: the request came from another node; make the version here whatever the plan.
  kj::Promise<WriteOutcome> Write(WriteRequest request, bool forwarded);

  struct ReadOutcome {
    Status status;
    storage::Record record;  // the merge of the replies that counted
  };
  kj::Promise<ReadOutcome> Read(std::string key, Consistency consistency);

  // Hands off hints every `handoff_interval`, until the promise is dropped.
  kj::Promise<void> RunHandoff();

  const CoordinatorCounters& counters() const { return counters_; }
  const CoordinatorOptions& options() const { return options_; }

 private:
  struct WriteState;
  struct ReadState;
  struct Snapshot {
    std::shared_ptr<const membership::ClusterView> view;
    std::shared_ptr<const membership::Topology> topology;
  };
  Snapshot Current();
  // Reads: the replicas of the ring reads use.
  ReplicaPlan Plan(const Snapshot& s, std::string_view key) const;
  // Writes: those, and while a movement runs, the replicas of the other ring too.
  WritePlan PlanForWrite(const Snapshot& s, std::string_view key) const;
  // The peer's replica interface, or null if the view has no address for it.
  kj::Maybe<wire::KvReplica::Client> Peer(const Snapshot& s, std::uint64_t id);
  kj::Promise<WriteOutcome> Forward(const Snapshot& s, std::uint64_t leader, WriteRequest request);
  // `local_acks`: 1 if this node's own copy already counts toward `required`.
  kj::Promise<WriteOutcome> Replicate(const Snapshot& s, WritePlan plan, Consistency consistency,
                                      std::string key, storage::Record record,
                                      WriteOutcome local);
  // A replica did not acknowledge: keep a hint for the owner it stood for. `sets`: the sets
  // its answer would have counted toward.
  void WriteFailed(WriteState& state, const ReplicaTarget& t, std::uint8_t sets, bool timed_out);
  void KeepHint(std::uint64_t target, const std::string& key, const storage::Record& record);
  void Repair(const Snapshot& s, const ReplicaTarget& t, const std::string& key,
              const storage::Record& merged);
  void DeliverHints();
  kj::Promise<void> DeliverTo(std::uint64_t target, std::string address);
  kj::Promise<void> DeliverTo(std::uint64_t target, std::string address,
                              Result<std::vector<storage::Hint>> hints);
  // Up to handoff_batch hints for `target`, scanned on the storage pool.
  kj::Promise<Result<std::vector<storage::Hint>>> ScanHints(std::uint64_t target);
  // Deletes a delivered (or expired) hint on the storage pool, if it did not grow meanwhile.
  kj::Promise<void> DeleteDelivered(std::uint64_t target, storage::Hint hint, bool expired);
  // Hints held for a node that left or was removed: written to the keys' current owners, then
  // deleted.
  kj::Promise<void> Rehome(std::uint64_t gone);
  kj::Promise<void> Rehome(std::uint64_t gone, Result<std::vector<storage::Hint>> hints);
  void taskFailed(kj::Exception&& exception) override;

  storage::LocalStore* const store_;
  StoragePool* const pool_;
  StoragePool* const background_;
  WriteBatcher* const batcher_;
  ClusterControl* const cluster_;
  PeerPool* const peers_;
  const CoordinatorOptions options_;
  Snapshot cached_;
  CoordinatorCounters counters_;
  std::set<std::uint64_t> delivering_;  // targets with a handoff in progress
  kj::TaskSet tasks_;                   // replica calls that outlive their request; last
};

}  // namespace kv::rpc
