// Causal bookkeeping for versioned records: dots and causal contexts.
//
// A dot (node, counter) names one write: the counter-th write that `node` coordinated for a key.
// A causal context is a set of dots, the writes a reader has seen. It is kept compact as a
// version vector (for each node, every dot 1..n) plus a "cloud" of dots above a gap, the shape
// of dotted version vectors (Preguica et al.) and of delta-CRDT causal contexts.
//
// Invariants, kept by every mutator and checked by the decoder:
//   1. vv_ holds no zero counters.
//   2. Every cloud dot (n, c) has c > vv_[n] + 1: it is neither covered nor adjacent (the set is
//      compacted), so two contexts holding the same dots are equal member for member.
//
// Pure value types; thread-compatible.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <set>

namespace kv::storage {

using NodeId = std::uint64_t;

struct Dot {
  NodeId node = 0;
  std::uint64_t counter = 0;
  auto operator<=>(const Dot&) const = default;
};

class CausalContext {
 public:
  bool Contains(const Dot& dot) const;
  void Add(const Dot& dot);
  // Adds every dot of `dot.node` up to `dot.counter`.
  void CoverUpTo(const Dot& dot);
  void Join(const CausalContext& other);
  // The highest counter of `node` this context holds, 0 if none.
  std::uint64_t MaxCounter(NodeId node) const;
  bool empty() const { return vv_.empty() && cloud_.empty(); }
  // Whether every dot of `other` is in this context.
  bool Includes(const CausalContext& other) const;

  const std::map<NodeId, std::uint64_t>& vv() const { return vv_; }
  const std::set<Dot>& cloud() const { return cloud_; }

  // For the decoder: builds a context from parts that must already satisfy the invariants.
  // Returns false (and leaves *out untouched) if they do not.
  static bool FromParts(std::map<NodeId, std::uint64_t> vv, std::set<Dot> cloud,
                        CausalContext* out);

  bool operator==(const CausalContext&) const = default;

 private:
  void Compact(NodeId node);
  std::uint64_t MaxContiguous(NodeId node) const;  // vv_[node], 0 if absent

  std::map<NodeId, std::uint64_t> vv_;  // node -> n: dots (node, 1..n) are all present
  std::set<Dot> cloud_;                 // present dots not covered by vv_
};

}  // namespace kv::storage
