// Small clusters of Membership cores driven in-process: a hand-rolled router with a fixed
// latency and a manual clock. No sockets, no sleeps, no threads; every run is a function of its
// seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "membership/lifeguard.h"
#include "membership/membership.h"
#include "membership/wire.h"

namespace kv::membership {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Endpoint EndpointOf(NodeId id) {
  return Endpoint{0x0a000000u + static_cast<std::uint32_t>(id), 7946};
}

AppState AppOf(NodeId id, std::size_t tokens = 4) {
  AppState app;
  // Ring tokens are hashes: all 64 bits busy, so they do not pack (a token costs 9 bytes).
  for (std::size_t i = 0; i < tokens; ++i) {
    std::uint64_t z = id * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 1;
    z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
    app.tokens.push_back(z | 0x0101010101010101ull);
  }
  std::sort(app.tokens.begin(), app.tokens.end());
  app.state = NodeState::kNormal;
  app.rack = "rack" + std::to_string(id % 2);
  app.rpc_address = "10.0.0." + std::to_string(id) + ":9000";
  return app;
}

// A message on its way. Ordered by delivery time, then by send order.
struct InFlight {
  Time at;
  std::uint64_t seq;
  NodeId from;
  Endpoint to;
  std::string bytes;
  bool stream;
  bool operator>(const InFlight& o) const { return std::pair(at, seq) > std::pair(o.at, o.seq); }
};

class Cluster {
 public:
  explicit Cluster(Config config, std::uint64_t seed = 1)
      : config_(std::move(config)), seed_(seed) {}

  // Starts node `id` at `generation`; it joins through `seeds` (ids) if any.
  void Start(NodeId id, std::vector<NodeId> seeds = {}, std::uint64_t generation = 1,
             std::optional<AppState> app = std::nullopt) {
    Node& n = nodes_[id];
    n.running = true;
    n.core = std::make_unique<Membership>(config_, id, EndpointOf(id), generation,
                                          app ? *app : AppOf(id),
                                          seed_ * 1000 + id * 10 + generation, now_);
    n.core->RestoreRemoved(n.persisted_removed);
    std::vector<Endpoint> eps;
    for (NodeId s : seeds) eps.push_back(EndpointOf(s));
    if (!eps.empty()) n.core->Join(eps, now_);
    Drain(id);
  }
  // The process dies: no more ticks, nothing delivered to it. Tombstones persist (like kvd).
  void Crash(NodeId id) {
    Node& n = nodes_.at(id);
    n.persisted_removed = n.core->Removed();
    n.running = false;
  }
  Membership& node(NodeId id) { return *nodes_.at(id).core; }
  Time now() const { return now_; }

  // Drops every message from `a` to `b` while set.
  void Block(NodeId a, NodeId b) { blocked_.insert({a, b}); }
  void Unblock(NodeId a, NodeId b) { blocked_.erase({a, b}); }
  void Isolate(NodeId a) {
    for (const auto& [id, n] : nodes_) {
      if (id != a) {
        Block(a, id);
        Block(id, a);
      }
    }
  }
  void Heal() { blocked_.clear(); }

  // Runs the event loop until now + d. `on_step` runs after every event.
  void RunFor(Duration d) { RunUntil(now_ + d); }
  void RunUntil(Time end) {
    for (int guard = 0; guard < 10'000'000; ++guard) {
      Time t = end;
      if (!wire_.empty()) t = std::min(t, wire_.top().at);
      for (const auto& [id, n] : nodes_) {
        if (n.running) t = std::min(t, n.core->NextDeadline());
      }
      if (t < now_) {
        ADD_FAILURE() << "a deadline in the past: " << t.count() << " < " << now_.count();
        t = now_;
      }
      now_ = t;
      while (!wire_.empty() && wire_.top().at <= now_) {
        InFlight m = wire_.top();
        wire_.pop();
        Deliver(m);
      }
      for (auto& [id, n] : nodes_) {
        if (n.running && n.core->NextDeadline() <= now_) {
          n.core->Tick(now_);
          Drain(id);
          if (n.core->NextDeadline() <= now_ && !n.core->refused()) {
            ADD_FAILURE() << "node " << id << " did not move its deadline past now";
            return;
          }
        }
      }
      if (on_step) on_step();
      if (now_ >= end) return;
    }
    ADD_FAILURE() << "event loop did not finish";
  }

  // Runs until pred() holds or `limit` passes; returns whether it held.
  bool RunUntilTrue(const std::function<bool()>& pred, Duration limit) {
    const Time end = now_ + limit;
    while (now_ < end) {
      if (pred()) return true;
      RunUntil(std::min(end, now_ + milliseconds(100)));
    }
    return pred();
  }

  // What `observer` believes of `subject` (nullopt: never heard of it).
  std::optional<MemberView> ViewOf(NodeId observer, NodeId subject) const {
    const ClusterView v = nodes_.at(observer).core->View(now_);
    const MemberView* m = v.Find(subject);
    if (m == nullptr) return std::nullopt;
    return *m;
  }
  std::optional<Liveness> LivenessOf(NodeId observer, NodeId subject) const {
    auto m = ViewOf(observer, subject);
    if (!m) return std::nullopt;
    return m->liveness;
  }
  // Every running node other than `subject` sees it as `l`.
  bool AllSee(NodeId subject, Liveness l) const {
    for (const auto& [id, n] : nodes_) {
      if (id == subject || !n.running) continue;
      if (LivenessOf(id, subject) != l) return false;
    }
    return true;
  }
  // Every running node sees every running node UP, itself included, with its current
  // generation and application state.
  bool Converged() const {
    for (const auto& [obs, n] : nodes_) {
      if (!n.running) continue;
      for (const auto& [sub, s] : nodes_) {
        if (!s.running) continue;
        auto v = ViewOf(obs, sub);
        auto truth = ViewOf(sub, sub);
        if (!v || v->liveness != Liveness::kUp || v->generation != truth->generation ||
            v->app != truth->app || v->app_version != truth->app_version) {
          return false;
        }
      }
    }
    return true;
  }

  std::function<void()> on_step;
  // Sees (and may drop, by returning false) every message as it is sent.
  std::function<bool(NodeId from, const Outgoing&)> on_send;

  std::size_t largest_datagram = 0;
  std::uint64_t datagrams = 0;
  std::uint64_t streams = 0;
  std::uint64_t delivered_hash = 1469598103934665603ull;  // FNV-1a of everything delivered

 private:
  struct Node {
    std::unique_ptr<Membership> core;
    bool running = false;
    std::vector<NodeId> persisted_removed;
  };

  void Drain(NodeId from) {
    for (Outgoing& o : nodes_.at(from).core->TakeOutgoing()) {
      if (o.stream) {
        ++streams;
      } else {
        ++datagrams;
        largest_datagram = std::max(largest_datagram, o.bytes.size());
      }
      if (on_send && !on_send(from, o)) continue;
      const Duration latency = o.stream ? milliseconds(2) : milliseconds(1);
      wire_.push(InFlight{now_ + latency, next_seq_++, from, o.to, std::move(o.bytes), o.stream});
    }
  }

  void Deliver(const InFlight& m) {
    const NodeId to = m.to.ip - 0x0a000000u;
    auto it = nodes_.find(to);
    if (it == nodes_.end() || !it->second.running || m.to.port != 7946) return;
    if (blocked_.count({m.from, to}) != 0) return;
    for (unsigned char c : m.bytes) delivered_hash = (delivered_hash ^ c) * 1099511628211ull;
    delivered_hash = (delivered_hash ^ to) * 1099511628211ull;
    // A stream arrives from an ephemeral port, as an accepted TCP connection reports it.
    Endpoint from = EndpointOf(m.from);
    if (m.stream) from.port = 40000;
    it->second.core->Receive(from, m.bytes, m.stream, now_);
    Drain(to);
  }

