// MovementDriver: the pure state machine of one ring movement, run by the member that drives
// it (membership/topology.h says what the movements are and how every node reads them).
//
// It owns no socket, no clock and no storage. The edge (rpc/movement_runner.h) calls Next()
// with the current view and time, performs the one action it returns, reports the outcome
// (Published, BarrierResult, CopyResult, Saved, Removed) and calls Next() again; a simulation
// can drive it the same way.
//
// Phases:
//   kWaitTurn   join and replace only: wait for a synced view with no other movement (a joiner
//               gossips state joining with no tokens meanwhile, so it is in no ring).
//   kAnnounce   publish the driver's state (joining with tokens, leaving, or removing = D) and
//               wait until the local view shows this node as the movement's driver.
//   kBarrier1   every live member (UP or SUSPECT, not gone) must answer that it sees this
//               movement in its write-both, read-old phase; retried every retry_interval, failed
//               after barrier_timeout naming those that never did. No copy starts before:
//               otherwise a coordinator that has not heard of the movement could acknowledge a
//               write that misses the new replicas.
//   kCopy       every slice that gains replicas (ring/movement.h) is copied to each new replica
//               from every replica that holds it now (the anti-entropy exchange, so a retry or a
//               resumption re-does nothing wrong), one at a time; each success is saved in the
//               checkpoint, so a restarted driver skips it. A copy that fails copy_attempts
//               times fails the movement, naming the sources.
//   kReadsNew   publish reads_new, then the same barrier for that phase.
//   kFinish     replace and removenode remove D; then publish the final state (normal, or
//               removing = 0). A decommission ends here: the edge then leaves (LEFT) and stops.
//   kDone / kFailed.
// A failure, or finding another movement chosen over this one (two joins that raced: the lower
// id wins), withdraws: the driver publishes the state it had before (a joiner drops its tokens
// again, a leaver is normal again), so the ring is as it was; every write during the movement
// went to the replicas before it too, so nothing is lost by going back.
//
// Thread-compatible: one owner thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "membership/membership.h"
#include "membership/topology.h"
#include "ring/movement.h"

namespace kv::membership {

// Which (slice, new replica) copies are complete. Persisted by the edge between steps.
struct MovementCheckpoint {
  MovementKind kind = MovementKind::kJoin;
  NodeId subject = 0;
  // (begin, end, target) of each completed copy.
  std::set<std::tuple<std::uint64_t, std::uint64_t, NodeId>> done;
  bool operator==(const MovementCheckpoint&) const = default;
};
std::string EncodeCheckpoint(const MovementCheckpoint& c);
// False for bytes that are not a checkpoint (truncated, trailing bytes, unknown kind).
bool DecodeCheckpoint(std::string_view bytes, MovementCheckpoint* out);

struct MovementProgress {
  std::size_t copies_total = 0, copies_done = 0;  // (slice, new replica) pairs
  std::uint64_t bytes_copied = 0;                  // record bytes moved by this run's copies
  std::string phase;                               // "waiting", "announcing", "copying", ...
  std::string note;                                // why it waits or failed
};

class MovementDriver {
 public:
  struct Options {
    MovementKind kind = MovementKind::kJoin;
    NodeId self = 0;
    NodeId subject = 0;  // replace and removenode: the dead member D; otherwise self
    std::size_t n = 3;   // replicas per key
    std::vector<std::uint64_t> tokens;  // join: the tokens to claim
    Duration retry_interval = std::chrono::seconds(1);
    Duration barrier_timeout = std::chrono::seconds(60);
    int copy_attempts = 5;
  };

  struct Action {
    enum class Type {
      kWait,      // nothing to do before `wake` (or a new view)
      kPublish,   // apply `change` to this node's application state, then Published()
      kBarrier,   // ask each of `members` what movement it sees, then BarrierResult()
      kCopy,      // make `target` copy `range` from each of `sources`, then CopyResult()
      kSave,      // persist `checkpoint`, then Saved()
      kRemove,    // remove member `remove` for good, then Removed()
      kDone,      // the movement is complete
      kFailed,    // the movement failed and was withdrawn: `error` says why
    };
    Type type = Type::kWait;
    Time wake{0};
    AppState app;  // kPublish: the whole state to publish (the edge keeps load and address)
    bool reads_new = false;       // kBarrier: the phase each member must report
    std::vector<NodeId> members;  // kBarrier
    ring::TokenRange range;       // kCopy
    NodeId target = 0;            // kCopy
    std::vector<NodeId> sources;  // kCopy
    MovementCheckpoint checkpoint;  // kSave
    NodeId remove = 0;              // kRemove
    std::string error;              // kFailed
  };

  // `resumed`: a checkpoint of the same kind and subject saved by an earlier run (else empty).
  MovementDriver(Options options, MovementCheckpoint resumed);

  // The next action, given the latest view of this node's membership.
  Action Next(const ClusterView& view, Time now);

  void Published();
  // `answers`: what each asked member reported (members that did not answer are left out).
  struct Answer {
    NodeId member = 0;
    std::optional<Movement> sees;
  };
  void BarrierResult(const std::vector<Answer>& answers, Time now);
  void CopyResult(bool ok, const std::string& why, std::uint64_t bytes, Time now);
  void Saved();
  void Removed(bool ok);

  const MovementProgress& progress() const { return progress_; }
  bool finished() const { return phase_ == Phase::kDone || phase_ == Phase::kFailed; }

 private:
  enum class Phase {
    kWaitTurn,
    kAnnounce,
    kBarrier1,
    kCopy,
    kReadsNew,
    kBarrier2,
    kFinish,
    kDone,
    kFailed,
    kWithdraw,
  };
  struct Copy {
    ring::TokenRange range;
    NodeId target;
    std::vector<NodeId> sources;
  };
  // The state this node publishes while driving (`active`) or once withdrawn / finished.
  AppState Driving(const AppState& current, bool reads_new) const;
  AppState Idle(const AppState& current, bool finished) const;
  bool SeesSelf(const ClusterView& view, bool reads_new) const;
  Action Fail(const AppState& current, std::string why);
  void SetPhase(Phase p, Time now);
  std::vector<NodeId> LiveOthers(const ClusterView& view) const;

  const Options options_;
  Phase phase_ = Phase::kWaitTurn;
  Time phase_since_{0};
  Time wake_{0};
  bool awaiting_ = false;  // an action is out and its outcome not reported yet
  std::optional<std::string> conflict_;
  std::vector<Copy> copies_;
  std::size_t next_copy_ = 0;
  int attempts_ = 0;
  std::string last_copy_error_;
  bool saved_pending_ = false;
  bool planned_ = false;
  bool published_ = false;  // the last kPublish was applied
  std::vector<std::uint64_t> tokens_;  // the tokens this movement claims (join, replace)
  std::vector<NodeId> barrier_asked_;
  // Members this node's own view shows driving a movement when the barrier was asked (the
  // winner and the ignored): an answer naming any other driver comes from a view that is behind
  // (or ahead of) this one, and is waited out rather than taken as a conflict.
  std::vector<NodeId> drivers_in_view_;
  bool removed_ = false;
  bool published_final_ = false;
  std::string failure_;
  bool retry_turn_ = false;  // a withdrawn join goes back to waiting for its turn
  MovementCheckpoint checkpoint_;
  MovementProgress progress_;
};

}  // namespace kv::membership
