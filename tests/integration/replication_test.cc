// Replicated reads and writes on real kvd processes (N=3, R=W=2): quorum through different
// coordinators, a killed replica routed around and caught up by hinted handoff, read repair,
// concurrent writers kept as siblings, and sloppy quorum with two of five nodes down.
//
// Membership runs with short intervals so failures are noticed quickly; every wait polls with
// a generous deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "ring/token.h"
#include "tests/integration/process.h"

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kFast = {
    "--probe-interval-ms",     "200",  "--probe-timeout-ms", "100", "--gossip-interval-ms",  "50",
    "--push-pull-interval-ms", "2000", "--cluster-name",     "rt",  "--handoff-interval-ms", "200"};

class Replication : public ::testing::Test {
 protected:
  void StartAll(int n, const std::vector<std::string>& extra = {}) {
    for (int i = 0; i < n; ++i) {
      const std::string ip = "127.0.0." + std::to_string(i + 1);
      std::vector<std::string> flags = kFast;
      flags.insert(flags.end(), extra.begin(), extra.end());
      flags.insert(flags.end(), {"--gossip", ip + ":0"});
      if (i > 0) flags.insert(flags.end(), {"--seeds", nodes_[0]->gossip_address()});
      nodes_.push_back(
          std::make_unique<Kvd>(dir_.path() + "/n" + std::to_string(i + 1), flags, ip));
      ASSERT_TRUE(nodes_.back()->Start()) << nodes_.back()->stderr_text();
    }
    std::vector<int> all;
    for (int i = 0; i < n; ++i) all.push_back(i);
    ASSERT_TRUE(SeeStatus(all, all, "UP"));
    std::vector<std::string> hosts;
    for (const auto& node : nodes_) hosts.push_back(node->address());
    ASSERT_TRUE(WaitSettled(hosts, static_cast<std::size_t>(n)));  // every join done
  }

  // member id -> (status, hints held for it) as node `i` reports them.
  std::map<std::string, std::pair<std::string, std::uint64_t>> StatusOf(int i) {
    std::map<std::string, std::pair<std::string, std::uint64_t>> out;
    auto r = Kvtool({"--host", nodes_[i]->address(), "--timeout-ms", "2000", "--json", "status"});
    if (r.exit_code != 0) return out;
    const auto j = nlohmann::json::parse(r.out);
    for (const auto& m : j["nodes"]) {
      out[m["id"].get<std::string>()] = {m["status"].get<std::string>(),
                                         m["hints"].get<std::uint64_t>()};
    }
    return out;
  }

  // Every observer shows every subject as `status`.
  bool SeeStatus(const std::vector<int>& observers, const std::vector<int>& subjects,
                 const std::string& status) {
    return Eventually(
        [&] {
          for (int o : observers) {
            auto v = StatusOf(o);
            for (int s : subjects) {
              auto it = v.find(nodes_[s]->node_id());
              if (it == v.end() || it->second.first != status) return false;
            }
          }
          return true;
        },
        std::chrono::seconds(30));
  }

  std::uint64_t HintsHeld(int i) {
    std::uint64_t total = 0;
    for (const auto& [id, s] : StatusOf(i)) total += s.second;
    return total;
  }

  RunResult Put(int via, const std::string& key, const std::string& value,
                const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--host", nodes_[via]->address(), "put", key, value};
    args.insert(args.end(), extra.begin(), extra.end());
    return Kvtool(args);
  }

  // The live values of `key` through node `via` (with `extra` flags), or nullopt on failure.
  std::optional<std::set<std::string>> Get(int via, const std::string& key,
                                           const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--host", nodes_[via]->address(), "--json", "get", key};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Kvtool(args);
    if (r.exit_code == 1) return std::set<std::string>();
    if (r.exit_code != 0) return std::nullopt;
    const auto j = nlohmann::json::parse(r.out);
    std::set<std::string> out;
    for (const auto& s : j["siblings"]) out.insert(s["value"].get<std::string>());
    return out;
  }

  bool HoldsLocally(int i, const std::string& key, const std::string& value) {
    auto got = Get(i, key, {"--local"});
    return got && got->count(value) == 1;
  }

  void Kill(int i) { nodes_[i]->Stop(SIGKILL); }

  TempDir dir_;
  std::vector<std::unique_ptr<Kvd>> nodes_;
};