  Config config_;
  std::uint64_t seed_;
  Time now_ = seconds(1000);
  std::map<NodeId, Node> nodes_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> wire_;
  std::uint64_t next_seq_ = 0;
  std::set<std::pair<NodeId, NodeId>> blocked_;
};

// Starts nodes 1..n, all joining through node 1.
void StartAll(Cluster& c, NodeId n) {
  c.Start(1);
  for (NodeId id = 2; id <= n; ++id) c.Start(id, {1});
}

std::optional<wire::Message> DecodeOut(const Outgoing& o) {
  wire::Message m;
  if (wire::Decode(o.bytes, wire::kStreamTraversalWords, &m) != wire::DecodeResult::kOk) {
    return std::nullopt;
  }
  return m;
}

// ------------------------------------------------------------------------------------------

TEST(MembershipCluster, JoinThroughOneSeed) {
  Cluster c(Config{});
  StartAll(c, 5);
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  for (NodeId obs = 1; obs <= 5; ++obs) {
    const ClusterView v = c.node(obs).View(c.now());
    ASSERT_EQ(v.members.size(), 5u);
    EXPECT_EQ(v.self, obs);
    for (NodeId id = 1; id <= 5; ++id) {
      EXPECT_EQ(v.members[id - 1].id, id);  // sorted by id
      EXPECT_EQ(v.members[id - 1].app, AppOf(id));
      EXPECT_EQ(v.members[id - 1].gossip, EndpointOf(id));
    }
  }
  // Nobody was ever wrongly accused on a clean network.
  c.RunFor(seconds(30));
  EXPECT_TRUE(c.Converged());
  for (NodeId id = 1; id <= 5; ++id) EXPECT_EQ(c.ViewOf(id, id)->incarnation, 0u);
}

// Application states are kept packed, and replaced ones are compacted away now and then: many
// updates with states of changing sizes must leave every view with exactly the latest ones.
// Lookup and ForEachMember agree with View.
TEST(MembershipCluster, ManyAppUpdatesKeepEveryViewExact) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  AppState last3, last4;
  for (int round = 0; round < 300; ++round) {
    last3 = AppOf(3, 1 + round % 40);  // up to 40 tokens: several kilobytes of garbage
    last3.load_bytes = static_cast<std::uint64_t>(round) << 20;
    last4 = AppOf(4, 40 - round % 40);
    last4.rack = std::string(static_cast<std::size_t>(round % 50), 'r');
    c.node(3).UpdateApp(last3, c.now());
    c.node(4).UpdateApp(last4, c.now());
    c.RunFor(milliseconds(300));
  }
  ASSERT_TRUE(c.RunUntilTrue(
      [&] {
        for (NodeId obs = 1; obs <= 4; ++obs) {
          if (c.ViewOf(obs, 3)->app != last3 || c.ViewOf(obs, 4)->app != last4) return false;
        }
        return true;
      },
      seconds(120)));
  for (NodeId obs = 1; obs <= 4; ++obs) {
    const ClusterView v = c.node(obs).View(c.now());
    ASSERT_EQ(v.members.size(), 4u);
    for (NodeId id = 1; id <= 4; ++id) {
      const AppState want = id == 3 ? last3 : id == 4 ? last4 : AppOf(id);
      EXPECT_EQ(v.members[id - 1].app, want) << "observer " << obs << ", member " << id;
      const std::optional<MemberView> one = c.node(obs).Lookup(id, c.now());
      ASSERT_TRUE(one.has_value());
      EXPECT_EQ(one->app, want);
      EXPECT_EQ(one->incarnation, v.members[id - 1].incarnation);
    }
    EXPECT_FALSE(c.node(obs).Lookup(99, c.now()).has_value());
    std::vector<NodeId> walked;
    c.node(obs).ForEachMember(c.now(), [&](const MemberView& m) {
      walked.push_back(m.id);
      EXPECT_EQ(m.app, AppState{});  // left out
      EXPECT_EQ(m.generation, v.members[m.id - 1].generation);
      EXPECT_EQ(m.liveness, v.members[m.id - 1].liveness);
      return true;
    });
    EXPECT_EQ(walked, (std::vector<NodeId>{1, 2, 3, 4}));
  }
}

// Restored members are known at once and then behave as any member: a crash among them is still
// detected. Self, removed ids and members already known are skipped.
TEST(MembershipCluster, RestoredMembersFormAClusterWithoutJoinNews) {
  Cluster c(Config{});
  for (NodeId id = 1; id <= 5; ++id) c.Start(id);  // nobody joins anybody
  std::vector<MemberView> all;
  for (NodeId id = 1; id <= 5; ++id) all.push_back(*c.node(id).Lookup(id, c.now()));
  MemberView stranger = all[0];
  stranger.id = 9;
  all.push_back(stranger);
  c.node(2).RestoreRemoved({9});
  for (NodeId id = 1; id <= 5; ++id) c.node(id).RestoreMembers(all, c.now());
  c.node(3).RestoreMembers(all, c.now());  // again: nothing new
  EXPECT_TRUE(c.Converged());
  EXPECT_EQ(c.node(1).View(c.now()).members.size(), 6u);  // the stranger too: restored as is
  EXPECT_EQ(c.node(2).View(c.now()).members.size(), 5u);  // removed there
  EXPECT_EQ(c.node(3).View(c.now()).members.size(), 6u);
  for (NodeId id = 1; id <= 5; ++id) EXPECT_EQ(c.ViewOf(4, id)->app, AppOf(id));
  c.Crash(5);
  EXPECT_TRUE(c.RunUntilTrue(
      [&] {
        for (NodeId obs = 1; obs <= 4; ++obs) {
          if (c.LivenessOf(obs, 5) != Liveness::kDown) return false;
        }
        return true;
      },
      seconds(60)));
}

TEST(MembershipCluster, JoinRetriesUntilTheSeedAnswers) {
  Config config;
  config.join_retry_interval = seconds(2);
  Cluster c(config);
  c.Start(1);
  c.Block(2, 1);  // the seed is unreachable at first
  c.Start(2, {1});
  c.RunFor(seconds(5));
  EXPECT_FALSE(c.ViewOf(2, 1).has_value());
  c.Heal();
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(5)));
}

TEST(MembershipCluster, PhiGrowsWhileAPeerIsSilent) {
  Cluster c(Config{});
  StartAll(c, 3);
  c.RunFor(seconds(30));
  ASSERT_TRUE(c.Converged());
  const double before = c.ViewOf(1, 2)->phi;
  EXPECT_EQ(c.ViewOf(1, 1)->phi, 0);
  c.Crash(2);
  c.RunFor(seconds(10));
  const double after = c.ViewOf(1, 2)->phi;
  EXPECT_LT(before, 3);
  EXPECT_GT(after, before + 1);
}

TEST(MembershipCluster, CrashGoesDownEverywhereAndStaysInTheView) {
  Cluster c(Config{});
  StartAll(c, 5);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.Crash(3);
  const Time crashed = c.now();
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.AllSee(3, Liveness::kDown); }, seconds(60)));
  // Confirmations from independent members shrink the suspicion timeout well below its start
  // (24 s with these defaults): this fails if confirmations are not counted.
  EXPECT_LT(c.now() - crashed, seconds(20));
  c.RunFor(seconds(60));
  EXPECT_TRUE(c.AllSee(3, Liveness::kDown));
  for (NodeId id : {1, 2, 4, 5}) EXPECT_EQ(c.node(id).View(c.now()).members.size(), 5u);
}

