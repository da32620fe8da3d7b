// The ring against a brute-force model of placement.
//
// The model knows nothing of the ring's sorted arrays or its walk. For a token t it sorts every
// vnode by its clockwise distance from t ((vnode token - t) mod 2^64, so a vnode on t itself
// comes first), lists the distinct nodes in that order and, when racks are set, moves the first
// node of each rack to the front, keeping order on both sides. Random rings are built with
// shared and edge tokens (0, 2^64 - 1) so that collisions, tokenless nodes and wrap-around are
// common rather than rare.
#include "ring/ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace kv::ring {
namespace {

constexpr Token kTop = std::numeric_limits<Token>::max();

// What the model needs of a ring's input: who owns each token, and each node's rack.
struct Model {
  std::map<Token, NodeId> vnodes;  // token -> lowest id claiming it
  std::map<NodeId, std::string> racks;
  bool rack_aware = false;

  explicit Model(const std::vector<RingNode>& nodes) {
    for (const RingNode& n : nodes) {
      for (Token t : n.tokens) {
        auto [it, fresh] = vnodes.emplace(t, n.id);
        if (!fresh) it->second = std::min(it->second, n.id);
      }
    }
    // Only nodes that kept a token are in the ring.
    for (const auto& [t, id] : vnodes) {
      for (const RingNode& n : nodes) {
        if (n.id == id) racks[id] = n.rack;
      }
    }
    for (const auto& [id, rack] : racks) rack_aware |= !rack.empty();
  }

  std::vector<NodeId> Preference(Token t, std::size_t n) const {
    std::vector<std::pair<Token, NodeId>> order;  // (clockwise distance, node)
    for (const auto& [token, id] : vnodes) order.emplace_back(token - t, id);
    std::sort(order.begin(), order.end());
    std::vector<NodeId> distinct;
    for (const auto& [distance, id] : order) {
      if (std::find(distinct.begin(), distinct.end(), id) == distinct.end()) {
        distinct.push_back(id);
      }
    }
    std::vector<NodeId> list;
    if (rack_aware) {
      std::set<std::string> used;
      std::vector<NodeId> rest;
      for (NodeId id : distinct) {
        if (used.insert(racks.at(id)).second) {
          list.push_back(id);
        } else {
          rest.push_back(id);
        }
      }
      list.insert(list.end(), rest.begin(), rest.end());
    } else {
      list = distinct;
    }
    if (list.size() > n) list.resize(n);
    return list;
  }

