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
// The choice: an actor per store life, and counters that only go up within it.
//   - The dot's node is not the node id but an actor drawn at random (64 bits) each time the
//     store opens. A node that restarted, crashed, was restored or wiped is a new life: its dots
//     cannot collide with any the node issued before, whatever it remembers.
//   - Within a life, a key whose stored record already holds dots of this actor continues from
//     the highest (so one key's counters stay contiguous and its context a plain version
//     vector). A key whose stored record holds none of them (a new key, or one whose record was
//     purged) gets a counter above every counter this life has issued on any key, and its
//     context covers every counter of the actor up to it: the only dots of this actor on the key
//     that can exist elsewhere are older, and purged (tombstones past their grace), so claiming
//     to have seen them is true and keeps the context one entry.
//   - A context from a client or a peer naming a counter of this actor that it never issued is
//     refused: it is forged, and would push the counters towards overflow.
// Considered and not chosen: per-node counter leases synced before use (Riak's vnode leases),
// which survive crashes but not a restored or wiped directory unless the peers also remember
// the lease; and a global counter per node without the cover, whose per-key gaps would put every
// dot into the context's cloud.
//
// The cost, and what bounds it: a key's context holds one entry per store life that wrote it.
// Restarts add entries only for the keys written after them, by the restarted node; the bound
// is the number of lives of the coordinators that wrote the key (plus, on decode, the
// kMaxContextDots bound of storage/codec.h).
//
// Thread-safe: writes to different keys may ask at once (each key's writes are serialized by
// the store's key locks).
#pragma once

#include <atomic>
#include <cstdint>

#include "storage/causal.h"
#include "storage/status.h"

namespace kv::storage {

class DotIssuer {
 public:
  // `actor`: nonzero and never used by any store before (LocalStore draws it at random).
  explicit DotIssuer(NodeId actor);

  NodeId actor() const { return actor_; }

  // The dot for a write on a key whose stored context is `stored`, carrying the writer's
  // context `seen`. InvalidArgument if either names a counter of this actor it never issued.
  Result<Dot> Next(const CausalContext& stored, const CausalContext& seen);

  // The highest counter issued so far (0: none).
  std::uint64_t high() const { return high_.load(); }

 private:
  const NodeId actor_;
  std::atomic<std::uint64_t> high_{0};
};

}  // namespace kv::storage
