// Ring movements, the pure parts: which slices move (ring/movement.h) against a brute-force
// statement over random rings; the rings every node derives from gossiped states
// (membership/topology.h); and the driver's state machine (membership/movement_driver.h) driven
// through every phase with a hand-made view, no sockets and no clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "membership/movement_driver.h"
#include "membership/topology.h"
#include "ring/movement.h"

namespace kv {
namespace {

using membership::AppState;
using membership::ClusterView;
using membership::Liveness;
using membership::MemberView;
using membership::Movement;
using membership::MovementDriver;
using membership::MovementKind;
using membership::NodeState;
using Type = MovementDriver::Action::Type;

std::vector<ring::RingNode> RandomNodes(std::mt19937_64& rng, int count, int first_id) {
  std::vector<ring::RingNode> v;
  for (int i = 0; i < count; ++i) {
    v.push_back(ring::RingNode{static_cast<std::uint64_t>(first_id + i),
                               ring::ChooseTokens(1 + rng() % 8, rng()), ""});
  }
  return v;
}

const ring::RangeMove* MoveOf(const std::vector<ring::RangeMove>& moves, ring::Token t) {
  for (const auto& m : moves) {
    if (m.range.Contains(t)) return &m;
  }
  return nullptr;
}

TEST(PlanMoves, EveryTokenGainsExactlyTheNewReplicasFromTheOldOnes) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 300; ++round) {
    const int before_count = static_cast<int>(rng() % 6);
    auto nodes = RandomNodes(rng, before_count, 1);
    auto before = ring::Ring::Build(nodes);
    // A join, a leave, or both (a replace is a leave and a join).
    const int what = static_cast<int>(rng() % 3);
    if (what != 1 || nodes.empty()) {
      auto extra = RandomNodes(rng, 1, 100);
      nodes.push_back(extra[0]);
    }
    if (what != 0 && nodes.size() > 1) nodes.erase(nodes.begin() + rng() % (nodes.size() - 1));
    auto after = ring::Ring::Build(nodes);
    const std::size_t n = 1 + rng() % 3;
    const auto moves = ring::PlanMoves(*before, *after, n);
    // Sorted, disjoint, never wrapping.
    for (std::size_t i = 0; i < moves.size(); ++i) {
      EXPECT_TRUE(moves[i].range.end == 0 || moves[i].range.end > moves[i].range.begin);
      if (i > 0) {
        EXPECT_LE(moves[i - 1].range.end, moves[i].range.begin);
      }
      EXPECT_FALSE(moves[i].targets.empty());
    }
    // Brute force at random tokens and at every boundary of both rings.
    std::vector<ring::Token> probes;
    for (int i = 0; i < 200; ++i) probes.push_back(rng());
    for (const auto& r : before->Ranges(n)) probes.insert(probes.end(), {r.range.begin, r.range.begin - 1});
    for (const auto& r : after->Ranges(n)) probes.insert(probes.end(), {r.range.begin, r.range.begin - 1});
    for (ring::Token t : probes) {
      const auto was = before->PreferenceListForToken(t, n);
      const auto now = after->PreferenceListForToken(t, n);
      std::vector<std::uint64_t> gained;
      for (auto id : now) {
        if (std::find(was.begin(), was.end(), id) == was.end()) gained.push_back(id);
      }
      std::sort(gained.begin(), gained.end());
      const ring::RangeMove* m = MoveOf(moves, t);
      if (gained.empty()) {
        EXPECT_EQ(m, nullptr) << "token " << t;
      } else {
        ASSERT_NE(m, nullptr) << "token " << t;
        EXPECT_EQ(m->targets, gained);
        EXPECT_EQ(m->sources, was);
      }
    }
  }
}

TEST(PlanMoves, SameRingMovesNothing) {
  std::mt19937_64 rng(3);
  auto ring = ring::Ring::Build(RandomNodes(rng, 4, 1));
  EXPECT_TRUE(ring::PlanMoves(*ring, *ring, 3).empty());
}

TEST(RangesOf, CoversExactlyTheTokensANodeReplicates) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 100; ++round) {
    auto ring = ring::Ring::Build(RandomNodes(rng, 1 + rng() % 6, 1));
    const std::size_t n = 1 + rng() % 3;
    const std::uint64_t node = 1 + rng() % ring->size();
    const auto ranges = ring::RangesOf(*ring, node, n);
    for (int i = 0; i < 300; ++i) {
      const ring::Token t = rng();
      const auto list = ring->PreferenceListForToken(t, n);
      const bool holds = std::find(list.begin(), list.end(), node) != list.end();
      const bool covered = std::any_of(ranges.begin(), ranges.end(),
                                       [&](const ring::TokenRange& r) { return r.Contains(t); });
      EXPECT_EQ(holds, covered);
    }
  }
}

