#include "ring/ring.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <utility>

namespace kv::ring {
namespace {

constexpr double kTokenSpace = 18446744073709551616.0;  // 2^64

// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014):
// every output is a bijective mix of a counter, so a seed gives a fixed, well-spread sequence.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

}  // namespace

std::shared_ptr<const Ring> Ring::Build(std::vector<RingNode> nodes) {
  std::erase_if(nodes, [](const RingNode& n) { return n.tokens.empty(); });
  std::sort(nodes.begin(), nodes.end(),
            [](const RingNode& a, const RingNode& b) { return a.id < b.id; });
  for (std::size_t i = 1; i < nodes.size(); ++i) {
    // Two entries for one id mean the caller's view is broken; guessing which is right would
    // place data on a ring no other node computes.
    if (nodes[i - 1].id == nodes[i].id) std::abort();
  }

  // Every (token, node index) claim. Sorting by token, then index, puts the lowest id first
  // among the claims on one token because nodes are sorted by id; that claim wins.
  std::vector<std::pair<Token, std::uint32_t>> claims;
  for (std::uint32_t i = 0; i < nodes.size(); ++i) {
    for (Token t : nodes[i].tokens) claims.emplace_back(t, i);
  }
  std::sort(claims.begin(), claims.end());

  std::vector<std::vector<Token>> owned(nodes.size());
  std::vector<std::pair<Token, std::uint32_t>> vnodes;
  for (const auto& c : claims) {
    if (!vnodes.empty() && vnodes.back().first == c.first) continue;
    vnodes.push_back(c);
    owned[c.second].push_back(c.first);  // ascending, as claims are sorted by token
  }

  // Drop the nodes that lost all their tokens and renumber the rest.
  std::shared_ptr<Ring> ring(new Ring());
  std::vector<std::uint32_t> new_index(nodes.size());
  for (std::uint32_t i = 0; i < nodes.size(); ++i) {
    if (owned[i].empty()) continue;
    new_index[i] = static_cast<std::uint32_t>(ring->nodes_.size());
    nodes[i].tokens = std::move(owned[i]);
    ring->nodes_.push_back(std::move(nodes[i]));
  }
  ring->vnode_tokens_.reserve(vnodes.size());
  ring->vnode_owners_.reserve(vnodes.size());
  for (const auto& [token, index] : vnodes) {
    ring->vnode_tokens_.push_back(token);
    ring->vnode_owners_.push_back(new_index[index]);
  }

  std::vector<std::string> racks;
  for (const RingNode& n : ring->nodes_) racks.push_back(n.rack);
  std::sort(racks.begin(), racks.end());
  racks.erase(std::unique(racks.begin(), racks.end()), racks.end());
  ring->rack_count_ = racks.size();
  for (const RingNode& n : ring->nodes_) {
    ring->node_racks_.push_back(static_cast<std::uint32_t>(
        std::lower_bound(racks.begin(), racks.end(), n.rack) - racks.begin()));
  }

  // Vnode i owns (token[i-1], token[i]]: token[i] - token[i-1] tokens, modulo 2^64 for the
  // vnode that wraps. A lone vnode owns all 2^64, which the subtraction gives as 0.
  ring->shares_.assign(ring->nodes_.size(), 0.0);
  const std::size_t v = ring->vnode_tokens_.size();
  for (std::size_t i = 0; i < v; ++i) {
    const Token span = ring->vnode_tokens_[i] - ring->vnode_tokens_[(i + v - 1) % v];
    ring->shares_[ring->vnode_owners_[i]] +=
        (v == 1) ? 1.0 : static_cast<double>(span) / kTokenSpace;
  }
  return ring;
}

void Ring::Walk(std::size_t start, std::size_t n, std::vector<std::uint32_t>* out) const {
  const std::size_t v = vnode_tokens_.size();
  n = std::min(n, nodes_.size());
  std::vector<bool> seen(nodes_.size());
  if (rack_count_ <= 1) {
    for (std::size_t i = 0; i < v && out->size() < n; ++i) {
      const std::uint32_t node = vnode_owners_[(start + i) % v];
      if (seen[node]) continue;
      seen[node] = true;
      out->push_back(node);
    }
    return;
  }
  // Rack-aware. Invariant while racks_used < rack_count_: `out` holds the first node met on
  // each used rack, and `skipped` every other node met so far, in walk order.
  std::vector<bool> rack_used(rack_count_);
  std::size_t racks_used = 0;
  std::vector<std::uint32_t> skipped;
  for (std::size_t i = 0; i < v && out->size() < n; ++i) {
    const std::uint32_t node = vnode_owners_[(start + i) % v];
    if (seen[node]) continue;
    seen[node] = true;
    if (racks_used == rack_count_) {
      out->push_back(node);
      continue;
    }
    const std::uint32_t rack = node_racks_[node];
    if (rack_used[rack]) {
      skipped.push_back(node);
      continue;
    }
    rack_used[rack] = true;
    ++racks_used;
    out->push_back(node);
    if (racks_used == rack_count_) {
      for (std::size_t j = 0; j < skipped.size() && out->size() < n; ++j) {
        out->push_back(skipped[j]);
      }
    }
  }
  // The walk meets every node before it ends, so every rack is used and `skipped` was flushed.
}

std::vector<NodeId> Ring::Ids(const std::vector<std::uint32_t>& indexes) const {
  std::vector<NodeId> ids;
  ids.reserve(indexes.size());
  for (std::uint32_t i : indexes) ids.push_back(nodes_[i].id);
  return ids;
}

std::vector<NodeId> Ring::PreferenceList(std::string_view key, std::size_t n) const {
  return PreferenceListForToken(TokenOf(key), n);
}

std::vector<NodeId> Ring::PreferenceListForToken(Token t, std::size_t n) const {
  if (vnode_tokens_.empty() || n == 0) return {};
  std::size_t start =
      std::lower_bound(vnode_tokens_.begin(), vnode_tokens_.end(), t) - vnode_tokens_.begin();
  if (start == vnode_tokens_.size()) start = 0;  // past the last token: wrap to the first
  std::vector<std::uint32_t> indexes;
  indexes.reserve(std::min(n, nodes_.size()));
  Walk(start, n, &indexes);
  return Ids(indexes);
}

double Ring::OwnershipShare(NodeId id) const {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), id,
                             [](const RingNode& node, NodeId x) { return node.id < x; });
  if (it == nodes_.end() || it->id != id) return 0.0;
  return shares_[it - nodes_.begin()];
}

