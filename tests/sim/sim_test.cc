// Simulation tests: the real membership core on N simulated nodes (tests/sim/simulator.h).
//
// Each test asserts an end state of the protocol within a generous deadline of simulated time;
// the simulator checks its invariants after every call into a core as the run goes. Every test
// has a fixed seed, so CI is deterministic; KV_SIM_SEED=<n> overrides it, which is how a failure
// (its message prints the seed and the command) is replayed, and how more seeds are explored:
//
//   KV_SIM_SEED=12345 build/tests/sim_tests --gtest_filter=Sim.PartitionIntoHalvesHeals
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <random>
#include <tuple>

#include "tests/sim/simulator.h"

namespace kv::membership {
// Readable AppState in assertion messages.
void PrintTo(const AppState& a, std::ostream* os) {
  *os << "{tokens " << a.tokens.size() << ", " << Name(a.state) << ", rack '" << a.rack
      << "', rpc '" << a.rpc_address << "', load " << a.load_bytes << "}";
}
}  // namespace kv::membership

namespace kv::sim {
namespace {

using namespace std::chrono_literals;
using membership::MemberView;

// NoFalseDeathsWhenNewsOutrunsDatagrams: a datagram this small carries a ping-req and two or three
// updates.
constexpr std::size_t kSmallDatagramBytes = 200;
constexpr int kSmallDatagramNodes = 400;

class Sim : public ::testing::Test {
 protected:
  // Options of this test: its seed (KV_SIM_SEED when set, else `seed`) and replay command.
  static Options TestOptions(std::uint64_t seed) {
    Options o;
    const char* env = std::getenv("KV_SIM_SEED");
    o.seed = (env != nullptr && *env != '\0') ? std::strtoull(env, nullptr, 0) : seed;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    o.replay_command = "KV_SIM_SEED=" + std::to_string(o.seed) +
                       " sim_tests --gtest_filter=" + info->test_suite_name() + "." + info->name();
    return o;
  }

  Simulator& Make(Options o) {
    sim_ = std::make_unique<Simulator>(std::move(o));
    return *sim_;
  }

  // A failed assertion anywhere says how to replay the run.
  void TearDown() override {
    if (sim_ == nullptr) return;
    EXPECT_TRUE(sim_->ok()) << sim_->failure();
    if (HasFailure()) {
      std::fprintf(stderr, "seed %llu; replay: %s\n", static_cast<unsigned long long>(sim_->seed()),
                   sim_->options().replay_command.c_str());
    }
  }

  // Starts `n` nodes that all join through node 1 and runs until every view holds every node
  // UP. Returns their ids.
  std::vector<NodeId> StartCluster(int n, Duration limit = 120s) {
    Simulator& sim = *sim_;
    const NodeId seed = sim.AddNode();
    for (int i = 1; i < n; ++i) sim.AddAndJoin(seed);
    EXPECT_TRUE(sim.RunUntil([&] { return sim.Converged(); }, limit)) << NotConverged();
    return sim.Live();
  }

  // The first live view that misses a live node UP, for failure messages.
  std::string NotConverged() const {
    for (NodeId o : sim_->Live()) {
      for (NodeId s : sim_->Live()) {
        if (s != o && !sim_->Sees(o, s, Liveness::kUp)) {
          return "node " + std::to_string(o) + " does not see " + std::to_string(s) +
                 " UP: " + sim_->Describe(o);
        }
      }
    }
    return "converged";
  }

  // How many (observer, live subject) pairs are SUSPECT right now.
  int SuspectPairs() const {
    int n = 0;
    for (NodeId o : sim_->Live()) {
      for (const MemberView& m : sim_->View(o).members) {
        if (m.liveness == Liveness::kSuspect && sim_->IsRunning(m.id)) ++n;
      }
    }
    return n;
  }

