// The ring: which physical nodes hold a key.
//
// Each node owns a few virtual nodes (vnodes), one per token it claims. A key belongs to the
// first vnode clockwise from its token: the vnode whose token is the smallest one >= TokenOf(key),
// wrapping past the top of the space to the smallest token. Its preference list continues the
// walk clockwise and collects distinct physical nodes. When nodes are on more than one rack, the
// walk is rack-aware in the way of Cassandra's NetworkTopologyStrategy: a node on a rack that the
// list already uses is skipped until every rack is used, and the skipped nodes then come first,
// in ring order, followed by the rest of the walk. The list therefore starts with the first node
// of each rack met on the walk (in walk order) and goes on with the other nodes in walk order.
// A node with an empty rack is on the rack named "". When no node names a rack, all are on that
// one rack and the list is plain clockwise order.
//
// Ownership: vnode i owns the tokens after the previous vnode's token, up to and including its
// own. The first node of a token's preference list (its primary) is always the owner of that
// vnode, racks or not.
//
// Invariants of a built Ring:
//   1. nodes() is sorted by id, ids are unique, and every node has at least one token.
//   2. Every node's tokens are sorted and distinct, and no token belongs to two nodes: the
//      vnodes of the ring are exactly the union of all nodes' tokens.
//   3. A preference list holds distinct node ids, and holds min(n, size()) of them.
//
// A Ring is an immutable snapshot, shared as shared_ptr<const Ring>: membership changes build a
// new one. Every method is const and safe to call from any number of threads at once.
// Pure: no I/O, no clock, no global random.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ring/token.h"

namespace kv::ring {

using NodeId = std::uint64_t;

struct RingNode {
  NodeId id = 0;
  std::vector<Token> tokens;  // in any order on input to Ring::Build
  std::string rack;           // "" when the node names no rack
};

// How many vnodes a new node claims unless configured otherwise.
//
// Measured with `ring_balance 200` (tests/bench/ring_balance.cc): 200 rings per cell, each node
// with ChooseTokens(vnodes, its own seed). Mean over the rings of the largest primary ownership
// share divided by the mean share 1/N, and in brackets the worst ring:
//
//   vnodes     3 nodes        10 nodes       20 nodes       50 nodes       100 nodes
//       16  1.207 (1.62)   1.436 (1.90)   1.546 (2.21)   1.655 (2.21)   1.751 (2.25)
//       32  1.157 (1.57)   1.287 (1.65)   1.349 (1.67)   1.450 (1.90)   1.515 (1.94)
//       64  1.108 (1.33)   1.199 (1.49)   1.246 (1.43)   1.304 (1.54)   1.349 (1.56)
//      128  1.077 (1.30)   1.131 (1.33)   1.174 (1.36)   1.216 (1.34)   1.237 (1.41)
//      256  1.052 (1.14)   1.098 (1.20)   1.117 (1.23)   1.148 (1.26)   1.165 (1.26)
//
// 128 is the smallest measured count that keeps the most loaded node under 1.25x the mean from 3 to
// 100 nodes (64 passes 1.3x from 50 nodes up). Random tokens improve only as 1/sqrt(vnodes): 256
// gains 0.07 at 100 nodes for twice the tokens and twice the build time. With 3 replicas the
// spread is smaller still (1.13x at 100 nodes). 128 tokens are 1 KiB of gossiped state per
// node, within membership's 1400-byte datagram; 256 tokens (2 KiB) would not be.
inline constexpr std::size_t kDefaultVnodes = 128;

class Ring {
 public:
  // A slice of the token space and the nodes that replicate it, primary first.
  struct Range {
    TokenRange range;
    std::vector<NodeId> replicas;
  };

  // Builds a snapshot. Nodes without tokens are ignored. A token claimed by several nodes goes
  // to the one with the lowest id, whatever the input order; a node left with no token is
  // ignored too. Duplicate tokens of one node count once.
  // REQUIRES: node ids are unique (membership views are keyed by id). Aborts otherwise.
  static std::shared_ptr<const Ring> Build(std::vector<RingNode> nodes);

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // The nodes that hold `key`, primary first: PreferenceListForToken(TokenOf(key), n).
  std::vector<NodeId> PreferenceList(std::string_view key, std::size_t n) const;

  // The first min(n, size()) distinct nodes of the (rack-aware) clockwise walk that starts at the
  // first vnode whose token is >= t. Empty if the ring is empty or n == 0.
  std::vector<NodeId> PreferenceListForToken(Token t, std::size_t n) const;

  // The fraction of the 2^64 tokens whose primary is `id`; 0 for a node not in the ring.
  // Shares of all nodes sum to 1 (up to rounding) on a non-empty ring.
  double OwnershipShare(NodeId id) const;

  // One range per vnode, (previous vnode's token, this vnode's token], with its n replicas,
  // sorted by token. The range that wraps past the top of the space is split at 0 into
  // [0, first token + 1) at the front and [last token + 1, 0) at the back (end 0 meaning "to the
  // top", see TokenRange); an empty piece is left out. A ring of one vnode at the top token is
  // one range {0, 0}, the whole ring. The ranges cover every token exactly once, and every
  // token t of a range has PreferenceListForToken(t, n) == replicas. Empty for an empty ring.
  std::vector<Range> Ranges(std::size_t n) const;

  // The nodes in the ring, sorted by id, each with the tokens it owns (invariants 1 and 2):
  // tokens lost to a lower id are not listed.
  const std::vector<RingNode>& nodes() const { return nodes_; }

  // Number of physical nodes.
  std::size_t size() const { return nodes_.size(); }

 private:
  Ring() = default;

  // Appends to `out` the indexes into nodes_ of the preference list for the walk that starts
  // at vnode `start`.
  void Walk(std::size_t start, std::size_t n, std::vector<std::uint32_t>* out) const;
  std::vector<NodeId> Ids(const std::vector<std::uint32_t>& indexes) const;

  std::vector<RingNode> nodes_;
  // The vnodes, sorted by token: vnode_tokens_[i] belongs to nodes_[vnode_owners_[i]].
  std::vector<Token> vnode_tokens_;
  std::vector<std::uint32_t> vnode_owners_;
  // nodes_[i] is on rack node_racks_[i], an index into the sorted distinct rack names;
  // rack_count_ of them.
  std::vector<std::uint32_t> node_racks_;
  std::size_t rack_count_ = 0;
  // shares_[i] is OwnershipShare(nodes_[i].id).
  std::vector<double> shares_;
};

// `vnodes` distinct tokens, sorted, drawn from a splitmix64 sequence started at `seed`. The same
// seed always gives the same tokens, so a node that keeps its seed (or its tokens) keeps its
// place in the ring; give every node a different seed (e.g. from its id and a random value).
std::vector<Token> ChooseTokens(std::size_t vnodes, std::uint64_t seed);

}  // namespace kv::ring