TEST(MembershipCluster, LeaveShowsLeftNeverDown) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  bool ever_down = false;
  c.on_step = [&] {
    for (NodeId obs : {1, 2, 3}) ever_down |= c.LivenessOf(obs, 4) == Liveness::kDown;
  };
  c.node(4).Leave(c.now());
  EXPECT_EQ(c.ViewOf(4, 4)->liveness, Liveness::kLeft);
  EXPECT_EQ(c.ViewOf(4, 4)->app.state, NodeState::kLeft);
  c.RunFor(seconds(2));  // linger a few gossip rounds, then stop
  c.Crash(4);
  c.RunFor(seconds(120));
  EXPECT_TRUE(c.AllSee(4, Liveness::kLeft));
  for (NodeId obs : {1, 2, 3}) EXPECT_EQ(c.ViewOf(obs, 4)->app.state, NodeState::kLeft);
  EXPECT_FALSE(ever_down);
  // The others still see each other UP.
  for (NodeId a : {1, 2, 3}) {
    for (NodeId b : {1, 2, 3}) EXPECT_EQ(c.LivenessOf(a, b), Liveness::kUp);
  }
}

TEST(MembershipCluster, RestartWithHigherGenerationIsUpAgain) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.Crash(2);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.AllSee(2, Liveness::kDown); }, seconds(60)));
  AppState app = AppOf(2, 6);
  app.rack = "new-rack";
  c.Start(2, {3}, /*generation=*/2, app);
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  for (NodeId obs : {1, 3, 4}) {
    EXPECT_EQ(c.ViewOf(obs, 2)->generation, 2u);
    EXPECT_EQ(c.ViewOf(obs, 2)->app.rack, "new-rack");
  }
}

// A node started on a data directory restored from an older copy comes back with a generation
// the others have seen already: it learns of the later life, takes a generation above it, says
// it was restored, and is UP again everywhere (not ignored as a previous life).
TEST(MembershipCluster, ARestoredNodeRaisesItsGenerationAboveTheLaterLife) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.Crash(2);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.AllSee(2, Liveness::kDown); }, seconds(60)));
  c.Start(2, {3}, /*generation=*/5, AppOf(2, 6));  // the lives it went on to live
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  EXPECT_FALSE(c.node(2).View(c.now()).self_restored);
  c.Crash(2);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.AllSee(2, Liveness::kDown); }, seconds(60)));
  c.Start(2, {3}, /*generation=*/3, AppOf(2, 6));  // restored: its copy says generation 2
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  const ClusterView v = c.node(2).View(c.now());
  EXPECT_TRUE(v.self_restored);
  ASSERT_NE(v.Find(2), nullptr);
  EXPECT_EQ(v.Find(2)->generation, 6u);
  for (NodeId obs : {1, 3, 4}) {
    EXPECT_EQ(c.ViewOf(obs, 2)->generation, 6u);
    EXPECT_EQ(c.LivenessOf(obs, 2), Liveness::kUp);
  }
}

// A node restarted on a copy of its data directory bumps to the generation its id lived on with
// after the copy was made: the cluster knows that generation with another dot life. It learns
// so, and raises its generation above.
TEST(MembershipCluster, ARestoredNodeAtTheSameGenerationSeesTheOtherDotLife) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.Crash(2);
  c.Start(2, {3}, /*generation=*/5, AppOf(2, 6));
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  AppState lived_on = AppOf(2, 6);
  lived_on.dots_life = 77;  // it resumed its saved life
  c.node(2).UpdateApp(lived_on, c.now());
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.ViewOf(3, 2)->app == lived_on; }, seconds(10)));
  c.Crash(2);
  AppState copy = AppOf(2, 6);
  copy.dots_life = 88;  // a fresh life, with the same generation the copy bumps to
  c.Start(2, {3}, /*generation=*/5, copy);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.node(2).View(c.now()).synced; }, seconds(10)));
  EXPECT_TRUE(c.node(2).View(c.now()).self_restored);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  for (NodeId obs : {1, 3, 4}) {
    EXPECT_EQ(c.ViewOf(obs, 2)->generation, 6u);
    EXPECT_EQ(c.ViewOf(obs, 2)->app.dots_life, 88u);
  }
  // An ordinary restart (a higher generation) is not taken for a restore.
  c.Crash(2);
  c.Start(2, {3}, /*generation=*/7, copy);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  EXPECT_FALSE(c.node(2).View(c.now()).self_restored);
}

// A member cut off for less than the suspicion timeout hears that it is suspected, refutes with
// a higher incarnation, and is never declared DOWN.
TEST(MembershipCluster, SuspectedLiveNodeRefutesAndStaysUp) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  bool suspected = false;
  bool down = false;
  c.on_step = [&] {
    for (NodeId obs : {1, 2, 3}) {
      suspected |= c.LivenessOf(obs, 4) == Liveness::kSuspect;
      down |= c.LivenessOf(obs, 4) == Liveness::kDown;
    }
  };
  c.Isolate(4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return suspected; }, seconds(10)));
  c.RunFor(seconds(1));
  c.Heal();
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(20)));
  EXPECT_GE(c.ViewOf(4, 4)->incarnation, 1u);
  // Everyone ends with its latest refutation (it may have had to refute more than once).
  EXPECT_TRUE(c.RunUntilTrue(
      [&] {
        for (NodeId obs : {1, 2, 3}) {
          if (c.ViewOf(obs, 4)->incarnation != c.ViewOf(4, 4)->incarnation) return false;
        }
        return true;
      },
      seconds(40)));
  EXPECT_FALSE(down);
}

// A crafted accusation goes straight to the accused: it outbids it and tells the accuser.
TEST(MembershipCluster, AccusationIsRefutedDirectly) {
  Cluster c(Config{});
  StartAll(c, 3);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  wire::Message m;
  m.cluster = Config{}.cluster_name;
  m.sender = 2;
  m.generation = 1;
  m.incarnation = c.ViewOf(2, 2)->incarnation;
  m.endpoint = EndpointOf(2);
  m.kind = wire::Kind::kGossip;
  wire::Update u;
  u.id = 1;
  u.endpoint = EndpointOf(1);
  u.generation = 1;
  u.incarnation = 0;
  u.liveness = Liveness::kDown;
  u.from = 2;
  m.updates = {u};
  c.node(1).Receive(EndpointOf(2), wire::Encode(m), false, c.now());
  EXPECT_EQ(c.ViewOf(1, 1)->incarnation, 1u);
  EXPECT_EQ(c.ViewOf(1, 1)->liveness, Liveness::kUp);
  const auto out = c.node(1).TakeOutgoing();
  bool told = false;
  for (const Outgoing& o : out) {
    auto d = DecodeOut(o);
    ASSERT_TRUE(d.has_value());
    if (o.to != EndpointOf(2)) continue;
    for (const wire::Update& x : d->updates) {
      told |= x.id == 1 && x.incarnation == 1 && x.liveness == Liveness::kUp;
    }
  }
  EXPECT_TRUE(told);
}