// ---- topology --------------------------------------------------------------------------------

MemberView Member(std::uint64_t id, NodeState state, std::vector<std::uint64_t> tokens,
                  Liveness liveness = Liveness::kUp) {
  MemberView m;
  m.id = id;
  m.liveness = liveness;
  m.app.state = state;
  m.app.tokens = std::move(tokens);
  m.app.rpc_address = "127.0.0.1:" + std::to_string(7000 + id);
  return m;
}

std::vector<std::uint64_t> Ids(const ring::Ring& r) {
  std::vector<std::uint64_t> out;
  for (const auto& n : r.nodes()) out.push_back(n.id);
  return out;
}

ClusterView ViewOf(std::vector<MemberView> members, std::uint64_t self = 1) {
  ClusterView v;
  v.self = self;
  std::sort(members.begin(), members.end(),
            [](const MemberView& a, const MemberView& b) { return a.id < b.id; });
  v.members = std::move(members);
  return v;
}

TEST(Topology, NoMovementIsOneRingOfEveryNormalMember) {
  auto v = ViewOf({Member(1, NodeState::kNormal, {10}), Member(2, NodeState::kNormal, {20}),
                   Member(3, NodeState::kNormal, {30}, Liveness::kDown),  // stopped: keeps its ranges
                   Member(4, NodeState::kJoining, {}),                   // waiting: no tokens
                   Member(5, NodeState::kLeft, {50}, Liveness::kLeft)});
  auto t = membership::TopologyOf(v);
  EXPECT_FALSE(t.movement);
  EXPECT_EQ(Ids(*t.read), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(t.before, nullptr);
}

TEST(Topology, JoinWritesToBothReadsOldUntilCopied) {
  std::vector<MemberView> m = {Member(1, NodeState::kNormal, {10}),
                               Member(2, NodeState::kNormal, {20}),
                               Member(4, NodeState::kJoining, {40})};
  auto t = membership::TopologyOf(ViewOf(m));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->kind, MovementKind::kJoin);
  EXPECT_EQ(t.movement->driver, 4u);
  EXPECT_EQ(Ids(*t.before), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(Ids(*t.after), (std::vector<std::uint64_t>{1, 2, 4}));
  EXPECT_EQ(t.read, t.before);
  m[2].app.reads_new = true;
  t = membership::TopologyOf(ViewOf(m));
  EXPECT_EQ(t.read, t.after);
}

TEST(Topology, DecommissionReplaceAndRemoval) {
  // Decommission: the leaver is in the ring before only.
  auto t = membership::TopologyOf(ViewOf({Member(1, NodeState::kNormal, {10}),
                                           Member(2, NodeState::kLeaving, {20}),
                                           Member(3, NodeState::kNormal, {30})}));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->kind, MovementKind::kDecommission);
  EXPECT_EQ(Ids(*t.before), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(Ids(*t.after), (std::vector<std::uint64_t>{1, 3}));
  // Replace: the dead member's tokens go to the replacement.
  auto j = Member(9, NodeState::kJoining, {30});
  j.app.replaces = 3;
  t = membership::TopologyOf(ViewOf({Member(1, NodeState::kNormal, {10}),
                                      Member(3, NodeState::kNormal, {30}, Liveness::kDown), j}));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->kind, MovementKind::kReplace);
  EXPECT_EQ(t.movement->subject, 3u);
  EXPECT_EQ(Ids(*t.before), (std::vector<std::uint64_t>{1, 3}));
  EXPECT_EQ(Ids(*t.after), (std::vector<std::uint64_t>{1, 9}));
  // Removal, driven by a live member for a dead one.
  auto r = Member(1, NodeState::kNormal, {10});
  r.app.removing = 3;
  t = membership::TopologyOf(ViewOf({r, Member(2, NodeState::kNormal, {20}),
                                      Member(3, NodeState::kNormal, {30}, Liveness::kDown)}));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->kind, MovementKind::kRemove);
  EXPECT_EQ(t.movement->driver, 1u);
  EXPECT_EQ(Ids(*t.after), (std::vector<std::uint64_t>{1, 2}));
}