  std::unique_ptr<Simulator> sim_;
};

// 50 nodes started at once, all given the same single seed: each ends UP in every view, and
// every view carries every member's application state as the member announced it.
TEST_F(Sim, FiftyNodesJoinThroughOneSeed) {
  Options o = TestOptions(101);
  o.fail_on_false_death = true;
  Simulator& sim = Make(o);
  const std::vector<NodeId> nodes = StartCluster(50, 60s);
  ASSERT_EQ(nodes.size(), 50u);
  std::vector<membership::AppState> announced;
  for (NodeId id : nodes) announced.push_back(sim.View(id).Find(id)->app);
  // Liveness and application state spread independently: allow the latter some more time.
  auto apps_known = [&] {
    for (NodeId o : nodes) {
      for (const MemberView& m : sim.View(o).members) {
        if (m.app != announced[m.id - 1]) return false;
      }
    }
    return true;
  };
  EXPECT_TRUE(sim.RunUntil(apps_known, 120s));
  for (NodeId o : nodes) {
    const ClusterView v = sim.View(o);
    ASSERT_EQ(v.members.size(), 50u) << sim.Describe(o);
    for (const MemberView& m : v.members) {
      EXPECT_EQ(m.app, announced[m.id - 1])
          << "node " << o << " about " << m.id << " app_version " << m.app_version;
      EXPECT_EQ(m.generation, 1u);
    }
  }
  EXPECT_EQ(sim.detector_stats().false_deaths, 0u);
}

// A crashed node is suspected, then DOWN in every live view, and stays DOWN; no live node is
// declared DOWN on the way.
TEST_F(Sim, CrashedNodeEndsDownEverywhere) {
  Options o = TestOptions(202);
  o.fail_on_false_death = true;
  Simulator& sim = Make(o);
  StartCluster(20);
  const NodeId victim = 7;
  sim.Crash(victim);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.AllSee(victim, Liveness::kDown); }, 120s))
      << sim.Describe(1);
  sim.RunFor(60s);
  EXPECT_TRUE(sim.AllSee(victim, Liveness::kDown)) << sim.Describe(1);
  EXPECT_TRUE(sim.Converged()) << NotConverged();
}

// 50 nodes for 10 simulated minutes at 10% datagram loss with the default Config: suspicions
// may happen but are refuted; no live node is ever DOWN (checked at every call) or stays
// SUSPECT.
TEST_F(Sim, NoFalseDeathsAtTenPercentLoss) {
  Options o = TestOptions(303);
  o.fail_on_false_death = true;
  Simulator& sim = Make(o);
  StartCluster(50);
  sim.SetLoss(0.10);
  const NetworkStats before = sim.network_stats();
  sim.RunFor(600s);
  ASSERT_TRUE(sim.ok());
  EXPECT_EQ(sim.detector_stats().false_deaths, 0u);
  // The loss was real: about 10% of the datagrams sent during the run.
  const NetworkStats& after = sim.network_stats();
  const double lost = static_cast<double>(after.lost - before.lost) /
                      static_cast<double>(after.datagrams_sent - before.datagrams_sent);
  EXPECT_NEAR(lost, 0.10, 0.01);
  // No suspicion of a live node outlived the longest suspicion timeout (a refuted suspicion
  // ends well before; an unrefuted one would have become DOWN).
  const membership::Config& c = o.config;
  const Duration longest_timeout = c.suspicion_max_mult * c.suspicion_mult * 2 * c.probe_interval;
  EXPECT_LT(sim.detector_stats().longest_suspicion, longest_timeout);
  // Whatever suspicion is open at the end is refuted soon, even with the loss going on.
  EXPECT_TRUE(sim.RunUntil([&] { return SuspectPairs() == 0; }, 60s))
      << SuspectPairs() << " suspect pairs remain";
  std::printf("false suspicions %llu, longest %.1fs\n",
              static_cast<unsigned long long>(sim.detector_stats().false_suspicions),
              std::chrono::duration<double>(sim.detector_stats().longest_suspicion).count());
}

