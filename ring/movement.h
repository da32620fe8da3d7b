// Range movements: which token ranges change hands when the ring changes, who must receive
// them and who holds them now.
//
// A movement (a join, a decommission, a replace or a removal, see membership/topology.h) turns
// the ring `before` into the ring `after`. A slice of the token space moves when its replica set
// in `after` holds nodes that its set in `before` does not: those nodes (the targets) must copy
// the slice from the replicas that hold it in `before` (the sources) before reads may use them.
//
// Pure: no I/O, no clock. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ring/ring.h"

namespace kv::ring {

struct RangeMove {
  TokenRange range;               // never wraps; end 0 means the top of the space
  std::vector<NodeId> targets;    // in `after` but not in `before`, sorted by id
  std::vector<NodeId> sources;    // the replicas in `before`, in preference order
  bool operator==(const RangeMove&) const = default;
};

// Every slice whose replica set gains nodes from `before` to `after` (n replicas each), sorted
// by token, with neighbouring slices of equal targets and sources joined. Empty when the two
// rings place every token on the same nodes. Either ring may be empty (no sources, or no
// targets).
std::vector<RangeMove> PlanMoves(const Ring& before, const Ring& after, std::size_t n);

// The slices of the token space whose replica set in `ring` (n replicas) holds `node`, sorted
// by token, neighbours joined. Cleanup keeps these and deletes the rest.
std::vector<TokenRange> RangesOf(const Ring& ring, NodeId node, std::size_t n);

}  // namespace kv::ring