TEST(Topology, OneMovementAtATimeTheLowestDriverWins) {
  auto t = membership::TopologyOf(ViewOf({Member(1, NodeState::kNormal, {10}),
                                           Member(5, NodeState::kJoining, {50}),
                                           Member(4, NodeState::kJoining, {40}),
                                           Member(6, NodeState::kLeaving, {60})}));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->driver, 4u);
  EXPECT_EQ(t.ignored, (std::vector<std::uint64_t>{5, 6}));
  // The ignored joiner is in neither ring; the ignored leaver stays in both.
  EXPECT_EQ(Ids(*t.before), (std::vector<std::uint64_t>{1, 6}));
  EXPECT_EQ(Ids(*t.after), (std::vector<std::uint64_t>{1, 4, 6}));
}

TEST(Topology, TheRemovalOfADeadDecommissionerSupersedesItsDecommission) {
  auto remover = Member(2, NodeState::kNormal, {20});
  remover.app.removing = 1;
  auto dead = Member(1, NodeState::kLeaving, {10}, Liveness::kDown);
  // Alone, its decommission is the movement (and would block every other for ever).
  auto t = membership::TopologyOf(ViewOf({dead, Member(2, NodeState::kNormal, {20}),
                                           Member(3, NodeState::kNormal, {30})}));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->kind, MovementKind::kDecommission);
  // Once a member removes it, the removal is the movement, though its driver's id is higher.
  t = membership::TopologyOf(ViewOf({dead, remover, Member(3, NodeState::kNormal, {30})}));
  ASSERT_TRUE(t.movement);
  EXPECT_EQ(t.movement->kind, MovementKind::kRemove);
  EXPECT_EQ(t.movement->driver, 2u);
  EXPECT_EQ(t.movement->subject, 1u);
  EXPECT_TRUE(t.ignored.empty());
  EXPECT_EQ(Ids(*t.before), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(Ids(*t.after), (std::vector<std::uint64_t>{2, 3}));
}

// ---- driver ----------------------------------------------------------------------------------

// A cluster as the driver's node sees it; the test plays the edge.
struct Harness {
  std::vector<MemberView> members;
  membership::Time now{0};
  std::uint64_t self;

  explicit Harness(std::uint64_t self_id) : self(self_id) {}
  ClusterView View() const { return ViewOf(members, self); }
  MemberView& Find(std::uint64_t id) {
    for (auto& m : members) {
      if (m.id == id) return m;
    }
    throw std::runtime_error("no member");
  }
  // Applies a publish as the edge would: to this node's own state, then reports it.
  void Publish(MovementDriver& d, const MovementDriver::Action& a) {
    AppState& app = Find(self).app;
    app.state = a.app.state;
    app.tokens = a.app.tokens;
    app.replaces = a.app.replaces;
    app.removing = a.app.removing;
    app.reads_new = a.app.reads_new;
    d.Published();
  }
  // Every live member answers with what this view derives (they all agree with it).
  void AllAgree(MovementDriver& d, const MovementDriver::Action& a) {
    std::vector<MovementDriver::Answer> answers;
    for (auto id : a.members) answers.push_back({id, membership::MovementOf(View())});
    d.BarrierResult(answers, now);
  }
};

MovementDriver::Options JoinOptions(std::uint64_t self) {
  MovementDriver::Options o;
  o.kind = MovementKind::kJoin;
  o.self = self;
  o.subject = self;
  o.n = 2;
  o.tokens = {45, 75};
  o.retry_interval = std::chrono::seconds(1);
  o.barrier_timeout = std::chrono::seconds(10);
  o.copy_attempts = 3;
  return o;
}

Harness ThreeNodesAndAJoiner() {
  Harness h(9);
  h.members = {Member(1, NodeState::kNormal, {10, 60}), Member(2, NodeState::kNormal, {30, 80}),
               Member(3, NodeState::kNormal, {50, 90}), Member(9, NodeState::kJoining, {})};
  return h;
}