TEST(MembershipCluster, StaleClaimsAreIgnored) {
  Cluster c(Config{});
  StartAll(c, 3);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  // Node 3 refutes once, so that incarnation 0 is stale for it.
  c.node(3).UpdateApp(AppOf(3, 8), c.now());
  {
    wire::Message m;
    m.cluster = "kv";
    m.sender = 2;
    m.generation = 1;
    m.endpoint = EndpointOf(2);
    m.kind = wire::Kind::kGossip;
    wire::Update u;
    u.id = 3;
    u.endpoint = EndpointOf(3);
    u.generation = 1;
    u.incarnation = 0;
    u.liveness = Liveness::kSuspect;
    u.from = 2;
    m.updates = {u};
    c.node(3).Receive(EndpointOf(2), wire::Encode(m), false, c.now());
    c.node(3).TakeOutgoing();
  }
  ASSERT_EQ(c.ViewOf(3, 3)->incarnation, 1u);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  const MemberView before = *c.ViewOf(1, 3);
  ASSERT_EQ(before.incarnation, 1u);
  ASSERT_EQ(before.app_version, 2u);

  auto inject = [&](wire::Update u, std::uint64_t sender_generation) {
    wire::Message m;
    m.cluster = "kv";
    m.sender = 2;
    m.generation = sender_generation;
    m.incarnation = c.ViewOf(2, 2)->incarnation;
    m.endpoint = EndpointOf(2);
    m.kind = wire::Kind::kGossip;
    m.updates = {u};
    c.node(1).Receive(EndpointOf(2), wire::Encode(m), false, c.now());
    c.node(1).TakeOutgoing();
  };
  wire::Update old_inc;
  old_inc.id = 3;
  old_inc.endpoint = EndpointOf(3);
  old_inc.generation = 1;
  old_inc.incarnation = 0;  // older than 1
  old_inc.liveness = Liveness::kDown;
  old_inc.from = 2;
  inject(old_inc, 1);
  wire::Update old_gen = old_inc;
  old_gen.generation = 0;  // an earlier life
  old_gen.incarnation = 50;
  inject(old_gen, 1);
  wire::Update old_app;
  old_app.id = 3;
  old_app.endpoint = EndpointOf(3);
  old_app.generation = 1;
  old_app.incarnation = 1;
  old_app.liveness = Liveness::kUp;
  old_app.app_version = 1;  // older than 2
  old_app.has_app = true;
  old_app.app = AppOf(77);
  inject(old_app, 1);
  // A message from an older generation of its sender is dropped whole, news and all.
  const auto stale_before = c.node(1).counters().dropped_stale;
  wire::Update fresh_down = old_inc;
  fresh_down.incarnation = 5;
  inject(fresh_down, 0);
  EXPECT_EQ(c.node(1).counters().dropped_stale, stale_before + 1);

  const MemberView after = *c.ViewOf(1, 3);
  EXPECT_EQ(after.liveness, Liveness::kUp);
  EXPECT_EQ(after.generation, before.generation);
  EXPECT_EQ(after.incarnation, before.incarnation);
  EXPECT_EQ(after.app_version, before.app_version);
  EXPECT_EQ(after.app, before.app);
}

// With probing and gossip rounds out of the way, only push-pull can carry news: a node that
// missed an application change gets it from the digest exchange.
TEST(MembershipCluster, PushPullBringsANodeUpToDate) {
  Config config;
  config.probe_interval = std::chrono::hours(1);
  config.probe_timeout = std::chrono::minutes(30);
  config.gossip_interval = Duration(0);  // no gossip rounds
  config.push_pull_interval = seconds(5);
  Cluster c(config);
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(20)));
  const auto streams_before = c.streams;
  AppState app = AppOf(3, 10);
  app.load_bytes = 4242;
  c.node(3).UpdateApp(app, c.now());
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(60)));
  EXPECT_GT(c.streams, streams_before);
  for (NodeId obs = 1; obs <= 4; ++obs) EXPECT_EQ(c.ViewOf(obs, 3)->app.load_bytes, 4242u);
}

// Digest merge in both directions, message by message: the SYN's receiver sends what the
// initiator lacks and asks for what it holds newer; ACK2 delivers the rest.
TEST(MembershipCluster, DigestExchangeMergesBothWays) {
  Config config;
  config.probe_interval = std::chrono::hours(1);
  config.probe_timeout = std::chrono::minutes(30);
  config.gossip_interval = Duration(0);
  config.push_pull_interval = seconds(10);
  Cluster c(config);
  StartAll(c, 3);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(30)));
  // 1 and 2 each learn something the other does not: 1 of a new app of 3, 2 of a newcomer 4.
  c.Block(3, 2);
  c.Block(4, 1);
  c.Block(4, 3);
  c.Block(1, 4);
  c.Block(3, 4);
  c.Block(2, 3);
  c.on_send = [&](NodeId from, const Outgoing& o) {
    // Only the SYN / ACK / ACK2 between 1 and 2 carry news between them.
    return !((from == 1 && o.to == EndpointOf(2)) || (from == 2 && o.to == EndpointOf(1))) ||
           o.stream;
  };
  c.node(3).UpdateApp(AppOf(3, 9), c.now());
  c.Start(4, {2});
  EXPECT_TRUE(c.RunUntilTrue(
      [&] { return c.ViewOf(1, 4).has_value() && c.ViewOf(2, 3)->app == AppOf(3, 9); },
      seconds(300)));
}

// The SYN / ACK / ACK2 exchange delivered by hand: each side ends with what the other knew
// better, and the receiver of the SYN also sends the members the initiator never heard of.
TEST(MembershipCluster, DigestExchangeMessageByMessage) {
  Cluster c(Config{});
  StartAll(c, 3);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  const Time now = c.now();
  Membership& a = c.node(1);
  Membership& b = c.node(2);
  a.UpdateApp(AppOf(1, 11), now);
  b.UpdateApp(AppOf(2, 12), now);
  // A stranger that only b knows of.
  {
    wire::Message m;
    m.cluster = "kv";
    m.sender = 7;
    m.generation = 1;
    m.endpoint = EndpointOf(7);
    m.kind = wire::Kind::kGossip;
    b.Receive(EndpointOf(7), wire::Encode(m), false, now);
  }
  a.TakeOutgoing();
  b.TakeOutgoing();
  auto only_stream = [](std::vector<Outgoing> out, wire::Kind kind) {
    std::optional<Outgoing> found;
    for (Outgoing& o : out) {
      auto m = DecodeOut(o);
      if (o.stream && m && m->kind == kind) found = std::move(o);
    }
    return found;
  };
  // Join sends a ping and a SYN: take the SYN.
  a.Join({EndpointOf(2)}, now);
  auto syn = only_stream(a.TakeOutgoing(), wire::Kind::kSyn);
  ASSERT_TRUE(syn.has_value());
  b.Receive(Endpoint{EndpointOf(1).ip, 40000}, syn->bytes, true, now);
  auto ack = only_stream(b.TakeOutgoing(), wire::Kind::kSynAck);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->to, EndpointOf(1));  // the gossip endpoint, not the connection's port
  {
    auto m = DecodeOut(*ack);
    std::set<NodeId> states, requests;
    for (const auto& u : m->states) states.insert(u.id);
    for (const auto& d : m->digests) requests.insert(d.id);
    // b's states of itself, of 7, and of 1 as b knows it (the sender's own state always goes
    // back, so that a restored copy learns of the life its id lived on with); a's newer state
    // of itself is asked for.
    EXPECT_EQ(states, (std::set<NodeId>{1, 2, 7}));
    EXPECT_EQ(requests, (std::set<NodeId>{1}));
  }
  a.Receive(Endpoint{EndpointOf(2).ip, 40001}, ack->bytes, true, now);
  EXPECT_EQ(c.ViewOf(1, 2)->app, AppOf(2, 12));
  EXPECT_TRUE(c.ViewOf(1, 7).has_value());
  auto ack2 = only_stream(a.TakeOutgoing(), wire::Kind::kAck2);
  ASSERT_TRUE(ack2.has_value());
  EXPECT_NE(c.ViewOf(2, 1)->app, AppOf(1, 11));
  b.Receive(Endpoint{EndpointOf(1).ip, 40002}, ack2->bytes, true, now);
  EXPECT_EQ(c.ViewOf(2, 1)->app, AppOf(1, 11));
  EXPECT_EQ(c.ViewOf(2, 1)->app_version, c.ViewOf(1, 1)->app_version);
}