// Blind puts (no context) pile up siblings. At the cap the writer is told, and the key stays
// whole: readable, handed off and repaired to a replica that missed the writes, and resolved by
// a write with its context.
TEST_F(Replication, BlindPutsStopAtTheSiblingCapAndTheKeyStaysReadableRepairableAndResolvable) {
  StartAll(3, {"--max-siblings", "5"});
  Kill(2);
  ASSERT_TRUE(SeeStatus({0, 1}, {2}, "DOWN"));
  std::set<std::string> values;
  for (int i = 0; i < 5; ++i) {
    auto r = Put(i % 2, "hot", "v" + std::to_string(i));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    values.insert("v" + std::to_string(i));
  }
  auto refused = Put(0, "hot", "v5");
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("too many siblings"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("write with its context"), std::string::npos) << refused.err;
  EXPECT_EQ(Get(1, "hot"), values);
  // The replica that missed them gets them (hints, then a repair that finds nothing left).
  ASSERT_TRUE(nodes_[2]->Start()) << nodes_[2]->stderr_text();
  ASSERT_TRUE(SeeStatus({0, 1, 2}, {0, 1, 2}, "UP"));
  auto repair = Kvtool({"--host", nodes_[0]->address(), "--json", "repair"});
  EXPECT_EQ(repair.exit_code, 0) << repair.out << repair.err;
  EXPECT_TRUE(Eventually([&] { return Get(2, "hot", {"--local"}) == values; },
                         std::chrono::seconds(30)));
  // Resolved with the context: one value left, and blind puts are taken again.
  auto got = Kvtool({"--host", nodes_[1]->address(), "--json", "get", "hot"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  const std::string ctx = nlohmann::json::parse(got.out)["context"].get<std::string>();
  auto resolved = Put(1, "hot", "merged", {"--context", ctx});
  ASSERT_EQ(resolved.exit_code, 0) << resolved.err;
  EXPECT_EQ(Get(0, "hot", {"--consistency", "all"}), std::set<std::string>{"merged"});
  EXPECT_EQ(Put(0, "hot", "again").exit_code, 0);
  // The writer's node counted the refusal.
  auto stats = Kvtool({"--host", nodes_[0]->address(), "--json", "stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_GE(nlohmann::json::parse(stats.out)["node"]["writes_refused_sibling_cap"].get<int>(), 1)
      << stats.out;
}

TEST_F(Replication, QuorumPutAndGetThroughDifferentCoordinators) {
  StartAll(3);
  for (int k = 0; k < 30; ++k) {
    const std::string key = "k" + std::to_string(k);
    auto r = Put(k % 3, key, "v" + std::to_string(k));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  for (int k = 0; k < 30; ++k) {
    const std::string key = "k" + std::to_string(k);
    const std::string value = "v" + std::to_string(k);
    auto got = Get((k + 1) % 3, key);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, std::set<std::string>{value}) << key;
    // N=3 on 3 nodes: every node ends up holding every key (the third copy may lag W=2).
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(Eventually([&] { return HoldsLocally(i, key, value); }, std::chrono::seconds(10)))
          << key << " on node " << i;
    }
  }
}

TEST_F(Replication, KilledReplicaIsRoutedAroundThenCaughtUpByHints) {
  StartAll(3);
  Kill(2);
  ASSERT_TRUE(SeeStatus({0, 1}, {2}, "DOWN"));
  const int kKeys = 40;
  for (int k = 0; k < kKeys; ++k) {
    auto r = Put(k % 2, "h" + std::to_string(k), "v" + std::to_string(k));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  for (int k = 0; k < kKeys; ++k) {
    auto got = Get((k + 1) % 2, "h" + std::to_string(k), {"--consistency", "quorum"});
    ASSERT_TRUE(got.has_value()) << k;
    EXPECT_EQ(*got, std::set<std::string>{"v" + std::to_string(k)});
  }
  // ALL needs the dead replica: a clear failure, exit 3, nothing hidden.
  auto all_put = Put(0, "h-all", "x", {"--consistency", "all"});
  EXPECT_EQ(all_put.exit_code, 3);
  EXPECT_NE(all_put.err.find("unavailable"), std::string::npos) << all_put.err;
  auto all_get = Kvtool({"--host", nodes_[1]->address(), "get", "h0", "--consistency", "all"});
  EXPECT_EQ(all_get.exit_code, 3);
  EXPECT_NE(all_get.err.find("unavailable"), std::string::npos) << all_get.err;
  EXPECT_GT(HintsHeld(0) + HintsHeld(1), 0u);

  ASSERT_TRUE(nodes_[2]->Start()) << nodes_[2]->stderr_text();
  ASSERT_TRUE(SeeStatus({0, 1, 2}, {0, 1, 2}, "UP"));
  EXPECT_TRUE(
      Eventually([&] { return HintsHeld(0) + HintsHeld(1) == 0; }, std::chrono::seconds(30)))
      << "hints still held: " << HintsHeld(0) << " + " << HintsHeld(1);
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_TRUE(HoldsLocally(2, "h" + std::to_string(k), "v" + std::to_string(k))) << k;
  }
}

// A hint may hold a value from before a delete; once the tombstone is older than the grace
// period it may be purged, so a hint that old must never be delivered: it is dropped instead,
// and repair (not run here) restores from the other replicas what it held.
TEST_F(Replication, HintsOlderThanTheTombstoneGraceAreDroppedNotDelivered) {
  StartAll(3, {"--tombstone-grace-s", "1", "--repair-interval-s", "0"});
  Kill(2);
  ASSERT_TRUE(SeeStatus({0, 1}, {2}, "DOWN"));
  const int kKeys = 10;
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_EQ(Put(k % 2, "old" + std::to_string(k), "v").exit_code, 0);
  }
  ASSERT_GT(HintsHeld(0) + HintsHeld(1), 0u);
  // The event waited for is the clock passing the grace period (whole seconds, so 3 s).
  const auto aged = std::chrono::system_clock::now() + std::chrono::seconds(3);
  ASSERT_TRUE(Eventually([&] { return std::chrono::system_clock::now() >= aged; },
                         std::chrono::seconds(10)));
  ASSERT_TRUE(nodes_[2]->Start()) << nodes_[2]->stderr_text();
  ASSERT_TRUE(SeeStatus({0, 1, 2}, {0, 1, 2}, "UP"));
  EXPECT_TRUE(
      Eventually([&] { return HintsHeld(0) + HintsHeld(1) == 0; }, std::chrono::seconds(30)));
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_FALSE(HoldsLocally(2, "old" + std::to_string(k), "v")) << k;
    // Still on the two replicas that took the write.
    auto got = Get(0, "old" + std::to_string(k), {"--consistency", "quorum"});
    ASSERT_TRUE(got.has_value()) << k;
    EXPECT_EQ(got->count("v"), 1u) << k;
  }
}

TEST_F(Replication, ReplicaThatTimesOutGetsAHintDeliveredWhenItWakes) {
  // Slow suspicion: the paused node stays UP (or SUSPECT) throughout, so only the timeouts of
  // the replica writes can leave hints for it.
  StartAll(3, {"--request-timeout-ms", "300", "--suspicion-mult", "100"});
  nodes_[2]->Signal(SIGSTOP);
  for (int k = 0; k < 10; ++k) {
    auto r = Put(k % 2, "t" + std::to_string(k), "v" + std::to_string(k));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_TRUE(
      Eventually([&] { return HintsHeld(0) + HintsHeld(1) >= 10; }, std::chrono::seconds(10)));
  for (const auto& [id, s] : StatusOf(0)) EXPECT_NE(s.first, "DOWN") << id;
  nodes_[2]->Signal(SIGCONT);
  EXPECT_TRUE(
      Eventually([&] { return HintsHeld(0) + HintsHeld(1) == 0; }, std::chrono::seconds(30)));
  for (int k = 0; k < 10; ++k) {
    EXPECT_TRUE(HoldsLocally(2, "t" + std::to_string(k), "v" + std::to_string(k))) << k;
  }
}

TEST_F(Replication, StaleReplicaIsRepairedByARead) {
  StartAll(3, {"--hinted-handoff", "off"});
  Kill(2);
  ASSERT_TRUE(SeeStatus({0, 1}, {2}, "DOWN"));
  ASSERT_EQ(Put(0, "stale", "fresh").exit_code, 0);
  ASSERT_TRUE(nodes_[2]->Start()) << nodes_[2]->stderr_text();
  ASSERT_TRUE(SeeStatus({0, 1, 2}, {0, 1, 2}, "UP"));
  // No hints: the restarted replica does not have it.
  EXPECT_EQ(HintsHeld(0) + HintsHeld(1), 0u);
  auto before = Get(2, "stale", {"--local"});
  ASSERT_TRUE(before.has_value());
  EXPECT_TRUE(before->empty());
  // A quorum read through another node answers, then repairs the stale replica.
  auto got = Get(0, "stale");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, std::set<std::string>{"fresh"});
  EXPECT_TRUE(
      Eventually([&] { return HoldsLocally(2, "stale", "fresh"); }, std::chrono::seconds(10)));
}

TEST_F(Replication, ConcurrentWritersWithoutContextKeepEverySibling) {
  StartAll(3);
  const int kWriters = 9;
  std::vector<std::thread> writers;
  std::vector<int> codes(kWriters, -1);
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back(
        [&, w] { codes[w] = Put(w % 3, "shared", "w" + std::to_string(w)).exit_code; });
  }
  for (auto& t : writers) t.join();
  std::set<std::string> expected;
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_EQ(codes[w], 0) << w;
    expected.insert("w" + std::to_string(w));
  }
  for (int i = 0; i < 3; ++i) {
    auto got = Get(i, "shared", {"--consistency", "all"});
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, expected) << "through node " << i;
  }
}