TEST(MovementDriver, JoinGoesThroughEveryPhaseAndCopiesEverySliceFromEveryOldReplica) {
  Harness h = ThreeNodesAndAJoiner();
  MovementDriver d(JoinOptions(9), {});
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_EQ(a.app.state, NodeState::kJoining);
  EXPECT_EQ(a.app.tokens, (std::vector<std::uint64_t>{45, 75}));
  EXPECT_FALSE(a.app.reads_new);
  h.Publish(d, a);
  // Barrier 1: every live member is asked; one lags, so it asks again after the retry interval.
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  EXPECT_EQ(a.members, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_FALSE(a.reads_new);
  d.BarrierResult({{1, membership::MovementOf(h.View())}, {2, std::nullopt}}, h.now);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kWait);  // no copy before all agree
  h.now += std::chrono::seconds(1);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  h.AllAgree(d, a);
  // Copies: exactly the (slice, target) pairs PlanMoves gives, each from the old replicas.
  auto t = membership::TopologyOf(h.View());
  const auto moves = ring::PlanMoves(*t.before, *t.after, 2);
  std::set<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>> want, got;
  for (const auto& m : moves) {
    for (auto target : m.targets) want.emplace(m.range.begin, m.range.end, target);
  }
  ASSERT_FALSE(want.empty());
  for (;;) {
    a = d.Next(h.View(), h.now);
    if (a.type == Type::kSave) {
      d.Saved();
      continue;
    }
    if (a.type != Type::kCopy) break;
    EXPECT_EQ(a.target, 9u);
    const auto* m = MoveOf(moves, a.range.begin);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(a.sources, m->sources);
    got.emplace(a.range.begin, a.range.end, a.target);
    d.CopyResult(true, "", 100, h.now);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(d.progress().copies_done, want.size());
  EXPECT_EQ(d.progress().bytes_copied, 100 * want.size());
  // Reads switch, then a second barrier, then normal.
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_TRUE(a.app.reads_new);
  h.Publish(d, a);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  EXPECT_TRUE(a.reads_new);
  h.AllAgree(d, a);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_EQ(a.app.state, NodeState::kNormal);
  EXPECT_FALSE(a.app.reads_new);
  EXPECT_EQ(a.app.tokens, (std::vector<std::uint64_t>{45, 75}));
  h.Publish(d, a);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kDone);
  EXPECT_FALSE(membership::MovementOf(h.View()));
}

TEST(MovementDriver, AJoinWaitsForTheMovementUnderWayAndForASyncedView) {
  Harness h = ThreeNodesAndAJoiner();
  h.Find(2).app.state = NodeState::kLeaving;
  MovementDriver d(JoinOptions(9), {});
  auto a = d.Next(h.View(), h.now);
  EXPECT_EQ(a.type, Type::kWait);
  EXPECT_NE(d.progress().note.find("decommission"), std::string::npos) << d.progress().note;
  h.Find(2).app.state = NodeState::kNormal;
  ClusterView partial = h.View();
  partial.synced = false;
  EXPECT_EQ(d.Next(partial, h.now).type, Type::kWait);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kPublish);
}

TEST(MovementDriver, ADecommissionDuringAnotherMovementIsRefusedNamingIt) {
  Harness h = ThreeNodesAndAJoiner();
  h.Find(9).app.tokens = {45};  // node 9's join is under way
  MovementDriver::Options o = JoinOptions(1);
  o.kind = MovementKind::kDecommission;
  o.subject = 1;
  h.self = 1;
  MovementDriver d(o, {});
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kFailed);
  EXPECT_NE(a.error.find("join of 0000000000000009"), std::string::npos) << a.error;
  EXPECT_EQ(h.Find(1).app.state, NodeState::kNormal);  // nothing was published
}

TEST(MovementDriver, ARemovalOfTheDeadDriverOfAStalledMovementIsNotRefused) {
  Harness h(2);
  h.members = {Member(1, NodeState::kLeaving, {10, 60}, Liveness::kDown),
               Member(2, NodeState::kNormal, {30, 80}), Member(3, NodeState::kNormal, {50, 90})};
  MovementDriver::Options o = JoinOptions(2);
  o.kind = MovementKind::kRemove;
  o.subject = 1;
  MovementDriver d(o, {});
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish) << a.error;
  EXPECT_EQ(a.app.removing, 1u);
  h.Publish(d, a);
  EXPECT_EQ(membership::MovementOf(h.View())->driver, 2u);
  // A member that has not heard of the removal yet still sees the decommission: not yet, not a
  // conflict; once it has, the copies begin.
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  Movement stale;
  stale.kind = MovementKind::kDecommission;
  stale.driver = stale.subject = 1;
  d.BarrierResult({{2, membership::MovementOf(h.View())}, {3, stale}}, h.now);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kWait);
  h.now += std::chrono::seconds(1);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  h.AllAgree(d, a);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kCopy);
  // Another member's stalled movement is still refused.
  o.subject = 3;
  h.Find(3).liveness = Liveness::kDown;
  h.Find(2).app.removing = 0;
  MovementDriver other(o, {});
  EXPECT_EQ(other.Next(h.View(), h.now).type, Type::kFailed);
}