// After a partition outlasts the time DOWN members still get gossip, the two sides find each
// other again through push-pull with members they hold DOWN.
TEST(MembershipCluster, PartitionHeals) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  for (NodeId x : {1, 2}) {
    for (NodeId y : {3, 4}) {
      c.Block(x, y);
      c.Block(y, x);
    }
  }
  ASSERT_TRUE(c.RunUntilTrue(
      [&] {
        return c.LivenessOf(1, 3) == Liveness::kDown && c.LivenessOf(3, 1) == Liveness::kDown;
      },
      seconds(60)));
  c.RunFor(seconds(120));
  EXPECT_EQ(c.LivenessOf(1, 4), Liveness::kDown);
  EXPECT_EQ(c.LivenessOf(4, 2), Liveness::kDown);
  c.Heal();
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(90)));
}

TEST(MembershipCluster, RemovedIdStaysRemoved) {
  Cluster c(Config{});
  StartAll(c, 4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.Crash(4);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.AllSee(4, Liveness::kDown); }, seconds(60)));
  // Node 3 is cut off while the removal spreads, and long enough for every piggyback of it to
  // be used up: only push-pull can tell it later.
  c.Isolate(3);
  EXPECT_FALSE(c.node(1).Remove(1, c.now()));   // self
  EXPECT_FALSE(c.node(1).Remove(99, c.now()));  // unknown
  EXPECT_FALSE(c.node(1).Remove(2, c.now()));   // UP
  EXPECT_TRUE(c.node(1).Remove(4, c.now()));
  EXPECT_FALSE(c.node(1).Remove(4, c.now()));  // already removed
  EXPECT_EQ(c.node(1).Removed(), std::vector<NodeId>{4});
  EXPECT_EQ(c.LivenessOf(1, 4), Liveness::kRemoved);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.LivenessOf(2, 4) == Liveness::kRemoved; }, seconds(5)));
  c.RunFor(seconds(60));
  EXPECT_TRUE(c.node(3).Removed().empty());
  EXPECT_EQ(c.LivenessOf(3, 4), Liveness::kDown);
  c.Heal();
  EXPECT_TRUE(c.RunUntilTrue(
      [&] {
        return c.LivenessOf(3, 4) == Liveness::kRemoved && c.LivenessOf(1, 3) == Liveness::kUp &&
               c.LivenessOf(3, 1) == Liveness::kUp;
      },
      seconds(120)));
  EXPECT_EQ(c.node(3).Removed(), std::vector<NodeId>{4});

  // The removed node comes back with a new generation: it is told, and nobody takes it back.
  bool ever_up = false;
  c.on_step = [&] {
    for (NodeId obs : {1, 2, 3}) {
      auto l = c.LivenessOf(obs, 4);
      ever_up |= l && *l != Liveness::kRemoved;
    }
  };
  c.Start(4, {3}, /*generation=*/2);
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.node(4).refused(); }, seconds(10)));
  // News of the new life relayed by a member that has not heard of the removal loses too.
  {
    wire::Message m;
    m.cluster = "kv";
    m.sender = 2;
    m.generation = 1;
    m.incarnation = c.ViewOf(2, 2)->incarnation;
    m.endpoint = EndpointOf(2);
    m.kind = wire::Kind::kGossip;
    wire::Update u;
    u.id = 4;
    u.endpoint = EndpointOf(4);
    u.generation = 3;
    u.app_version = 1;
    u.has_app = true;
    u.app = AppOf(4);
    m.updates = {u};
    c.node(1).Receive(EndpointOf(2), wire::Encode(m), false, c.now());
    EXPECT_EQ(c.LivenessOf(1, 4), Liveness::kRemoved);
  }
  EXPECT_GT(c.node(3).counters().dropped_removed, 0u);
  c.RunFor(seconds(60));
  EXPECT_FALSE(ever_up);
  for (NodeId obs : {1, 2, 3}) EXPECT_EQ(c.node(obs).Removed(), std::vector<NodeId>{4});
}

TEST(MembershipCluster, RestoredTombstonesRefuseTheRemovedId) {
  Cluster c(Config{});
  c.Start(1);
  c.node(1).RestoreRemoved({2});
  EXPECT_EQ(c.node(1).Removed(), std::vector<NodeId>{2});
  c.Start(2, {1});
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.node(2).refused(); }, seconds(5)));
  EXPECT_FALSE(c.ViewOf(1, 2).has_value());
  EXPECT_EQ(c.node(2).NextDeadline(), Time::max());
  // A member that never heard of the removal vouches for it: still refused.
  c.Start(3, {1});
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.LivenessOf(1, 3) == Liveness::kUp; }, seconds(5)));
  wire::Message m;
  m.cluster = "kv";
  m.sender = 3;
  m.generation = 1;
  m.incarnation = c.ViewOf(3, 3)->incarnation;
  m.endpoint = EndpointOf(3);
  m.kind = wire::Kind::kGossip;
  wire::Update u;
  u.id = 2;
  u.endpoint = EndpointOf(2);
  u.generation = 5;
  m.updates = {u};
  c.node(1).Receive(EndpointOf(3), wire::Encode(m), false, c.now());
  EXPECT_FALSE(c.ViewOf(1, 2).has_value());
  // And the tombstone reaches the newcomer.
  EXPECT_TRUE(
      c.RunUntilTrue([&] { return c.node(3).Removed() == std::vector<NodeId>{2}; }, seconds(5)));
}

// Hostile and foreign datagrams are counted and change nothing.
TEST(MembershipCluster, BadDatagramsAreDroppedAndCounted) {
  Config config;
  config.max_datagram_bytes = 1000;
  Cluster c(config);
  StartAll(c, 2);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.RunFor(seconds(5));
  Membership& n = c.node(1);
  const ClusterView before = n.View(c.now());
  const Counters k = n.counters();
  const Time deadline = n.NextDeadline();

  // A valid message from 2 that would introduce member 9, in a few broken variants.
  wire::Message m;
  m.cluster = "kv";
  m.sender = 2;
  m.generation = 1;
  m.incarnation = 0;
  m.endpoint = EndpointOf(2);
  m.kind = wire::Kind::kGossip;
  wire::Update u;
  u.id = 9;
  u.endpoint = EndpointOf(9);
  u.generation = 1;
  m.updates = {u};
  const std::string good = wire::Encode(m);

  auto send = [&](const std::string& bytes, bool stream = false) {
    n.Receive(EndpointOf(2), bytes, stream, c.now());
  };
  send("");
  send("not a capnp message");
  send(good.substr(0, good.size() / 2));
  send(good + "x");
  send(std::string(1001, '\0'));
  wire::Message other = m;
  other.cluster = "kv-other";
  send(wire::Encode(other));
  wire::Message future = m;
  future.version = wire::kProtocolVersion + 1;
  send(wire::Encode(future));
  wire::Message unsorted = m;
  unsorted.updates[0].has_app = true;
  unsorted.updates[0].app_version = 1;
  unsorted.updates[0].app.tokens = {3, 2, 1};
  send(wire::Encode(unsorted));

  const Counters& a = n.counters();
  EXPECT_EQ(a.datagrams_in, k.datagrams_in + 8);
  EXPECT_EQ(a.dropped_malformed, k.dropped_malformed + 5);
  EXPECT_EQ(a.dropped_oversize, k.dropped_oversize + 1);
  EXPECT_EQ(a.dropped_cluster, k.dropped_cluster + 1);
  EXPECT_EQ(a.dropped_version, k.dropped_version + 1);
  EXPECT_TRUE(n.TakeOutgoing().empty());
  EXPECT_EQ(n.NextDeadline(), deadline);
  const ClusterView after = n.View(c.now());
  ASSERT_EQ(after.members.size(), before.members.size());
  for (std::size_t i = 0; i < after.members.size(); ++i) {
    EXPECT_EQ(after.members[i].id, before.members[i].id);
    EXPECT_EQ(after.members[i].liveness, before.members[i].liveness);
    EXPECT_EQ(after.members[i].incarnation, before.members[i].incarnation);
    EXPECT_EQ(after.members[i].app_version, before.members[i].app_version);
  }
  // The good one is taken, which shows the broken ones were refused for their damage alone.
  send(good);
  EXPECT_TRUE(c.ViewOf(1, 9).has_value());
  EXPECT_EQ(n.counters().dropped_malformed, k.dropped_malformed + 5);
}