// Issue 3 at a size a test can afford: datagrams that carry only a few updates each, so that at
// 10% loss the news of false suspicions and their refutations is more than piggybacking can
// carry, as with full-size datagrams at N = 10,000. Each update then gets fewer sends than the
// retransmit limit; no live node may die for it (refutations go first, and retried direct
// pings keep false suspicions rare).
TEST_F(Sim, NoFalseDeathsWhenNewsOutrunsDatagrams) {
  Options o = TestOptions(404);
  o.config.max_datagram_bytes = kSmallDatagramBytes;
  o.tokens_per_node = 0;
  o.check_mode = CheckMode::kSampled;
  o.sample_interval = 100ms;
  o.check_history = true;
  o.fail_on_false_death = true;
  Simulator& sim = Make(o);
  for (int i = 0; i < kSmallDatagramNodes; ++i) sim.AddNode();
  sim.FormCluster();
  sim.RunFor(10s);
  sim.SetLoss(0.10);
  sim.RunFor(300s);
  ASSERT_TRUE(sim.ok());
  EXPECT_EQ(sim.detector_stats().false_deaths, 0u);
  std::uint64_t queued = 0, retired = 0, refutations = 0;
  for (NodeId id : sim.Live()) {
    const membership::Counters& c = sim.Core(id)->counters();
    queued += c.news_queued;
    retired += c.news_retired;
    refutations += c.refutations;
  }
  EXPECT_GT(refutations, 0u);
  std::printf("false suspicions %llu, refutations %llu, news queued %llu, retired %llu\n",
              static_cast<unsigned long long>(sim.detector_stats().false_suspicions),
              static_cast<unsigned long long>(refutations), static_cast<unsigned long long>(queued),
              static_cast<unsigned long long>(retired));
}

// Two halves that cannot reach each other declare each other DOWN; once the partition is gone
// they merge back into one view with everyone UP.
TEST_F(Sim, PartitionIntoHalvesHeals) {
  Simulator& sim = Make(TestOptions(404));
  const std::vector<NodeId> nodes = StartCluster(20);
  const std::vector<NodeId> a(nodes.begin(), nodes.begin() + 10);
  const std::vector<NodeId> b(nodes.begin() + 10, nodes.end());
  sim.Partition(a, b);
  auto each_side_sees_other_down = [&] {
    for (NodeId x : a) {
      for (NodeId y : b) {
        if (!sim.Sees(x, y, Liveness::kDown) || !sim.Sees(y, x, Liveness::kDown)) return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(sim.RunUntil(each_side_sees_other_down, 180s)) << sim.Describe(1);
  // Each side stays healthy on its own.
  for (NodeId x : a) {
    for (NodeId y : a) ASSERT_TRUE(x == y || sim.Sees(x, y, Liveness::kUp)) << sim.Describe(x);
  }
  sim.RunFor(60s);
  sim.Heal();
  EXPECT_TRUE(sim.RunUntil([&] { return sim.Converged(); }, 300s)) << NotConverged();
}

// A node that leaves gracefully is LEFT in every view, not DOWN, and stays LEFT.
TEST_F(Sim, LeavingNodeShowsLeftEverywhere) {
  Options o = TestOptions(505);
  o.fail_on_false_death = true;
  Simulator& sim = Make(o);
  StartCluster(20);
  const NodeId leaver = 5;
  sim.Leave(leaver, 2s);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.AllSee(leaver, Liveness::kLeft); }, 60s))
      << sim.Describe(1);
  sim.RunFor(120s);
  EXPECT_FALSE(sim.IsRunning(leaver));  // stopped after its linger
  EXPECT_TRUE(sim.AllSee(leaver, Liveness::kLeft)) << sim.Describe(1);
  EXPECT_TRUE(sim.Converged()) << NotConverged();
}

// A crashed node that restarts comes back UP everywhere at its new, higher generation, both
// after the cluster declared it DOWN and when it restarts at once.
TEST_F(Sim, RestartedNodeComesBackWithHigherGeneration) {
  Options o = TestOptions(606);
  o.fail_on_false_death = true;
  Simulator& sim = Make(o);
  StartCluster(20);
  const NodeId slow_restart = 3, quick_restart = 9;
  sim.Crash(slow_restart);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.AllSee(slow_restart, Liveness::kDown); }, 120s));
  sim.Restart(slow_restart, 1);
  sim.Restart(quick_restart, 1);
  EXPECT_EQ(sim.Generation(slow_restart), 2u);
  EXPECT_EQ(sim.Generation(quick_restart), 2u);
  // AllSee(kUp) and Converged require the current generation.
  EXPECT_TRUE(sim.RunUntil([&] { return sim.Converged(); }, 120s)) << NotConverged();
  EXPECT_TRUE(sim.AllSee(slow_restart, Liveness::kUp));
  EXPECT_TRUE(sim.AllSee(quick_restart, Liveness::kUp));
}