TEST(MovementDriver, AFailedCopyWithdrawsAndLeavesTheRingAsItWas) {
  Harness h = ThreeNodesAndAJoiner();
  const auto ring_before = Ids(*membership::TopologyOf(h.View()).read);
  MovementDriver d(JoinOptions(9), {});
  auto a = d.Next(h.View(), h.now);
  h.Publish(d, a);
  h.AllAgree(d, d.Next(h.View(), h.now));
  for (int i = 0; i < 3; ++i) {
    a = d.Next(h.View(), h.now);
    while (a.type == Type::kWait) {
      h.now += std::chrono::seconds(1);
      a = d.Next(h.View(), h.now);
    }
    ASSERT_EQ(a.type, Type::kCopy);
    d.CopyResult(false, "source 0000000000000002 is DOWN", 0, h.now);
  }
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);  // withdraws: no tokens, so in no ring
  EXPECT_TRUE(a.app.tokens.empty());
  h.Publish(d, a);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kFailed);
  EXPECT_NE(a.error.find("0000000000000002"), std::string::npos) << a.error;
  EXPECT_FALSE(membership::MovementOf(h.View()));
  EXPECT_EQ(Ids(*membership::TopologyOf(h.View()).read), ring_before);
}

TEST(MovementDriver, ALosingJoinWithdrawsAndWaitsForItsTurn) {
  Harness h = ThreeNodesAndAJoiner();
  MovementDriver d(JoinOptions(9), {});
  h.Publish(d, d.Next(h.View(), h.now));
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  // Node 2 already sees another joiner (id 5) that won the race; this node hears of it too.
  h.members.push_back(Member(5, NodeState::kJoining, {20}));
  d.BarrierResult({{2, Movement{MovementKind::kJoin, 5, 5, false}}}, h.now);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_TRUE(a.app.tokens.empty());
  h.Publish(d, a);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kWait);
  EXPECT_FALSE(d.finished());
  // Its turn comes again once nothing else moves (node 5 has joined).
  h.Find(5).app.state = NodeState::kNormal;
  h.now += std::chrono::seconds(2);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_FALSE(a.app.tokens.empty());
}

// Found by CI: node A decommissions and leaves; node B, whose view shows A LEFT, decommissions
// next, while a third member has not heard A's LEFT yet and still answers "decommission of A".
// That member is behind, not a conflict: B waits for it instead of withdrawing.
TEST(MovementDriver, AMemberThatStillSeesALeftDecommissionerIsWaitedForNotAConflict) {
  Harness h(2);
  h.members = {Member(1, NodeState::kLeft, {10, 60}, Liveness::kLeft),
               Member(2, NodeState::kNormal, {30, 80}), Member(3, NodeState::kNormal, {50, 90}),
               Member(4, NodeState::kNormal, {20, 70})};
  MovementDriver::Options o = JoinOptions(2);
  o.kind = MovementKind::kDecommission;
  o.subject = 2;
  MovementDriver d(o, {});
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish) << a.error;
  h.Publish(d, a);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  Movement stale;
  stale.kind = MovementKind::kDecommission;
  stale.driver = stale.subject = 1;
  stale.reads_new = true;
  d.BarrierResult({{3, membership::MovementOf(h.View())}, {4, stale}}, h.now);
  a = d.Next(h.View(), h.now);
  EXPECT_EQ(a.type, Type::kWait) << a.error;
  EXPECT_EQ(d.progress().note.find("another movement"), std::string::npos) << d.progress().note;
  EXPECT_NE(d.progress().note.find("0000000000000004"), std::string::npos) << d.progress().note;
  h.now += std::chrono::seconds(1);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kBarrier);
  h.AllAgree(d, a);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kCopy);
}