// Every datagram fits max_datagram_bytes, even when application states do not: those travel
// by push-pull, pulled on demand, and still reach everyone quickly.
TEST(MembershipCluster, DatagramsNeverExceedTheLimit) {
  Config config;
  config.max_datagram_bytes = 512;
  Cluster c(config, 7);
  bool oversize = false;
  c.on_send = [&](NodeId, const Outgoing& o) {
    if (!o.stream && o.bytes.size() > 512) oversize = true;
    return true;
  };
  c.Start(1, {}, 1, AppOf(1, 100));  // 100 tokens: about 900 bytes, more than one datagram
  for (NodeId id = 2; id <= 8; ++id) c.Start(id, {1}, 1, AppOf(id, id % 2 == 0 ? 100 : 2));
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  c.Crash(5);
  c.node(2).UpdateApp(AppOf(2, 120), c.now());
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.AllSee(5, Liveness::kDown); }, seconds(60)));
  EXPECT_TRUE(c.RunUntilTrue(
      [&] {
        for (NodeId obs = 1; obs <= 8; ++obs) {
          if (obs != 5 && c.ViewOf(obs, 2)->app != AppOf(2, 120)) return false;
        }
        return true;
      },
      seconds(40)));
  EXPECT_FALSE(oversize);
  EXPECT_LE(c.largest_datagram, 512u);
  EXPECT_GT(c.largest_datagram, 300u);  // piggybacking does fill datagrams
}

// Lifeguard: a node that hears nothing (its own network is broken) stretches its own probe
// interval instead of probing, and accusing, at full speed.
TEST(MembershipCluster, UnhealthyNodeSlowsItsOwnProbes) {
  Config config;
  config.suspicion_mult = 20;  // keeps the others SUSPECT (still probed) in 1's view throughout
  Cluster c(config);
  StartAll(c, 5);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  std::set<std::uint64_t> probes;  // by seq: a probe's retried ping is the same probe
  bool counting = false;
  c.on_send = [&](NodeId from, const Outgoing& o) {
    if (counting && from == 1 && !o.stream) {
      auto m = DecodeOut(o);
      if (m && m->kind == wire::Kind::kPing) probes.insert(m->seq_no);
    }
    return true;
  };
  for (NodeId id = 2; id <= 5; ++id) c.Block(id, 1);  // 1 hears nobody
  c.RunFor(seconds(20));
  counting = true;
  c.RunFor(seconds(60));
  // At full health it would send 60 probes; at the worst score, one every 9 s.
  EXPECT_LE(probes.size(), 12u);
  EXPECT_GE(probes.size(), 3u);
}

// Nacks from ping-req intermediaries tell a prober that its own network is fine: a dead target
// does not slow it down.
TEST(MembershipCluster, NacksKeepAHealthyProberAtFullSpeed) {
  Config config;
  config.suspicion_mult = 40;  // the dead node stays SUSPECT, and probed, for the whole test
  Cluster c(config);
  StartAll(c, 6);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  std::set<std::uint64_t> probes;  // by seq: a probe's retried ping is the same probe
  int nacks = 0;
  c.on_send = [&](NodeId from, const Outgoing& o) {
    auto m = DecodeOut(o);
    if (m && from == 1 && m->kind == wire::Kind::kPing) probes.insert(m->seq_no);
    if (m && o.to == EndpointOf(1) && m->kind == wire::Kind::kNack) ++nacks;
    return true;
  };
  c.Crash(6);
  c.RunFor(seconds(30));
  EXPECT_TRUE(c.AllSee(6, Liveness::kSuspect));
  EXPECT_GT(nacks, 0);
  EXPECT_GE(probes.size(), 25u);
}

// A failed first ping is retried directly alongside the ping-reqs: here every first ping from
// node 1 to node 2 is lost and every ping-req from node 1 too, so only the retry can reach 2.
// Without it node 1 suspects node 2 at its first probe of it.
void ProbeThroughLostFirstPings(bool retry, bool* suspected, std::size_t* probes, int* retries) {
  Config config;
  config.retry_direct_probe = retry;
  Cluster c(config);
  StartAll(c, 5);
  ASSERT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(10)));
  std::set<std::uint64_t> first_pings;  // seqs of node 1's pings to node 2 already dropped
  c.on_send = [&](NodeId from, const Outgoing& o) {
    if (from != 1 || o.stream) return true;
    auto m = DecodeOut(o);
    if (!m) return true;
    if (m->kind == wire::Kind::kPingReq) return false;
    if (m->kind != wire::Kind::kPing || o.to != EndpointOf(2)) return true;
    if (first_pings.insert(m->seq_no).second) return false;
    ++*retries;
    return true;
  };
  c.on_step = [&] { *suspected |= c.LivenessOf(1, 2) != Liveness::kUp; };
  c.RunFor(seconds(40));  // node 1 probes each of 4 members every 4 s or so
  *probes = first_pings.size();
}

TEST(MembershipCluster, LostFirstPingIsRetriedDirectly) {
  bool suspected = false;
  std::size_t probes = 0;
  int retries = 0;
  ProbeThroughLostFirstPings(true, &suspected, &probes, &retries);
  EXPECT_FALSE(suspected);
  EXPECT_GE(probes, 5u);
  EXPECT_EQ(retries, static_cast<int>(probes));
  // The same run without the retry: the lost first ping alone makes node 1 suspect node 2.
  suspected = false;
  retries = 0;
  ProbeThroughLostFirstPings(false, &suspected, &probes, &retries);
  EXPECT_TRUE(suspected);
  EXPECT_EQ(retries, 0);
}