// A removed node that restarts is refused, stops, and stays REMOVED everywhere.
TEST_F(Sim, RemovedNodeIsRefusedWhenItComesBack) {
  Simulator& sim = Make(TestOptions(707));
  StartCluster(12);
  const NodeId gone = 4;
  sim.Crash(gone);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.AllSee(gone, Liveness::kDown); }, 120s));
  ASSERT_TRUE(sim.Remove(1, gone));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.AllSee(gone, Liveness::kRemoved); }, 60s))
      << sim.Describe(2);
  sim.Restart(gone, 2);
  EXPECT_TRUE(sim.RunUntil([&] { return sim.WasRefused(gone); }, 60s));
  sim.RunFor(30s);
  EXPECT_FALSE(sim.IsRunning(gone));
  EXPECT_TRUE(sim.AllSee(gone, Liveness::kRemoved)) << sim.Describe(2);
}

// Random faults drawn from the seed, FoundationDB style: for about five simulated minutes, every
// few seconds one of crash, restart, partition, heal, loss change, slow node or leave, with the
// invariants checked at every call. Once the faults stop and the crashed nodes restart, the
// cluster must converge: every live node UP in every view, every node that left LEFT. Runs 20
// seeds, 909 to 928 (or only KV_SIM_SEED when set).
TEST_F(Sim, RandomFaultsThenHeal) {
  const bool one_seed = std::getenv("KV_SIM_SEED") != nullptr;
  for (std::uint64_t run = 0; run < (one_seed ? 1u : 20u) && !HasFatalFailure(); ++run) {
    Simulator& sim = Make(TestOptions(909 + run));
    SCOPED_TRACE(sim.options().replay_command);
    const std::vector<NodeId> nodes = StartCluster(16);
    std::mt19937_64 rng(Mix(sim.seed()));
    auto pick = [&rng](const std::vector<NodeId>& v) { return v[rng() % v.size()]; };
    std::vector<NodeId> left;
    bool cut = false;  // a partition is in place
    auto crashed = [&] {
      std::vector<NodeId> out;
      for (NodeId id : nodes) {
        if (!sim.IsRunning(id) && std::find(left.begin(), left.end(), id) == left.end()) {
          out.push_back(id);
        }
      }
      return out;
    };
    for (int step = 0; step < 60 && sim.ok(); ++step) {
      const std::vector<NodeId> live = sim.Live();
      switch (rng() % 7) {
        case 0:
          if (live.size() > 8) sim.Crash(pick(live));
          break;
        case 1:
          if (!crashed().empty()) sim.Restart(pick(crashed()), pick(live));
          break;
        case 2: {  // about a third of the nodes cut off from the rest
          std::vector<NodeId> a, b;
          for (NodeId id : nodes) (rng() % 3 == 0 ? a : b).push_back(id);
          sim.Partition(a, b);
          cut = true;
          break;
        }
        case 3:
          sim.Heal();
          cut = false;
          break;
        case 4:
          sim.SetLoss(static_cast<double>(rng() % 5) * 0.05);
          break;
        case 5:
          sim.SetSlow(pick(nodes), std::chrono::milliseconds(rng() % 3000));
          break;
        case 6:
          // Not while cut off: a node that leaves unheard is rightly DOWN, not LEFT. It lingers
          // 2 s and nothing else happens before it is gone.
          if (left.size() < 2 && live.size() > 8 && !cut) {
            const NodeId id = pick(live);
            sim.Leave(id, 2s);
            left.push_back(id);
            sim.RunFor(2s);
          }
          break;
      }
      sim.RunFor(std::chrono::milliseconds(1000 + rng() % 9000));
    }
    sim.Heal();
    sim.SetLoss(0);
    for (NodeId id : nodes) sim.SetSlow(id, 0us);
    for (NodeId id : crashed()) sim.Restart(id, pick(sim.Live()));
    auto settled = [&] {
      if (!sim.Converged()) return false;
      for (NodeId id : left) {
        if (!sim.AllSee(id, Liveness::kLeft)) return false;
      }
      return true;
    };
    auto left_views = [&] {
      std::string out;
      for (NodeId id : left) {
        for (NodeId o : sim.Live()) {
          const MemberView* m = sim.View(o).Find(id);
          if (m == nullptr || m->liveness != Liveness::kLeft) {
            out += "; node " + std::to_string(o) + " sees left node " + std::to_string(id) +
                   (m == nullptr
                        ? std::string(" nowhere")
                        : std::string(" ") + Name(m->liveness) + "@" +
                              std::to_string(m->generation) + "." + std::to_string(m->incarnation));
          }
        }
      }
      return out;
    };
    EXPECT_TRUE(sim.RunUntil(settled, 300s)) << NotConverged() << left_views();
    EXPECT_EQ(sim.Live().size(), nodes.size() - left.size());
    if (HasFailure()) break;
  }
}