std::vector<Ring::Range> Ring::Ranges(std::size_t n) const {
  std::vector<Range> ranges;
  const std::size_t v = vnode_tokens_.size();
  if (v == 0) return ranges;
  ranges.reserve(v + 1);
  auto add = [&](Token begin, Token end, std::size_t vnode) {
    std::vector<std::uint32_t> indexes;
    Walk(vnode, n, &indexes);
    ranges.push_back(Range{TokenRange{begin, end}, Ids(indexes)});
  };
  // The front piece of the wrapping range: [0, first + 1). If the first token is the top one
  // (then it is the only one), first + 1 wraps to 0 and {0, 0} is the whole ring, as it must be.
  add(0, vnode_tokens_[0] + 1, 0);
  for (std::size_t i = 1; i < v; ++i) add(vnode_tokens_[i - 1] + 1, vnode_tokens_[i] + 1, i);
  // The back piece, [last + 1, top], owned by vnode 0; empty if the last token is the top one.
  const Token last = vnode_tokens_[v - 1];
  if (last != std::numeric_limits<Token>::max()) add(last + 1, 0, 0);
  return ranges;
}

std::vector<Token> ChooseTokens(std::size_t vnodes, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<Token> tokens;
  tokens.reserve(vnodes);
  // A repeat among a few hundred 64-bit draws is all but impossible, but distinctness is
  // promised, so draw until it holds.
  while (tokens.size() < vnodes) {
    while (tokens.size() < vnodes) tokens.push_back(rng.Next());
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  }
  return tokens;
}

}  // namespace kv::ring