  NodeId Primary(Token t) const {
    auto it = vnodes.lower_bound(t);
    return it == vnodes.end() ? vnodes.begin()->second : it->second;
  }
};

// A random ring input: 1..12 nodes with random (possibly equal to others') ids, 0..6 tokens
// each, drawn from fresh random values, a small pool shared by all nodes, and the edges.
std::vector<RingNode> RandomNodes(std::mt19937_64& rng, bool racks) {
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<Token> pool;
  for (int i = 0; i < 6; ++i) pool.push_back(rng());
  pool.push_back(0);
  pool.push_back(kTop);
  const std::vector<std::string> rack_names = {"", "r1", "r2", "r3"};
  const int rack_count = 1 + static_cast<int>(rng() % 4);

  std::set<NodeId> ids;
  const std::size_t count = 1 + rng() % 12;
  while (ids.size() < count) ids.insert(rng() % 40);
  std::vector<RingNode> nodes;
  for (NodeId id : ids) {
    RingNode node{id, {}, ""};
    const int tokens = static_cast<int>(rng() % 7);
    for (int i = 0; i < tokens; ++i) {
      node.tokens.push_back(pick(rng) < 30 ? pool[rng() % pool.size()] : rng());
    }
    if (racks) node.rack = rack_names[rng() % rack_count];
    nodes.push_back(node);
  }
  std::shuffle(nodes.begin(), nodes.end(), rng);
  return nodes;
}

// Tokens worth asking about: random ones, every vnode token and its neighbours, the edges.
std::vector<Token> ProbeTokens(std::mt19937_64& rng, const Model& model) {
  std::vector<Token> probes = {0, 1, kTop - 1, kTop};
  for (int i = 0; i < 20; ++i) probes.push_back(TokenOf("key" + std::to_string(rng())));
  for (const auto& [t, id] : model.vnodes) {
    probes.push_back(t - 1);
    probes.push_back(t);
    probes.push_back(t + 1);
  }
  return probes;
}

std::vector<RingNode> Nodes(std::vector<std::pair<NodeId, std::vector<Token>>> spec) {
  std::vector<RingNode> nodes;
  for (auto& [id, tokens] : spec) nodes.push_back(RingNode{id, tokens, ""});
  return nodes;
}

using Ids = std::vector<NodeId>;

TEST(Ring, EmptyRingPlacesNothing) {
  for (auto nodes : {std::vector<RingNode>{}, Nodes({{1, {}}, {2, {}}})}) {
    auto ring = Ring::Build(nodes);
    EXPECT_EQ(ring->size(), 0u);
    EXPECT_TRUE(ring->nodes().empty());
    EXPECT_TRUE(ring->PreferenceList("k", 3).empty());
    EXPECT_TRUE(ring->Ranges(3).empty());
    EXPECT_EQ(ring->OwnershipShare(1), 0.0);
  }
}

TEST(Ring, WalksClockwiseFromTheFirstTokenAtOrAfterTheKey) {
  auto ring = Ring::Build(Nodes({{3, {300}}, {1, {100, 400}}, {2, {200}}, {4, {}}}));
  EXPECT_EQ(ring->size(), 3u);
  EXPECT_EQ(ring->PreferenceListForToken(100, 3), (Ids{1, 2, 3}));  // on a token: that vnode
  EXPECT_EQ(ring->PreferenceListForToken(101, 3), (Ids{2, 3, 1}));
  EXPECT_EQ(ring->PreferenceListForToken(250, 2), (Ids{3, 1}));
  EXPECT_EQ(ring->PreferenceListForToken(350, 3), (Ids{1, 2, 3}));  // 400 is node 1 again
  EXPECT_EQ(ring->PreferenceListForToken(401, 3), (Ids{1, 2, 3}));  // wraps to 100
  EXPECT_EQ(ring->PreferenceListForToken(kTop, 1), (Ids{1}));
  EXPECT_EQ(ring->PreferenceListForToken(0, 0), Ids{});
  EXPECT_EQ(ring->PreferenceList("some key", 3),
            ring->PreferenceListForToken(TokenOf("some key"), 3));
}

TEST(Ring, NLargerThanNodeCountReturnsEveryNodeOnce) {
  auto ring = Ring::Build(Nodes({{5, {10, 20, 30}}, {6, {15, 25}}, {7, {40}}}));
  for (std::size_t n : {3u, 4u, 100u}) {
    const Ids list = ring->PreferenceListForToken(12, n);
    EXPECT_EQ(list, (Ids{6, 5, 7})) << n;
  }
}

TEST(Ring, RackAwareSkipsUsedRacksThenFillsInRingOrder) {
  std::vector<RingNode> nodes = {
      {1, {10}, "r1"}, {2, {20}, "r1"}, {3, {30}, "r2"}, {4, {40}, "r3"}, {5, {50}, "r1"}};
  auto ring = Ring::Build(nodes);
  EXPECT_EQ(ring->PreferenceListForToken(0, 5), (Ids{1, 3, 4, 2, 5}));
  EXPECT_EQ(ring->PreferenceListForToken(0, 3), (Ids{1, 3, 4}));
  EXPECT_EQ(ring->PreferenceListForToken(0, 4), (Ids{1, 3, 4, 2}));
  EXPECT_EQ(ring->PreferenceListForToken(35, 5), (Ids{4, 5, 3, 1, 2}));
  // Without racks the same tokens give plain ring order.
  for (RingNode& n : nodes) n.rack.clear();
  EXPECT_EQ(Ring::Build(nodes)->PreferenceListForToken(0, 3), (Ids{1, 2, 3}));
}

TEST(Ring, DuplicateTokensGoToTheLowerIdWhateverTheOrder) {
  auto a = Ring::Build(Nodes({{9, {100, 200}}, {4, {200, 300}}, {7, {300}}}));
  auto b = Ring::Build(Nodes({{7, {300}}, {4, {300, 200}}, {9, {200, 100, 100}}}));
  for (auto ring : {a, b}) {
    EXPECT_EQ(ring->PreferenceListForToken(150, 1), (Ids{4}));  // 200: 4 beats 9
    EXPECT_EQ(ring->PreferenceListForToken(250, 1), (Ids{4}));  // 300: 4 beats 7
    EXPECT_EQ(ring->PreferenceListForToken(50, 3), (Ids{9, 4}));
    // 7 lost its only token and is not in the ring; 9 keeps only 100.
    ASSERT_EQ(ring->size(), 2u);
    EXPECT_EQ(ring->nodes()[0].id, 4u);
    EXPECT_EQ(ring->nodes()[0].tokens, (std::vector<Token>{200, 300}));
    EXPECT_EQ(ring->nodes()[1].id, 9u);
    EXPECT_EQ(ring->nodes()[1].tokens, (std::vector<Token>{100}));
    EXPECT_EQ(ring->OwnershipShare(7), 0.0);
  }
}

void CheckAgainstModel(bool racks) {
  std::mt19937_64 rng(racks ? 7 : 3);
  for (int round = 0; round < 400; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<RingNode> input = RandomNodes(rng, racks);
    const Model model(input);
    auto ring = Ring::Build(input);
    ASSERT_EQ(ring->size(), model.racks.size());
    for (Token t : ProbeTokens(rng, model)) {
      for (std::size_t n = 0; n <= ring->size() + 2; ++n) {
        const Ids got = ring->PreferenceListForToken(t, n);
        ASSERT_EQ(got, model.Preference(t, n)) << "token " << t << " n " << n;
        ASSERT_EQ(got.size(), std::min(n, ring->size()));
        ASSERT_EQ(std::set<NodeId>(got.begin(), got.end()).size(), got.size()) << "distinct";
      }
    }
  }
}

TEST(Ring, MatchesBruteForcePlacement) { CheckAgainstModel(false); }
TEST(Ring, MatchesBruteForcePlacementWithRacks) { CheckAgainstModel(true); }

TEST(Ring, NodesAreSortedWithTheTokensTheyOwn) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 200; ++round) {
    const std::vector<RingNode> input = RandomNodes(rng, true);
    const Model model(input);
    auto ring = Ring::Build(input);
    std::map<Token, NodeId> listed;
    NodeId previous = 0;
    for (std::size_t i = 0; i < ring->size(); ++i) {
      const RingNode& node = ring->nodes()[i];
      if (i > 0) {
        EXPECT_LT(previous, node.id);
      }
      previous = node.id;
      EXPECT_FALSE(node.tokens.empty());
      EXPECT_TRUE(std::is_sorted(node.tokens.begin(), node.tokens.end()));
      EXPECT_EQ(node.rack, model.racks.at(node.id));
      for (Token t : node.tokens) EXPECT_TRUE(listed.emplace(t, node.id).second);
    }
    EXPECT_EQ(listed, model.vnodes);
  }
}