// The owners of `key` (node ids) at `replicas`, from `kvtool ring --json` through node `via`.
std::vector<std::string> OwnersOf(const std::string& host, const std::string& key) {
  auto r = Kvtool({"--host", host, "--json", "ring", "--replicas", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const ring::Token t = ring::TokenOf(key);
  for (const auto& range : j["ranges"]) {
    const std::uint64_t begin = std::stoull(range["start"].get<std::string>());
    const std::uint64_t end = std::stoull(range["end"].get<std::string>());
    if (t >= begin && (end == 0 || t < end)) {
      std::vector<std::string> out;
      for (const auto& rep : range["replicas"]) out.push_back(rep["id"].get<std::string>());
      return out;
    }
  }
  ADD_FAILURE() << "no range holds the token of " << key;
  return {};
}

TEST_F(Replication, TwoOfFiveDownWritesSucceedThroughHintsAndReachBothOnReturn) {
  StartAll(5);
  Kill(3);
  Kill(4);
  ASSERT_TRUE(SeeStatus({0, 1, 2}, {3, 4}, "DOWN"));
  const int kKeys = 60;
  for (int k = 0; k < kKeys; ++k) {
    auto r = Put(k % 3, "s" + std::to_string(k), "v" + std::to_string(k));
    ASSERT_EQ(r.exit_code, 0) << "key " << k << ": " << r.err;
  }
  ASSERT_TRUE(nodes_[3]->Start()) << nodes_[3]->stderr_text();
  ASSERT_TRUE(nodes_[4]->Start()) << nodes_[4]->stderr_text();
  ASSERT_TRUE(SeeStatus({0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}, "UP"));
  EXPECT_TRUE(Eventually(
      [&] {
        for (int i = 0; i < 5; ++i) {
          if (HintsHeld(i) != 0) return false;
        }
        return true;
      },
      std::chrono::seconds(30)));
  int owned_by_returned = 0;
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "s" + std::to_string(k);
    const auto owners = OwnersOf(nodes_[0]->address(), key);
    for (int i : {3, 4}) {
      if (std::find(owners.begin(), owners.end(), nodes_[i]->node_id()) == owners.end()) continue;
      ++owned_by_returned;
      EXPECT_TRUE(HoldsLocally(i, key, "v" + std::to_string(k))) << key << " on node " << i;
    }
  }
  // With 5 nodes and N=3, the two returned nodes own a good share of 60 keys.
  EXPECT_GT(owned_by_returned, 10);
}

// Found by the partition suite (seed 101): a node restarted while its peers were unreachable
// knew only itself, took itself for the whole ring, and acknowledged writes that no replica of
// the key held. A node now keeps the peers it knew, and a restart starts from that ring.
TEST_F(Replication, NodeRestartedAloneKnowsTheRingAndAcknowledgesNothingWithoutQuorum) {
  StartAll(3);
  for (int i = 0; i < 3; ++i) Kill(i);
  ASSERT_TRUE(nodes_[2]->Start()) << nodes_[2]->stderr_text();
  // Every member is known at once (the two others, unreachable, are found DOWN later)...
  EXPECT_EQ(StatusOf(2).size(), 3u);
  // ...so a write at W=2 cannot be acknowledged by this node alone.
  auto r = Put(2, "alone", "v");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  // ONE is still available once it has waited a few seconds for its peers' state (it was in
  // the ring before, so its saved view is the ring): it owns the key or holds a hint.
  EXPECT_TRUE(Eventually([&] { return Put(2, "alone", "v", {"--consistency", "one"}).exit_code == 0; },
                         std::chrono::seconds(30)))
      << Put(2, "alone", "v", {"--consistency", "one"}).err;
  EXPECT_TRUE(SeeStatus({2}, {0, 1}, "DOWN"))
      << Kvtool({"--host", nodes_[2]->address(), "status"}).out << nodes_[2]->stderr_text();
}

}  // namespace
}  // namespace kv::test
