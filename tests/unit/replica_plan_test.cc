// The coordinator's replica planning (rpc/replica_plan.h) against a brute-force statement of
// sloppy quorum over random rings and random sets of DOWN nodes.
#include "rpc/replica_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace kv::rpc {
namespace {

std::shared_ptr<const ring::Ring> RandomRing(std::mt19937_64& rng, int nodes) {
  std::vector<ring::RingNode> v;
  for (int i = 1; i <= nodes; ++i) {
    v.push_back(ring::RingNode{static_cast<std::uint64_t>(i), ring::ChooseTokens(8, rng()), ""});
  }
  return ring::Ring::Build(std::move(v));
}

TEST(ReplicaPlan, MatchesSloppyQuorumOverRandomRings) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 500; ++round) {
    const int nodes = 1 + static_cast<int>(rng() % 8);
    const int n = 1 + static_cast<int>(rng() % 4);
    auto ring = RandomRing(rng, nodes);
    std::set<std::uint64_t> down;
    for (int i = 1; i <= nodes; ++i) {
      if (rng() % 3 == 0) down.insert(i);
    }
    const bool hh = rng() % 2 == 0;
    const std::string key = "key" + std::to_string(rng());
    const ReplicaPlan plan =
        PlanReplicas(*ring, key, n, hh, [&](std::uint64_t id) { return down.count(id) != 0; });

    // Brute force: owners are the first n of the walk; live owners first, in walk order; then
    // for each DOWN owner in order, the next live non-owner of the walk, while any remain.
    const auto walk = ring->PreferenceList(key, ring->size());
    const std::vector<std::uint64_t> owners(walk.begin(),
                                            walk.begin() + std::min<std::size_t>(n, walk.size()));
    std::vector<ReplicaTarget> expected;
    std::vector<std::uint64_t> expected_down;
    for (auto id : owners) {
      if (down.count(id)) {
        expected_down.push_back(id);
      } else {
        expected.push_back({id, 0});
      }
    }
    std::vector<std::uint64_t> spare;
    for (auto id : walk) {
      if (std::find(owners.begin(), owners.end(), id) == owners.end() && !down.count(id)) {
        spare.push_back(id);
      }
    }
    std::vector<std::uint64_t> expected_uncovered;
    for (std::size_t i = 0; i < expected_down.size(); ++i) {
      if (!hh) break;
      if (i < spare.size()) {
        expected.push_back({spare[i], expected_down[i]});
      } else {
        expected_uncovered.push_back(expected_down[i]);
      }
    }
    ASSERT_EQ(plan.owners, static_cast<int>(owners.size()));
    ASSERT_EQ(plan.down, expected_down);
    ASSERT_EQ(plan.targets, expected) << "round " << round;
    ASSERT_EQ(plan.uncovered, expected_uncovered) << "round " << round;
  }
}

TEST(ReplicaPlan, RequiredAndCounting) {
  ReplicaPlan plan;
  plan.owners = 3;
  plan.targets = {{1, 0}, {2, 0}, {4, 3}};  // owner 3 DOWN, node 4 stands in
  EXPECT_EQ(plan.Required(Consistency::kOne, 2), 1);
  EXPECT_EQ(plan.Required(Consistency::kQuorum, 2), 2);
  EXPECT_EQ(plan.Required(Consistency::kAll, 2), 3);
  EXPECT_EQ(plan.Required(Consistency::kDefault, 2), 2);
  EXPECT_EQ(plan.Required(Consistency::kDefault, 5), 3);  // never more than the owners
  // A stand-in's hint counts for quorum but not for all, which means every owner itself.
  EXPECT_EQ(plan.Reachable(Consistency::kQuorum), 3);
  EXPECT_EQ(plan.Reachable(Consistency::kAll), 2);
  // A one-node ring: every level needs that one node.
  ReplicaPlan single;
  single.owners = 1;
  EXPECT_EQ(single.Required(Consistency::kQuorum, 2), 1);
  EXPECT_EQ(single.Required(Consistency::kAll, 2), 1);
}

TEST(ReplicaPlan, ConsistencyNames) {
  Consistency c = Consistency::kDefault;
  EXPECT_TRUE(ParseConsistency("all", &c));
  EXPECT_EQ(c, Consistency::kAll);
  EXPECT_FALSE(ParseConsistency("ALL", &c));
  EXPECT_FALSE(ParseConsistency("two", &c));
  EXPECT_STREQ(Name(Consistency::kQuorum), "quorum");
}

}  // namespace
}  // namespace kv::rpc