TEST(Ring, BuildDoesNotDependOnInputOrder) {
  std::mt19937_64 rng(13);
  for (int round = 0; round < 100; ++round) {
    std::vector<RingNode> input = RandomNodes(rng, true);
    auto a = Ring::Build(input);
    std::shuffle(input.begin(), input.end(), rng);
    for (RingNode& n : input) std::shuffle(n.tokens.begin(), n.tokens.end(), rng);
    auto b = Ring::Build(input);
    const auto ra = a->Ranges(3), rb = b->Ranges(3);
    ASSERT_EQ(ra.size(), rb.size());
    for (std::size_t i = 0; i < ra.size(); ++i) {
      EXPECT_EQ(ra[i].range.begin, rb[i].range.begin);
      EXPECT_EQ(ra[i].range.end, rb[i].range.end);
      EXPECT_EQ(ra[i].replicas, rb[i].replicas);
    }
  }
}

TEST(Ring, OwnershipOfAHandBuiltRing) {
  // Node 2 owns (2^62, 2^63], a quarter; node 1 owns the rest, wrapping through 0.
  auto ring = Ring::Build(Nodes({{1, {Token{1} << 62}}, {2, {Token{1} << 63}}}));
  EXPECT_DOUBLE_EQ(ring->OwnershipShare(1), 0.75);
  EXPECT_DOUBLE_EQ(ring->OwnershipShare(2), 0.25);
  EXPECT_EQ(ring->OwnershipShare(3), 0.0);
  // One vnode owns everything, wherever it is.
  EXPECT_EQ(Ring::Build(Nodes({{1, {42}}}))->OwnershipShare(1), 1.0);
  EXPECT_EQ(Ring::Build(Nodes({{1, {0}}}))->OwnershipShare(1), 1.0);
}

TEST(Ring, OwnershipSharesSumToOneAndMatchSampling) {
  std::mt19937_64 rng(17);
  constexpr int kSamples = 100000;
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Random rather than pooled tokens: shares worth sampling, not slivers next to the edges.
    std::vector<RingNode> input;
    const std::size_t count = 1 + rng() % 8;
    for (NodeId id = 1; id <= count; ++id) {
      input.push_back(RingNode{id, ChooseTokens(1 + rng() % 8, rng()), ""});
    }
    const Model model(input);
    auto ring = Ring::Build(input);
    std::map<NodeId, int> hits;
    for (int i = 0; i < kSamples; ++i) ++hits[model.Primary(rng())];
    double sum = 0;
    for (const RingNode& n : ring->nodes()) {
      const double share = ring->OwnershipShare(n.id);
      sum += share;
      const double sampled = static_cast<double>(hits[n.id]) / kSamples;
      // Five standard deviations of the sampled fraction, plus a few samples for slivers.
      const double tolerance = 5 * std::sqrt(share * (1 - share) / kSamples) + 3.0 / kSamples;
      EXPECT_NEAR(share, sampled, tolerance) << "node " << n.id;
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
  }
}