// A node that starts to suspect a member tells it at once, in a datagram that carries the
// suspicion, rather than leaving it to hear the news from piggyback queues that may be full.
TEST(MembershipCluster, SuspectIsToldAtOnce) {
  Config config;
  config.gossip_interval = Duration(0);  // no gossip rounds: only probes and what they cause
  const Time t0 = seconds(1000);
  Membership a(config, 1, EndpointOf(1), 1, AppOf(1), 7, t0);
  std::vector<MemberView> others;
  for (NodeId id = 2; id <= 10; ++id) {
    MemberView v;
    v.id = id;
    v.gossip = EndpointOf(id);
    v.generation = 1;
    others.push_back(v);
  }
  a.RestoreMembers(others, t0);
  // Nothing is delivered: the first probe fails, and its target becomes SUSPECT.
  std::optional<NodeId> target;
  bool told = false;
  for (Time now = t0; now < t0 + seconds(5); now = std::max(now, a.NextDeadline())) {
    a.Tick(now);
    const std::vector<Outgoing> out = a.TakeOutgoing();
    for (const Outgoing& o : out) {
      auto m = DecodeOut(o);
      ASSERT_TRUE(m.has_value());
      if (!target && m->kind == wire::Kind::kPing) target = m->target;
    }
    if (target && a.Lookup(*target, now)->liveness == Liveness::kSuspect) {
      for (const Outgoing& o : out) {
        auto m = DecodeOut(o);
        if (o.to != EndpointOf(*target)) continue;
        for (const wire::Update& u : m->updates) {
          told |= u.id == *target && u.liveness == Liveness::kSuspect;
        }
      }
      break;
    }
  }
  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(a.Lookup(*target, t0 + seconds(5))->liveness, Liveness::kSuspect);
  EXPECT_TRUE(told);
}

// A node that holds a member SUSPECT for half, then three quarters, of the suspicion's floor
// pings it itself: a live suspect's answer carries the incarnation that refuted the suspicion,
// for a node that missed every copy of the refutation.
TEST(MembershipCluster, LongSuspicionIsCheckedWithTheSuspect) {
  Config config;
  config.gossip_interval = Duration(0);  // no gossip rounds: only probes and checks send
  const Time t0 = seconds(1000);
  Membership a(config, 1, EndpointOf(1), 1, AppOf(1), 7, t0);
  std::vector<MemberView> others;
  for (NodeId id = 2; id <= 10; ++id) {
    MemberView v;
    v.id = id;
    v.gossip = EndpointOf(id);
    v.generation = 1;
    others.push_back(v);
  }
  a.RestoreMembers(others, t0);
  auto message_from = [](NodeId sender, std::uint64_t incarnation, wire::Kind kind) {
    wire::Message m;
    m.cluster = Config{}.cluster_name;
    m.sender = sender;
    m.generation = 1;
    m.incarnation = incarnation;
    m.endpoint = EndpointOf(sender);
    m.kind = kind;
    return m;
  };
  // Node 2 says 3 is suspect; 3 refutes, but the refutation never reaches node 1.
  wire::Message accusation = message_from(2, 0, wire::Kind::kGossip);
  wire::Update u;
  u.id = 3;
  u.endpoint = EndpointOf(3);
  u.generation = 1;
  u.liveness = Liveness::kSuspect;
  u.from = 2;
  accusation.updates = {u};
  a.Receive(EndpointOf(2), wire::Encode(accusation), false, t0);
  ASSERT_EQ(a.Lookup(3, t0)->liveness, Liveness::kSuspect);
  const Duration min =
      lifeguard::SuspicionMinTimeout(config.suspicion_mult, 10, config.probe_interval);
  std::vector<Time> checks;  // pings to 3 that no probe sent
  std::set<std::uint64_t> probe_seqs;
  for (Time now = t0; now < t0 + min; now = std::max(now, a.NextDeadline())) {
    a.Tick(now);
    for (const Outgoing& o : a.TakeOutgoing()) {
      auto m = DecodeOut(o);
      ASSERT_TRUE(m.has_value());
      if (m->kind == wire::Kind::kPingReq) probe_seqs.insert(m->seq_no);
      if (m->kind == wire::Kind::kPing && o.to == EndpointOf(3) && !probe_seqs.count(m->seq_no)) {
        checks.push_back(now);
      }
    }
    ASSERT_EQ(a.Lookup(3, now)->liveness, Liveness::kSuspect);
  }
  // (A round-robin probe of 3, if any, would not land on these exact instants.)
  EXPECT_NE(std::find(checks.begin(), checks.end(), t0 + min / 2), checks.end());
  EXPECT_NE(std::find(checks.begin(), checks.end(), t0 + min * 3 / 4), checks.end());
  EXPECT_GE(a.counters().suspicion_checks, 2u);  // more if its own failed probes suspect others
  // The suspect's ack carries its refuting incarnation: node 1 holds it UP again.
  wire::Message ack = message_from(3, 1, wire::Kind::kAck);
  a.Receive(EndpointOf(3), wire::Encode(ack), false, t0 + min);
  EXPECT_EQ(a.Lookup(3, t0 + min)->liveness, Liveness::kUp);
  EXPECT_EQ(a.Lookup(3, t0 + min)->incarnation, 1u);
}

// A node of 400 members fed gossip from member 2, for the tests of what a full queue sends
// first.
class FullQueue {
 public:
  FullQueue() : a_(Config{}, 1, EndpointOf(1), 1, AppOf(1), 7, t0_) {
    std::vector<MemberView> others;
    for (NodeId id = 2; id <= 400; ++id) {
      MemberView v;
      v.id = id;
      v.gossip = EndpointOf(id);
      v.generation = 1;
      others.push_back(v);
    }
    a_.RestoreMembers(others, t0_);
  }
  Membership& node() { return a_; }
  Time t0() const { return t0_; }
  static wire::Update Claim(NodeId id, std::uint64_t incarnation, Liveness l) {
    wire::Update u;
    u.id = id;
    u.endpoint = EndpointOf(id);
    u.generation = 1;
    u.incarnation = incarnation;
    u.liveness = l;
    u.from = l == Liveness::kUp ? id : 2;
    return u;
  }
  void GossipFrom2(std::vector<wire::Update> updates) {
    wire::Message m;
    m.cluster = Config{}.cluster_name;
    m.sender = 2;
    m.generation = 1;
    m.endpoint = EndpointOf(2);
    m.kind = wire::Kind::kGossip;
    m.updates = std::move(updates);
    const std::string bytes = wire::Encode(m);
    ASSERT_LE(bytes.size(), Config{}.max_datagram_bytes);
    a_.Receive(EndpointOf(2), bytes, false, t0_);
  }
  // 300 claims about members 100..399, 30 to a datagram.
  void ThreeHundred(std::uint64_t incarnation, Liveness l) {
    for (NodeId first = 100; first < 400; first += 30) {
      std::vector<wire::Update> batch;
      for (NodeId id = first; id < first + 30; ++id) batch.push_back(Claim(id, incarnation, l));
      GossipFrom2(batch);
    }
  }
  // The next datagram that carries news (a gossip round, or a probe).
  std::optional<wire::Message> NextNews() {
    std::optional<wire::Message> sent;
    for (Time now = t0_; !sent && now < t0_ + seconds(2); now = std::max(now, a_.NextDeadline())) {
      a_.Tick(now);
      for (const Outgoing& o : a_.TakeOutgoing()) {
        auto m = DecodeOut(o);
        if (!m.has_value()) return std::nullopt;
        if (!sent && !o.stream && m->updates.size() > 2) sent = m;
      }
    }
    return sent;
  }
  static bool Carries(const wire::Message& m, NodeId id, std::uint64_t incarnation, Liveness l) {
    return std::any_of(m.updates.begin(), m.updates.end(), [&](const wire::Update& u) {
      return u.id == id && u.incarnation == incarnation && u.liveness == l;
    });
  }

 private:
  const Time t0_ = seconds(1000);
  Membership a_;
};

