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
// A clean stop keeps its life. kvd saves the life and its last epoch at a clean stop, after the
// last write is synced, and the next start offers them back (OfferResume): every dot of that
// life is then in the records, as within one run. The saved life is consumed (overwritten,
// synced) before the store serves, so a crash after that start draws a new life. A directory
// copied while stopped and restored later would offer a life that went on without it: kvd
// confirms the offer only once a peer has answered with the cluster's state and nobody knows a
// later generation of the node (membership's self_restored); alone, after a restore, or if any
// write came first, the fresh life stays.
//
// The cost, and what bounds it: a key's context holds one entry per actor that wrote it, that is
// per life (and per purge or cleanup of the key) of each node that coordinated writes on it.
// Since a clean restart keeps its life, lives end only at crashes (kills, power losses), at
// restores and wipes, and when 2^24 epochs are spent: a key's context grows by at most one
// entry per such event of each node that coordinated writes on it afterwards, not per restart.
// On decode, kMaxContextDots (storage/codec.h) bounds a context. Pruning the entries of ended
// lives once every replica agrees (as tombstones are purged) would bound it for good; it is not
// built.
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

  // The life and the last epoch issued in it: what a clean stop saves.
  struct Saved {
    std::uint64_t life = 0;
    std::uint64_t epoch = 0;
  };
  Saved State() const;
  // Offers the life a clean stop saved. Ignored if invalid (life 0 or over 40 bits, epoch over
  // 24 bits).
  void OfferResume(Saved saved);
  // Takes the offered life, if there is one and no dot was issued since the issuer was made;
  // returns whether it did.
  bool ConfirmResume();

 private:
  NodeId NewEpochLocked();

  mutable std::mutex mu_;
  std::function<std::uint64_t()> random_;
  std::uint64_t life_ = 0;   // 40 bits, nonzero
  std::uint64_t epoch_ = 0;  // the last epoch issued in this life (0: none)
  bool issued_ = false;      // some dot was issued
  Saved offered_;            // life 0: none
};

}  // namespace kv::storage