// A run with loss, reordering, a crash, a partition, a restart and a leave, reduced to digests
// of every delivered message and of the final views.
std::tuple<std::uint64_t, std::uint64_t, std::uint64_t> Scenario(Options o) {
  o.network.loss = 0.05;
  o.network.max_delay = 5ms;  // wide jitter: much reordering
  Simulator sim(o);
  const NodeId seed = sim.AddNode();
  for (int i = 0; i < 11; ++i) sim.AddAndJoin(seed);
  sim.RunFor(20s);
  sim.Crash(6);
  sim.SetSlow(8, 1500ms);
  sim.Partition({1, 2, 3}, {9, 10, 11, 12});
  sim.RunFor(30s);
  sim.Heal();
  sim.Restart(6, 2);
  sim.Leave(12, 2s);
  sim.RunFor(60s);
  EXPECT_TRUE(sim.ok()) << sim.failure();
  EXPECT_GT(sim.network_stats().delivered, 1000u);
  return {sim.digest(), sim.ViewsDigest(), sim.network_stats().delivered};
}

TEST_F(Sim, SameSeedReplaysBitForBit) {
  const Options o = TestOptions(808);
  const auto first = Scenario(o);
  const auto second = Scenario(o);
  EXPECT_EQ(first, second);
  Options other = o;
  other.seed = o.seed + 1;
  const auto third = Scenario(other);
  EXPECT_NE(std::get<0>(first), std::get<0>(third)) << "the digest does not depend on the seed";
}

// ---- Forgetting (membership.h, "Forgetting" and "Removal").

// Short bounds so that a test sees them pass: forget after a minute, ghosts for five, tombstones
// for ten.
Options ForgetOptions(Options o) {
  o.config.forget_after = 60s;
  o.config.ghost_ttl = 5min;
  o.config.removed_ttl = 10min;
  return o;
}

// The first of `ids` that `observer` still holds, if any.
std::optional<NodeId> StillKnown(const Simulator& sim, NodeId observer,
                                 const std::vector<NodeId>& ids) {
  for (NodeId id : ids) {
    if (sim.Lookup(observer, id)) return id;
  }
  return std::nullopt;
}