TEST(Ring, RangesCoverTheRingOnceAndCarryTheirReplicas) {
  std::mt19937_64 rng(19);
  for (int round = 0; round < 300; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<RingNode> input = RandomNodes(rng, round % 2 == 1);
    const Model model(input);
    auto ring = Ring::Build(input);
    const std::size_t n = 1 + rng() % 4;
    const std::vector<Ring::Range> ranges = ring->Ranges(n);
    if (model.vnodes.empty()) {
      EXPECT_TRUE(ranges.empty());
      continue;
    }
    // One range per vnode, plus one when the wrapping range is split in two.
    const bool split = model.vnodes.rbegin()->first != kTop;
    ASSERT_EQ(ranges.size(), model.vnodes.size() + (split ? 1 : 0));
    if (ranges.size() == 1) {
      EXPECT_EQ(ranges[0].range.begin, 0u);  // {0, 0}: the whole ring
      EXPECT_EQ(ranges[0].range.end, 0u);
    } else {
      // Contiguous from 0 to the top, none empty: every token exactly once.
      EXPECT_EQ(ranges.front().range.begin, 0u);
      EXPECT_EQ(ranges.back().range.end, 0u);
      for (std::size_t i = 0; i < ranges.size(); ++i) {
        const TokenRange& r = ranges[i].range;
        if (i + 1 < ranges.size()) {
          EXPECT_EQ(r.end, ranges[i + 1].range.begin);
          EXPECT_LT(r.begin, r.end);
        } else {
          EXPECT_NE(r.begin, 0u);
        }
      }
    }
    for (const Ring::Range& r : ranges) {
      const Token last = r.range.end - 1;        // end 0 wraps to the top token, as it should
      const Token width = last - r.range.begin;  // tokens in the range, minus one
      const Token inside = r.range.begin + (width == kTop ? rng() : rng() % (width + 1));
      for (Token t : {r.range.begin, last, inside}) {
        ASSERT_TRUE(r.range.Contains(t));
        EXPECT_EQ(r.replicas, ring->PreferenceListForToken(t, n)) << "token " << t;
        EXPECT_EQ(r.replicas, model.Preference(t, n)) << "token " << t;
      }
      // Each range ends on a vnode's token, or at the top for the back piece.
      EXPECT_TRUE(model.vnodes.count(last) || r.range.end == 0);
    }
  }
}

TEST(Ring, RangesAtTheEdgesOfTheTokenSpace) {
  auto both = Ring::Build(Nodes({{1, {0}}, {2, {kTop}}}));
  const auto r = both->Ranges(1);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].range.begin, 0u);
  EXPECT_EQ(r[0].range.end, 1u);
  EXPECT_EQ(r[0].replicas, (Ids{1}));
  EXPECT_EQ(r[1].range.begin, 1u);
  EXPECT_EQ(r[1].range.end, 0u);
  EXPECT_EQ(r[1].replicas, (Ids{2}));

  const auto top = Ring::Build(Nodes({{1, {kTop}}}))->Ranges(3);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].range.begin, 0u);
  EXPECT_EQ(top[0].range.end, 0u);

  const auto one = Ring::Build(Nodes({{1, {5}}}))->Ranges(3);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0].range.end, 6u);
  EXPECT_EQ(one[1].range.begin, 6u);
  EXPECT_EQ(one[1].range.end, 0u);
}

TEST(ChooseTokens, DeterministicPerSeedSortedAndDistinct) {
  EXPECT_TRUE(ChooseTokens(0, 1).empty());
  std::set<Token> all;
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    const std::vector<Token> tokens = ChooseTokens(64, seed);
    EXPECT_EQ(tokens, ChooseTokens(64, seed));
    ASSERT_EQ(tokens.size(), 64u);
    EXPECT_TRUE(std::adjacent_find(tokens.begin(), tokens.end(),
                                   [](Token a, Token b) { return a >= b; }) == tokens.end());
    all.insert(tokens.begin(), tokens.end());
  }
  // Different seeds share no token (a collision among 6,400 random 64-bit values has
  // probability about 1e-12).
  EXPECT_EQ(all.size(), 6400u);
}

TEST(ChooseTokens, SpreadsOverTheWholeSpace) {
  // 4,096 tokens in 16 equal slices: about 256 each, and never near empty or double if the
  // generator is sound.
  std::vector<int> slices(16);
  for (Token t : ChooseTokens(4096, 12345)) ++slices[t >> 60];
  for (int count : slices) {
    EXPECT_GT(count, 180);
    EXPECT_LT(count, 340);
  }
}

}  // namespace
}  // namespace kv::ring