TEST(MovementDriver, AResumedJoinSkipsTheCopiesItsCheckpointHolds) {
  Harness h = ThreeNodesAndAJoiner();
  MovementDriver first(JoinOptions(9), {});
  h.Publish(first, first.Next(h.View(), h.now));
  h.AllAgree(first, first.Next(h.View(), h.now));
  auto a = first.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kCopy);
  first.CopyResult(true, "", 10, h.now);
  a = first.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kSave);
  membership::MovementCheckpoint saved;
  ASSERT_TRUE(membership::DecodeCheckpoint(membership::EncodeCheckpoint(a.checkpoint), &saved));
  EXPECT_EQ(saved, a.checkpoint);
  EXPECT_EQ(saved.done.size(), 1u);
  // The process dies here; a new one resumes from the checkpoint.
  MovementDriver second(JoinOptions(9), saved);
  h.Publish(second, second.Next(h.View(), h.now));
  h.AllAgree(second, second.Next(h.View(), h.now));
  std::size_t copies = 0;
  for (a = second.Next(h.View(), h.now); a.type == Type::kCopy || a.type == Type::kSave;
       a = second.Next(h.View(), h.now)) {
    if (a.type == Type::kSave) {
      second.Saved();
      continue;
    }
    EXPECT_EQ(saved.done.count({a.range.begin, a.range.end, a.target}), 0u);
    ++copies;
    second.CopyResult(true, "", 10, h.now);
  }
  EXPECT_EQ(copies + 1, second.progress().copies_total);
}

TEST(MovementDriver, ReplaceTakesTheDeadMembersTokensAndRemovesIt) {
  Harness h(9);
  h.members = {Member(1, NodeState::kNormal, {10, 60}), Member(2, NodeState::kNormal, {30, 80}),
               Member(3, NodeState::kNormal, {50, 90}, Liveness::kDown),
               Member(9, NodeState::kJoining, {})};
  MovementDriver::Options o = JoinOptions(9);
  o.kind = MovementKind::kReplace;
  o.subject = 3;
  MovementDriver d(o, {});
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_EQ(a.app.tokens, (std::vector<std::uint64_t>{50, 90}));
  EXPECT_EQ(a.app.replaces, 3u);
  h.Publish(d, a);
  h.AllAgree(d, d.Next(h.View(), h.now));
  for (a = d.Next(h.View(), h.now); a.type == Type::kCopy || a.type == Type::kSave;
       a = d.Next(h.View(), h.now)) {
    if (a.type == Type::kSave) {
      d.Saved();
      continue;
    }
    // The dead member is never asked for data.
    EXPECT_EQ(std::count(a.sources.begin(), a.sources.end(), 3u), 0);
    d.CopyResult(true, "", 1, h.now);
  }
  h.Publish(d, a);
  h.AllAgree(d, d.Next(h.View(), h.now));
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kRemove);
  EXPECT_EQ(a.remove, 3u);
  h.Find(3).liveness = Liveness::kRemoved;
  d.Removed(true);
  a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kPublish);
  EXPECT_EQ(a.app.state, NodeState::kNormal);
  EXPECT_EQ(a.app.replaces, 0u);
  h.Publish(d, a);
  EXPECT_EQ(d.Next(h.View(), h.now).type, Type::kDone);
  EXPECT_EQ(Ids(*membership::TopologyOf(h.View()).read), (std::vector<std::uint64_t>{1, 2, 9}));
}

TEST(MovementDriver, ReplacingALiveMemberIsRefused) {
  Harness h = ThreeNodesAndAJoiner();
  MovementDriver::Options o = JoinOptions(9);
  o.kind = MovementKind::kReplace;
  o.subject = 3;
  MovementDriver d(o, {});
  auto a = d.Next(h.View(), h.now);
  ASSERT_EQ(a.type, Type::kFailed);
  EXPECT_NE(a.error.find("UP"), std::string::npos) << a.error;
}

TEST(MovementCheckpoint, MalformedBytesAreRefused) {
  membership::MovementCheckpoint c;
  c.kind = MovementKind::kDecommission;
  c.subject = 42;
  c.done.emplace(1, 2, 3);
  const std::string bytes = membership::EncodeCheckpoint(c);
  membership::MovementCheckpoint out;
  ASSERT_TRUE(membership::DecodeCheckpoint(bytes, &out));
  EXPECT_EQ(out, c);
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_FALSE(membership::DecodeCheckpoint(bytes.substr(0, len), &out)) << len;
  }
  EXPECT_FALSE(membership::DecodeCheckpoint(bytes + "x", &out));
  std::string bad_kind = bytes;
  bad_kind[7] = 9;
  EXPECT_FALSE(membership::DecodeCheckpoint(bad_kind, &out));
}

}  // namespace
}  // namespace kv