// 1,000 nodes come and go through a core of 20: in each of ten waves 75 nodes join with tokens
// and 25 would-be joiners without; then 40 of the 75 leave, 25 crash and are removed, the 25
// joiners crash (DOWN without tokens) and 10 stay. Once forget_after has passed, every survivor
// holds the survivors alone; once the ghosts' and tombstones' times have passed, nothing else.
TEST_F(Sim, ChurnOfAThousandNodesLeavesBoundedTables) {
  Options o = ForgetOptions(TestOptions(1401));
  o.check_mode = CheckMode::kSampled;
  o.sample_interval = 1s;
  Simulator& sim = Make(o);
  const std::vector<NodeId> core = StartCluster(20);
  std::mt19937_64 rng(Mix(sim.seed()));
  auto any_core = [&] { return core[rng() % core.size()]; };
  auto largest_table = [&] {
    std::size_t most = 0;
    for (NodeId id : sim.Live()) most = std::max(most, sim.Core(id)->table_stats().members);
    return most;
  };
  std::size_t peak = 0;
  std::size_t removed = 0;
  for (int wave = 0; wave < 10 && !HasFatalFailure(); ++wave) {
    std::vector<NodeId> normal, joiners;
    for (int k = 0; k < 75; ++k) normal.push_back(sim.AddAndJoin(any_core()));
    for (int k = 0; k < 25; ++k) {
      joiners.push_back(sim.AddJoiner());
      sim.Join(joiners.back(), any_core());
    }
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Converged(); }, 180s)) << NotConverged();
    peak = std::max(peak, largest_table());
    std::vector<NodeId> to_remove;
    for (int k = 0; k < 40; ++k) sim.Leave(normal[k], 5s);
    for (int k = 40; k < 65; ++k) {
      sim.Crash(normal[k]);
      to_remove.push_back(normal[k]);
    }
    for (NodeId j : joiners) sim.Crash(j);
    const NodeId remover = core[0];
    ASSERT_TRUE(sim.RunUntil(
        [&] {
          return std::all_of(to_remove.begin(), to_remove.end(),
                             [&](NodeId id) { return sim.Sees(remover, id, Liveness::kDown); });
        },
        300s))
        << sim.Describe(remover);
    for (NodeId id : to_remove) ASSERT_TRUE(sim.Remove(remover, id)) << id;
    removed += to_remove.size();
    sim.RunFor(10s);
    peak = std::max(peak, largest_table());
  }
  ASSERT_EQ(sim.size(), 1020u);
  const std::vector<NodeId> live = sim.Live();
  ASSERT_EQ(live.size(), 120u);
  // Every member gone from the ring is forgotten a minute (and a sweep) after it went.
  const bool forgot = sim.RunUntil(
      [&] {
        return std::all_of(live.begin(), live.end(), [&](NodeId id) {
          return sim.Core(id)->table_stats().members == live.size();
        });
      },
      300s);
  std::size_t ghosts = 0, tombstones = 0;
  for (NodeId id : live) {
    const membership::TableStats t = sim.Core(id)->table_stats();
    EXPECT_EQ(t.members, live.size()) << "node " << id << ": " << sim.Describe(id);
    EXPECT_LE(t.tombstones, removed) << "node " << id;  // the earliest may have expired
    ghosts = std::max(ghosts, t.ghosts);
    tombstones = std::max(tombstones, t.tombstones);
  }
  ASSERT_TRUE(forgot);
  std::printf("churn of %zu nodes: largest table %zu members during the waves, %zu after "
              "forget_after (at most %zu tombstones of %zu removals, %zu ghosts)\n",
              sim.size(), peak, largest_table(), tombstones, removed, ghosts);
  // Ghosts (5 min) and tombstones (10 min) expire too, and stay expired: every node drops a
  // tombstone at the same age, so no node brings one back.
  EXPECT_TRUE(sim.RunUntil(
      [&] {
        return std::all_of(live.begin(), live.end(), [&](NodeId id) {
          const membership::TableStats t = sim.Core(id)->table_stats();
          return t.tombstones == 0 && t.ghosts == 0;
        });
      },
      15min));
  sim.RunFor(2min);
  for (NodeId id : live) {
    const membership::TableStats t = sim.Core(id)->table_stats();
    EXPECT_EQ(t.members, live.size()) << "node " << id;
    EXPECT_EQ(t.tombstones, 0u) << "node " << id;
    EXPECT_EQ(t.ghosts, 0u) << "node " << id;
    EXPECT_TRUE(sim.Core(id)->Removed().empty()) << "node " << id;
    EXPECT_GT(sim.Core(id)->counters().forgotten, 0u) << "node " << id;
  }
  EXPECT_TRUE(sim.Converged()) << NotConverged();
}

