// Versioned records: what the store keeps under a key.
//
// A record is a set of siblings, each a value or a tombstone named by the dot of the write that
// made it, plus the causal context of everything this replica has seen for the key (the writes
// it holds and the writes they superseded). This is a multi-value register over dotted version
// vectors:
//   - a write carrying the context a reader got supersedes exactly the siblings in that context;
//   - a write without context supersedes nothing, so it becomes one more sibling;
//   - Merge keeps a sibling unless the other side has seen its dot and no longer holds it.
// Merge is commutative, associative and idempotent (tests/unit/record_test.cc checks it over
// random histories against a model), so replication, read repair, hinted handoff and
// anti-entropy can all use it in any order, any number of times. No wall clock decides anything.
//
// Dots are never issued twice (Riak's KV679 is what happens otherwise: a node that forgot a
// counter another replica holds reissues its dot, and merge drops one of the two writes). The
// writer of a dot is not the node but an actor: 40 bits of store life, drawn at random each time
// the store opens, and 24 bits of epoch within the life. A write continues the key's actor of
// the current life when its record holds one, and otherwise takes a new epoch counting from 1,
// so a crash that lost unsynced writes, a tombstone purge a replica missed, or a restored or
// wiped directory can never make it reuse a dot (storage/dots.h has the reasoning and what was
// not chosen). The price: a key's context keeps one entry per actor that wrote it, that is per
// life of each coordinator that wrote the key after a restart, bounded on decode by
// kMaxContextDots (codec.h).
//
// Invariants:
//   1. Every sibling's dot is in context().
//   2. siblings() is sorted by dot, with no two siblings sharing a dot.
//   3. A tombstone's value is empty; only a tombstone has a deleted_at.
//
// Pure value type; thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "storage/causal.h"

namespace kv::storage {

struct Sibling {
  Dot dot;
  bool tombstone = false;
  std::string value;  // empty for a tombstone
  // Tombstones: when the delete was written, in seconds since the Unix epoch by the clock of the
  // node that wrote it (0: unknown). Only tombstone GC reads it; no conflict is decided by it.
  std::uint64_t deleted_at = 0;
  bool operator==(const Sibling&) const = default;
};

class Record {
 public:
  Record() = default;

  const std::vector<Sibling>& siblings() const { return siblings_; }
  const CausalContext& context() const { return context_; }

  // True if no write has reached this record at all.
  bool empty() const { return siblings_.empty() && context_.empty(); }
  // True if some sibling is a value (not a tombstone).
  bool HasLiveValue() const;

  // Applies a write coordinated by `self`: drops the siblings whose dots are in `seen`, adds a
  // sibling with a fresh dot (self, max counter of self seen so far + 1), and joins `seen` and
  // the new dot into the context. A tombstone records `now_s` as its deleted_at. Returns the
  // new dot.
  // REQUIRES: self != 0, and no counter of `self` in context() or `seen` is at its maximum;
  // callers guarantee it by bounding counters in contexts they accept (see codec.h).
  // Only safe where the record holds every dot `self` ever issued on the key: stores write with
  // WriteAs and a DotIssuer (storage/dots.h) instead.
  Dot Write(NodeId self, const CausalContext& seen, bool tombstone, std::string value,
            std::uint64_t now_s = 0);
  // The same with a dot the caller chose (DotIssuer::Next), whose counter is above every counter
  // of its actor in context() and `seen`. The context then covers every counter of the actor up
  // to it (storage/dots.h says why that is true).
  void WriteAs(const Dot& dot, const CausalContext& seen, bool tombstone, std::string value,
               std::uint64_t now_s = 0);
  // True if the record holds siblings and every one is a tombstone written at or before
  // `cutoff_s` (with a known time): what tombstone GC may purge.
  bool OnlyTombstonesBefore(std::uint64_t cutoff_s) const;

  // The join of two replicas' records.
  static Record Merge(const Record& a, const Record& b);

  // For the decoder: builds a record from parts; false if they break an invariant.
  static bool FromParts(CausalContext context, std::vector<Sibling> siblings, Record* out);

  bool operator==(const Record&) const = default;

 private:
  void AddSibling(const Dot& dot, bool tombstone, std::string value, std::uint64_t now_s);

  std::vector<Sibling> siblings_;
  CausalContext context_;
};

}  // namespace kv::storage