// When more news is queued than one datagram carries, refutations and deaths go out first: the
// refutation of a relayed accusation, the node's own, and a member's DOWN all ride on the next
// datagram although many accusations were queued after them (least sent, then newest first,
// would put those ahead).
TEST(MembershipCluster, RefutationsAndDeathsGoBeforeAccusationsInAFullQueue) {
  FullQueue q;
  Membership& a = q.node();
  // Member 3 is accused, then refutes; node 1 itself is accused and refutes.
  q.GossipFrom2({FullQueue::Claim(3, 0, Liveness::kSuspect)});
  q.GossipFrom2({FullQueue::Claim(3, 1, Liveness::kUp)});
  q.GossipFrom2({FullQueue::Claim(1, 0, Liveness::kSuspect)});
  ASSERT_EQ(a.Lookup(1, q.t0())->incarnation, 1u);
  a.TakeOutgoing();  // the direct answer to the accuser
  // Member 5 is declared DOWN by another.
  q.GossipFrom2({FullQueue::Claim(5, 0, Liveness::kDown)});
  ASSERT_EQ(a.Lookup(5, q.t0())->liveness, Liveness::kDown);
  // Then 300 accusations of others: several datagrams' worth, all newer.
  q.ThreeHundred(0, Liveness::kSuspect);
  ASSERT_GE(a.queue_stats().unsent, 300u);
  auto sent = q.NextNews();
  ASSERT_TRUE(sent.has_value());
  ASSERT_LT(sent->updates.size(), 300u);  // the queue did not all fit
  EXPECT_TRUE(FullQueue::Carries(*sent, 3, 1, Liveness::kUp));
  EXPECT_TRUE(FullQueue::Carries(*sent, 1, 1, Liveness::kUp));
  EXPECT_TRUE(FullQueue::Carries(*sent, 5, 0, Liveness::kDown));
}

// A death goes before even the refutations queued after it: when more refutations are queued
// than one datagram carries, the DOWN of a member still rides on the next one.
TEST(MembershipCluster, DeathsGoBeforeNewerRefutationsInAFullQueue) {
  FullQueue q;
  q.GossipFrom2({FullQueue::Claim(5, 0, Liveness::kDown)});
  ASSERT_EQ(q.node().Lookup(5, q.t0())->liveness, Liveness::kDown);
  q.ThreeHundred(1, Liveness::kUp);  // 300 members refute accusations node 1 never heard
  ASSERT_GE(q.node().queue_stats().unsent, 300u);
  auto sent = q.NextNews();
  ASSERT_TRUE(sent.has_value());
  ASSERT_LT(sent->updates.size(), 300u);
  EXPECT_TRUE(FullQueue::Carries(*sent, 5, 0, Liveness::kDown));
}

// Loss, crashes and restarts for a while, checking as it goes that no view ever moves a member
// back to an older (generation, incarnation); then a clean network must converge.
TEST(MembershipCluster, SurvivesLossAndChurn) {
  Cluster c(Config{}, 3);
  std::mt19937_64 rng(99);
  bool lossy = true;
  c.on_send = [&](NodeId, const Outgoing& o) {
    return o.stream || !lossy || rng() % 10 != 0;  // 10% of datagrams lost
  };
  constexpr NodeId kNodes = 8;
  std::map<NodeId, std::uint64_t> generation;
  std::map<NodeId, bool> running;
  c.Start(1);
  generation[1] = running[1] = 1;
  for (NodeId id = 2; id <= kNodes; ++id) {
    c.Start(id, {1});
    generation[id] = 1;
    running[id] = true;
  }
  std::map<std::pair<NodeId, NodeId>, std::pair<std::uint64_t, std::uint64_t>> seen;
  bool went_back = false;
  c.on_step = [&] {
    for (NodeId obs = 1; obs <= kNodes; ++obs) {
      if (!running[obs]) continue;
      for (const MemberView& m : c.node(obs).View(c.now()).members) {
        auto key = std::pair(obs, m.id);
        const auto now = std::pair(m.generation, m.incarnation);
        auto it = seen.find(key);
        if (it != seen.end() && now < it->second) went_back = true;
        seen[key] = now;
      }
    }
  };
  for (int round = 0; round < 12; ++round) {
    c.RunFor(seconds(20));
    const NodeId victim = 2 + rng() % (kNodes - 1);
    if (running[victim]) {
      c.Crash(victim);
      running[victim] = false;
      for (auto it = seen.begin(); it != seen.end();) {  // a restarted observer starts afresh
        it = it->first.first == victim ? seen.erase(it) : std::next(it);
      }
    } else {
      c.Start(victim, {1 + rng() % 2}, ++generation[victim]);
      running[victim] = true;
    }
  }
  for (NodeId id = 2; id <= kNodes; ++id) {
    if (!running[id]) {
      c.Start(id, {1}, ++generation[id]);
      running[id] = true;
    }
  }
  lossy = false;
  EXPECT_TRUE(c.RunUntilTrue([&] { return c.Converged(); }, seconds(60)));
  EXPECT_FALSE(went_back);
}

TEST(MembershipCluster, SameSeedReplaysExactly) {
  auto run = [](std::uint64_t seed) {
    Cluster c(Config{}, seed);
    StartAll(c, 6);
    c.RunFor(seconds(20));
    c.Crash(4);
    c.RunFor(seconds(40));
    return c.delivered_hash;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(MembershipCluster, NextDeadlineIsTheEarliestTimer) {
  Config config;
  config.probe_interval = seconds(1);
  config.gossip_interval = milliseconds(200);
  config.push_pull_interval = seconds(30);
  const Time t0 = seconds(100);
  Membership m(config, 1, EndpointOf(1), 1, AppOf(1), 3, t0);
  const Time d = m.NextDeadline();
  EXPECT_GE(d, t0);
  EXPECT_LT(d, t0 + milliseconds(200));  // the first gossip round, staggered within its interval
  m.Tick(d - Duration(1));
  EXPECT_EQ(m.NextDeadline(), d);  // early ticks change nothing
  Time now = d;
  for (int i = 0; i < 100; ++i) {
    m.Tick(now);
    const Time next = m.NextDeadline();
    ASSERT_GT(next, now);
    ASSERT_LE(next, now + seconds(1));
    now = next;
  }
  // A lone node with nobody to join sends nothing.
  EXPECT_TRUE(m.TakeOutgoing().empty());
  // Joining adds the retry timer.
  m.Join({EndpointOf(2)}, now);
  EXPECT_LE(m.NextDeadline(), now + config.join_retry_interval);
  EXPECT_EQ(m.TakeOutgoing().size(), 2u);  // a ping and a SYN
}

TEST(MembershipTypes, EndpointsAndNames) {
  Endpoint e;
  ASSERT_TRUE(ParseEndpoint("127.0.0.1:7946", &e));
  EXPECT_EQ(e.ip, 0x7f000001u);
  EXPECT_EQ(e.port, 7946);
  EXPECT_EQ(ToString(e), "127.0.0.1:7946");
  EXPECT_EQ(ToString(Endpoint{0xffffffff, 65535}), "255.255.255.255:65535");
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0:1", "256.0.0.1:1", "1.2.3.4:65536", "a.b.c.d:1",
        "1.2.3.4:80x", " 1.2.3.4:80", "01.2.3.4:80", "1.2.3.4.5:6"}) {
    EXPECT_FALSE(ParseEndpoint(bad, &e)) << bad;
  }
  EXPECT_STREQ(Name(Liveness::kSuspect), "SUSPECT");
  EXPECT_STREQ(Name(Liveness::kRemoved), "REMOVED");
  EXPECT_STREQ(Name(NodeState::kLeaving), "leaving");
  ClusterView v;
  v.members.resize(3);
  v.members[0].id = 2;
  v.members[1].id = 5;
  v.members[2].id = 9;
  EXPECT_EQ(v.Find(5), &v.members[1]);
  EXPECT_EQ(v.Find(4), nullptr);
  EXPECT_EQ(v.Find(10), nullptr);
}

}  // namespace
}  // namespace kv::membership