// A node partitioned away while the others forget a LEFT member, a REMOVED one and a joiner
// that died still holds them when the partition heals (and the members DOWN with tokens on
// either side are never forgotten). Its stale gossip must not bring them
// back: the simulator fails the run if any view shows a LEFT member otherwise in the same
// generation or a REMOVED one otherwise; nobody holds them again; the stale node learns how
// they ended and forgets them in turn; and the removed node, forgotten, is still refused.
TEST_F(Sim, ForgottenMembersDoNotComeBackThroughStaleGossip) {
  Simulator& sim = Make(ForgetOptions(TestOptions(1402)));
  StartCluster(9);
  const NodeId joiner = sim.AddJoiner();
  sim.Join(joiner, 1);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Converged(); }, 120s)) << NotConverged();
  const NodeId stale = 9, leaver = 8, removed = 7;
  const std::vector<NodeId> gone = {leaver, removed, joiner};
  const std::vector<NodeId> others = {1, 2, 3, 4, 5, 6};
  std::vector<NodeId> all_but_stale = others;
  all_but_stale.insert(all_but_stale.end(), gone.begin(), gone.end());
  sim.Partition({stale}, all_but_stale);
  sim.Leave(leaver, 5s);
  sim.Crash(removed);
  sim.Crash(joiner);
  ASSERT_TRUE(sim.RunUntil(
      [&] { return sim.Sees(1, removed, Liveness::kDown) && sim.Sees(1, joiner, Liveness::kDown); },
      180s))
      << sim.Describe(1);
  ASSERT_TRUE(sim.Remove(1, removed));
  ASSERT_TRUE(sim.RunUntil(
      [&] {
        return std::all_of(others.begin(), others.end(),
                           [&](NodeId o) { return !StillKnown(sim, o, gone); });
      },
      300s))
      << sim.Describe(1);
  // The stale node never heard: it holds the leaver and the removed node DOWN, with tokens
  // (alone, it takes its suspicions' longest timeout).
  ASSERT_TRUE(sim.RunUntil(
      [&] {
        return sim.Sees(stale, leaver, Liveness::kDown) &&
               sim.Sees(stale, removed, Liveness::kDown);
      },
      180s))
      << sim.Describe(stale);
  // A DOWN member that owns tokens is never forgotten, however long it stays DOWN.
  sim.RunFor(2 * sim.options().config.forget_after);
  for (NodeId o : all_but_stale) {
    if (o == joiner) continue;
    EXPECT_TRUE(sim.Sees(stale, o, Liveness::kDown)) << o << ": " << sim.Describe(stale);
  }
  for (NodeId o : others) EXPECT_TRUE(sim.Sees(o, stale, Liveness::kDown)) << sim.Describe(o);

  sim.Heal();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Converged(); }, 180s)) << NotConverged();
  EXPECT_TRUE(sim.RunUntil(
      [&] {
        return sim.Sees(stale, leaver, Liveness::kLeft) &&
               sim.Sees(stale, removed, Liveness::kRemoved);
      },
      120s))
      << sim.Describe(stale);
  // Push-pull rounds go by both ways while the stale node still holds them.
  sim.RunFor(40s);
  std::uint64_t refused = 0;
  for (NodeId o : others) {
    EXPECT_EQ(StillKnown(sim, o, gone), std::nullopt) << "node " << o << ": " << sim.Describe(o);
    refused += sim.Core(o)->counters().dropped_forgotten;
  }
  EXPECT_GT(refused, 0u) << "the stale node's gossip never reached a ghost";
  EXPECT_TRUE(sim.RunUntil(
      [&] {
        const std::vector<NodeId> now_live = sim.Live();
        return std::all_of(now_live.begin(), now_live.end(),
                           [&](NodeId o) { return !StillKnown(sim, o, gone); });
      },
      300s))
      << sim.Describe(stale);
  // Forgotten, the removed node is still refused when it comes back (its tombstone lives on).
  sim.Restart(removed, 2);
  EXPECT_TRUE(sim.RunUntil([&] { return sim.WasRefused(removed); }, 60s));
  EXPECT_EQ(StillKnown(sim, 1, {removed}), std::nullopt);
}

// A node down across the moment a tombstone expires keeps its age while it is down (kvd
// persists when each id was removed): restarted after the expiry, it drops the tombstone at
// once instead of bringing it back to a cluster that has forgotten it, for another removed_ttl.
TEST_F(Sim, ANodeDownWhileATombstoneExpiresDoesNotBringItBack) {
  Simulator& sim = Make(ForgetOptions(TestOptions(1403)));
  const std::vector<NodeId> ids = StartCluster(5);
  const NodeId removed = ids[4], sleeper = ids[3];
  sim.Crash(removed);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Sees(ids[0], removed, Liveness::kDown); }, 120s));
  ASSERT_TRUE(sim.Remove(ids[0], removed));
  auto holds = [&](NodeId o) { return sim.Core(o)->table_stats().tombstones > 0; };
  ASSERT_TRUE(sim.RunUntil([&] { return holds(ids[1]) && holds(ids[2]) && holds(sleeper); },
                           60s));
  sim.Crash(sleeper);
  // The others drop it at removed_ttl (10 min); the sleeper is down until well after.
  sim.RunFor(12min);
  for (NodeId o : {ids[0], ids[1], ids[2]}) ASSERT_FALSE(holds(o)) << sim.Describe(o);
  sim.Restart(sleeper, ids[0]);
  EXPECT_FALSE(holds(sleeper)) << "restored an expired tombstone";
  sim.RunFor(60s);
  for (NodeId o : {ids[0], ids[1], ids[2], sleeper}) {
    EXPECT_FALSE(holds(o)) << "node " << o << ": " << sim.Describe(o);
  }
}

}  // namespace
}  // namespace kv::sim
