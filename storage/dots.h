// DotIssuer: the dots this store gives the writes it coordinates, such that no dot is ever
// issued twice, whatever the node forgets.
//
// A dot names one write (storage/causal.h), and Record::Merge takes two siblings with the same
// dot for the same write. A node that issues a dot a second time for another value therefore
// loses one of the two writes, or leaves replicas that never agree (Riak's KV679). Counting per
// key from the local record's highest counter, as a plain version vector does, reissues a dot
// whenever the local record is behind what another replica holds:
//   - a crash or power loss dropped acknowledged writes that were not yet synced;
//   - a tombstone purge removed the record here while a replica that missed the purge keeps the
//     tombstone and its context;
//   - the data directory was restored from an older copy, or wiped and the node restarted.
//
// The choice: actors per store life, and a fresh actor wherever the record may be behind.
//   - The dot's node is an actor, not the node id: 40 bits of life, drawn at random each time
//     the store opens, and 24 bits of epoch, counted within the life. A node that restarted,
//     crashed, was restored or wiped is a new life: its dots cannot collide with any it issued
//     before, whatever it remembers.
//   - A write on a key whose stored record holds dots of an actor of this life continues that
//     actor (the one of the highest epoch) from its highest counter: within a life every dot
//     this store issued on the key is in its record, unless the record went away (a purge, a
//     cleanup) and then it holds none of this life's actors.
//   - Any other write (a new key, a purged or cleaned-up one, one first written in an earlier
//     life) takes the next epoch: a new actor, counting from 1. Nothing is claimed about dots
//     the record does not hold, so no write this store forgot can be hidden. A writer's context
//     naming more of the actor than the record holds (a purge in between) also takes a new epoch.
//   - A context naming an epoch of this life not issued yet is refused: it is forged.
//   When the 24 bits of epoch run out, the store draws a new life.
// Considered and not chosen: per-node counter leases synced before use (Riak's vnode leases),
// which survive crashes but not a restored or wiped directory unless the peers also remember
// the lease; and one counter per node for all keys, whose per-key gaps would put every dot into
// the context's cloud.
//
// The cost, and what bounds it: a key's context holds one entry per actor that wrote it, that is
// per store life (and per purge or cleanup of the key) of each node that coordinated writes on
// it. Restarts add entries only to the keys written after them, by the restarted node. On
// decode, kMaxContextDots (storage/codec.h) bounds a context.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "storage/causal.h"
#include "storage/status.h"

namespace kv::storage {

class DotIssuer {
 public:
  static constexpr int kEpochBits = 24;

  // `random` draws the lives (any 64-bit value; called now and when a life's epochs run out).
  explicit DotIssuer(std::function<std::uint64_t()> random);

  // The dot for a write on a key whose stored context is `stored`, carrying the writer's
  // context `seen`. InvalidArgument if `seen` names an epoch of this life not issued yet.
  Result<Dot> Next(const CausalContext& stored, const CausalContext& seen);

  std::uint64_t life() const;
  static std::uint64_t LifeOf(NodeId actor) { return actor >> kEpochBits; }

 private:
  NodeId NewEpochLocked();

  mutable std::mutex mu_;
  std::function<std::uint64_t()> random_;
  std::uint64_t life_ = 0;   // 40 bits, nonzero
  std::uint64_t epoch_ = 0;  // the last epoch issued in this life (0: none)
};

}  // namespace kv::storage
