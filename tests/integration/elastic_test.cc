// The elastic ring on real kvd processes: joins and decommissions under write load, a join
// killed in the middle of its copy, one movement at a time, replace, removenode, cleanup, and a
// rolling restart with SIGTERM. The promise checked everywhere: every acknowledged write stays
// readable at quorum, through every node, during and after each change.
//
// Membership runs with short intervals; every wait polls with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "rpc/client_conn.h"
#include "tests/integration/process.h"
#include "tests/integration/writers.h"

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kFast = {
    "--probe-interval-ms",     "200",  "--probe-timeout-ms", "100", "--gossip-interval-ms",  "50",
    "--push-pull-interval-ms", "2000", "--cluster-name",     "el",  "--handoff-interval-ms", "200",
    "--repair-interval-s",     "0"};

class Elastic : public ::testing::Test {
 protected:
  // Starts node i (127.0.0.(i+1)) joining through node 0's gossip address.
  void StartNode(int i, const std::vector<std::string>& extra = {}) {
    const std::string ip = "127.0.0." + std::to_string(i + 1);
    std::vector<std::string> flags = kFast;
    flags.insert(flags.end(), extra.begin(), extra.end());
    flags.insert(flags.end(), {"--gossip", ip + ":0"});
    if (i > 0) flags.insert(flags.end(), {"--seeds", seed_});
    auto node = std::make_unique<Kvd>(dir_.path() + "/n" + std::to_string(i + 1), flags, ip);
    ASSERT_TRUE(node->Start()) << node->stderr_text();
    if (i == 0) seed_ = node->gossip_address();
    if (static_cast<int>(nodes_.size()) <= i) nodes_.resize(static_cast<std::size_t>(i) + 1);
    nodes_[static_cast<std::size_t>(i)] = std::move(node);
  }

  void StartCluster(int n, const std::vector<std::string>& extra = {}) {
    for (int i = 0; i < n; ++i) StartNode(i, extra);
    ASSERT_TRUE(Settled(Live(), static_cast<std::size_t>(n)));
  }

  std::vector<int> Live() {
    std::vector<int> out;
    for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
      if (nodes_[static_cast<std::size_t>(i)] && nodes_[static_cast<std::size_t>(i)]->Alive()) {
        out.push_back(i);
      }
    }
    return out;
  }

  std::vector<std::string> Hosts(const std::vector<int>& which) {
    std::vector<std::string> out;
    for (int i : which) out.push_back(nodes_[static_cast<std::size_t>(i)]->address());
    return out;
  }

  bool Settled(const std::vector<int>& which, std::size_t members,
               std::chrono::seconds deadline = std::chrono::seconds(90)) {
    return WaitSettled(Hosts(which), members, deadline);
  }

  nlohmann::json Status(int i) {
    auto r = Kvtool({"--host", nodes_[static_cast<std::size_t>(i)]->address(), "--json",
                     "--timeout-ms", "3000", "status"});
    if (r.exit_code != 0) return nlohmann::json();
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  // Whether node 0 comes to see member `id` DOWN within 30 s.
  bool SeenDown(const std::string& id) {
    return Eventually(
        [&] {
          const auto s = Status(0);  // named: iterating a temporary's member dangles
          for (const auto& m : s["nodes"]) {
            if (m["id"] == id) return m["status"] == "DOWN";
          }
          return false;
        },
        std::chrono::seconds(30));
  }

  // Puts keys k0..k{n-1} at quorum through node `via`.
  std::vector<std::string> Load(int via, int n) {
    auto c = rpc::BlockingClient::Connect(nodes_[static_cast<std::size_t>(via)]->address(),
                                          std::chrono::milliseconds(5000));
    EXPECT_TRUE(c.ok());
    std::vector<std::string> keys;
    if (!c.ok()) return keys;
    for (int k = 0; k < n; ++k) {
      const std::string key = "k" + std::to_string(k);
      auto r = c.value()->Put(key, "v" + key, "", rpc::Consistency::kQuorum);
      EXPECT_TRUE(r.status.ok()) << r.status.ToString();
      keys.push_back(key);
    }
    return keys;
  }

  struct Check {
    std::vector<std::string> missing;  // answered, without the acknowledged value
    std::vector<std::string> failed;   // did not answer at quorum
  };
  // Reads every key at quorum through `host`; its value must be "v" + key.
  Check ReadAll(const std::string& host, const std::vector<std::string>& keys) {
    Check out;
    auto c = rpc::BlockingClient::Connect(host, std::chrono::milliseconds(5000));
    if (!c.ok()) {
      out.failed = keys;
      return out;
    }
    for (const auto& key : keys) {
      auto r = c.value()->Get(key, rpc::Consistency::kQuorum);
      if (r.status.IsNotFound()) {
        out.missing.push_back(key);
      } else if (!r.status.ok()) {
        out.failed.push_back(key + " (" + r.status.ToString() + ")");
      } else if (std::find(r.siblings.begin(), r.siblings.end(), "v" + key) ==
                 r.siblings.end()) {
        out.missing.push_back(key);
      }
    }
    return out;
  }

  // Every key readable at quorum through every one of `via`.
  void ExpectAllReadable(const std::vector<int>& via, const std::vector<std::string>& keys,
                         const std::string& when) {
    for (int i : via) {
      Check c = ReadAll(nodes_[static_cast<std::size_t>(i)]->address(), keys);
      EXPECT_TRUE(c.missing.empty()) << when << ": " << c.missing.size() << " of " << keys.size()
                                     << " acknowledged keys missing through node " << i
                                     << ", first " << c.missing.front();
      EXPECT_TRUE(c.failed.empty()) << when << ": " << c.failed.size() << " of " << keys.size()
                                    << " reads failed through node " << i << ", first "
                                    << c.failed.front();
    }
  }

  // How many of `keys` node i holds in its own store.
  int HeldLocally(int i, const std::vector<std::string>& keys) {
    auto c = rpc::BlockingClient::Connect(nodes_[static_cast<std::size_t>(i)]->address(),
                                          std::chrono::milliseconds(5000));
    if (!c.ok()) return -1;
    int held = 0;
    for (const auto& key : keys) held += c.value()->Get(key, rpc::Consistency::kDefault, true).status.ok();
    return held;
  }

  // `kvtool repair --dry-run` on node i: the keys that differ from the other replicas.
  std::int64_t DifferingKeys(int i) {
    auto r = Kvtool({"--host", nodes_[static_cast<std::size_t>(i)]->address(), "--json",
                     "repair", "--dry-run"});
    if (r.out.empty()) return -1;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || r.exit_code != 0) return -1;
    return j["keys_differing"].get<std::int64_t>();
  }

  TempDir dir_;
  std::string seed_;
  std::vector<std::unique_ptr<Kvd>> nodes_;
};

TEST_F(Elastic, JoinsAndDecommissionsUnderWritesLoseNothingAndTheDataReallyMoves) {
  StartCluster(3);
  const auto loaded = Load(0, 600);
  Writers writers(Hosts({0, 1, 2}), 4);
  ASSERT_TRUE(Eventually([&] { return writers.acked_count() > 50; }, std::chrono::seconds(30)));
  // Two nodes join while the writers write.
  StartNode(3);
  StartNode(4);
  // While they join: every key acknowledged so far reads through every node that serves.
  bool saw_movement = false;
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status(0);
        saw_movement |= !s.is_discarded() && !s["movement"].is_null();
        return saw_movement;
      },
      std::chrono::seconds(30)));
  {
    const auto during = writers.Acked();
    for (const auto& host : Hosts({0, 1, 2})) {
      EXPECT_TRUE(ReadAll(host, loaded).missing.empty()) << "during the joins, via " << host;
      EXPECT_TRUE(ReadAll(host, during).missing.empty()) << "during the joins, via " << host;
    }
  }
  ASSERT_TRUE(Settled({0, 1, 2, 3, 4}, 5));
  writers.SetHosts(Hosts({2, 3, 4}));
  auto acked = writers.Acked();
  acked.insert(acked.end(), loaded.begin(), loaded.end());
  ExpectAllReadable({0, 1, 2, 3, 4}, acked, "after the joins");
  // The new nodes hold their share: N=3 of 5 nodes, so about 60% of the keys each.
  for (int i : {3, 4}) {
    const int held = HeldLocally(i, loaded);
    EXPECT_GT(held, 600 / 4) << "node " << i;
  }

  // Decommission two original nodes while the writers go on (through nodes that stay).
  for (int i : {0, 1}) {
    // One movement at a time: node 1 refuses while its view still shows node 0 leaving, as an
    // operator would see in `status`.
    ASSERT_TRUE(Eventually(
        [&] {
          auto s = Status(i);
          return s.is_object() && s.contains("movement") && s["movement"].is_null();
        },
        std::chrono::seconds(30)));
    auto r = Kvtool({"--host", nodes_[static_cast<std::size_t>(i)]->address(), "decommission"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // It stops by itself once it has left.
    EXPECT_TRUE(Eventually([&] { return !nodes_[static_cast<std::size_t>(i)]->Alive(); },
                           std::chrono::seconds(30)))
        << r.err << nodes_[static_cast<std::size_t>(i)]->stderr_text();
  }
  ASSERT_TRUE(Settled({2, 3, 4}, 3));
  auto s = Status(2);
  int left = 0;
  for (const auto& m : s["nodes"]) left += m["status"] == "LEFT";
  EXPECT_EQ(left, 2) << s.dump();
  writers.Stop();
  acked = writers.Acked();
  acked.insert(acked.end(), loaded.begin(), loaded.end());
  ExpectAllReadable({2, 3, 4}, acked, "after the decommissions");
  // The last original node dies: the two new ones hold every key, so quorum still answers.
  nodes_[2]->Stop(SIGKILL);
  ExpectAllReadable({3, 4}, acked, "with the last original node dead");
  std::printf("[ figure ] %zu acknowledged keys through 2 joins, 2 decommissions and a kill: "
              "all readable\n",
              acked.size());
}

TEST_F(Elastic, AJoinKilledInItsCopyResumesFromItsCheckpointAndFinishes) {
  StartCluster(3);
  const auto keys = Load(0, 3000);
  // A slow copy (about 10 KB/s) so that the kill lands in the middle of it.
  const std::vector<std::string> slow = {"--movement-rate-bytes", "10000"};
  StartNode(3, slow);
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status(3);
        if (s.is_discarded() || s["movement"].is_null()) return false;
        const auto& m = s["movement"];
        return m.contains("copies_done") && m["copies_done"].get<int>() > 2 &&
               m["copies_done"].get<int>() < m["copies_total"].get<int>();
      },
      std::chrono::seconds(60)))
      << Status(3).dump();
  nodes_[3]->Stop(SIGKILL);
  const std::size_t before = nodes_[3]->stderr_text().size();
  // While it is down its join stands: writes still go to it (as hints) and reads use the old
  // ring, so every key reads.
  ExpectAllReadable({0, 1}, keys, "with the joiner down mid-copy");
  ASSERT_TRUE(nodes_[3]->Start()) << nodes_[3]->stderr_text();
  ASSERT_TRUE(Eventually(
      [&] {
        return nodes_[3]->stderr_text().find("resuming the join", before) != std::string::npos;
      },
      std::chrono::seconds(30)))
      << nodes_[3]->stderr_text();
  ASSERT_TRUE(Settled({0, 1, 2, 3}, 4, std::chrono::seconds(120)));
  EXPECT_EQ(DifferingKeys(3), 0);
  ExpectAllReadable({0, 1, 2, 3}, keys, "after the resumed join");
}

// A decommissioning node killed in the middle of its copy: kvtool says so (it does not claim a
// decommission that did not happen), the node comes back a normal member with its ranges, and a
// second decommission resumes from the checkpoint and finishes.
TEST_F(Elastic, ADecommissionerKilledMidCopyIsReportedAndResumesWhenAskedAgain) {
  StartCluster(3);
  // Node 3 joins while there is no data (fast), then copies slowly (about 10 KB/s) when it leaves.
  StartNode(3, {"--movement-rate-bytes", "10000"});
  ASSERT_TRUE(Settled({0, 1, 2, 3}, 4));
  const auto keys = Load(0, 3000);
  RunResult first;
  std::thread follow([&] { first = Kvtool({"--host", nodes_[3]->address(), "decommission"}); });
  const bool mid_copy = Eventually(
      [&] {
        auto s = Status(3);
        if (s.is_discarded() || s["movement"].is_null()) return false;
        const auto& m = s["movement"];
        return m.contains("copies_done") && m["copies_done"].get<int>() > 2 &&
               m["copies_done"].get<int>() < m["copies_total"].get<int>();
      },
      std::chrono::seconds(60));
  nodes_[3]->Stop(SIGKILL);
  follow.join();
  ASSERT_TRUE(mid_copy);
  EXPECT_EQ(first.exit_code, 3) << first.out << first.err;  // kvtool: the operation failed
  EXPECT_NE(first.err.find("stopped answering before its decommission finished"),
            std::string::npos)
      << first.err;
  ExpectAllReadable({0, 1, 2}, keys, "with the decommissioner down mid-copy");

  const std::size_t before = nodes_[3]->stderr_text().size();
  ASSERT_TRUE(nodes_[3]->Start()) << nodes_[3]->stderr_text();
  ASSERT_TRUE(Settled({0, 1, 2, 3}, 4));  // back in the ring, normal
  auto again = Kvtool({"--host", nodes_[3]->address(), "decommission"});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(nodes_[3]->stderr_text().find("resuming the decommission", before), std::string::npos)
      << nodes_[3]->stderr_text();
  ASSERT_TRUE(Settled({0, 1, 2}, 3));
  for (int i : {0, 1, 2}) EXPECT_EQ(HeldLocally(i, keys), 3000) << "node " << i;
  ExpectAllReadable({0, 1, 2}, keys, "after the resumed decommission");
}

// The same, but the decommissioner never comes back: its stalled decommission would block every
// movement, so removenode of it supersedes it and re-replicates its ranges from the others.
TEST_F(Elastic, RemovenodeOfADecommissionerThatDiedMidCopySupersedesIt) {
  StartCluster(3);
  StartNode(3, {"--movement-rate-bytes", "10000"});
  ASSERT_TRUE(Settled({0, 1, 2, 3}, 4));
  const auto keys = Load(0, 2000);
  const std::string dead = nodes_[3]->node_id();
  auto r = Kvtool({"--host", nodes_[3]->address(), "decommission", "--no-wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status(3);
        if (s.is_discarded() || s["movement"].is_null()) return false;
        return s["movement"].contains("copies_done") && s["movement"]["copies_done"].get<int>() > 2;
      },
      std::chrono::seconds(60)));
  nodes_[3]->Stop(SIGKILL);
  ASSERT_TRUE(SeenDown(dead));
  r = Kvtool({"--host", nodes_[0]->address(), "removenode", dead});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << Status(0).dump(1) << nodes_[3]->stderr_text();
  ASSERT_TRUE(Settled({0, 1, 2}, 3));
  for (int i : {0, 1, 2}) EXPECT_EQ(HeldLocally(i, keys), 2000) << "node " << i;
  ExpectAllReadable({0, 1, 2}, keys, "after removing the dead decommissioner");
}

TEST_F(Elastic, OneMovementAtATimeAndCleanupDeletesOnlyWhatMovedAway) {
  StartCluster(3);
  const auto keys = Load(0, 2000);
  // At 2 KB/s the join's copy lasts some 25 s here, long enough for the two refused commands
  // below even under a sanitizer (at 20 KB/s a CI run under ASan saw the join finish between
  // them).
  StartNode(3, {"--movement-rate-bytes", "2000"});
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status(0);
        return !s.is_discarded() && !s["movement"].is_null();
      },
      std::chrono::seconds(30)));
  // A second movement is refused, naming the one under way; so is a cleanup.
  auto r = Kvtool({"--host", nodes_[1]->address(), "decommission"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("join of " + nodes_[3]->node_id()), std::string::npos) << r.err;
  r = Kvtool({"--host", nodes_[0]->address(), "cleanup"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("movement is pending"), std::string::npos) << r.err;
  ASSERT_TRUE(Settled({0, 1, 2, 3}, 4, std::chrono::seconds(240)));
  // The original nodes still hold every key; cleanup deletes what they no longer replicate.
  std::uint64_t deleted = 0;
  for (int i : {0, 1, 2}) {
    EXPECT_EQ(HeldLocally(i, keys), 2000) << "node " << i;
    r = Kvtool({"--host", nodes_[static_cast<std::size_t>(i)]->address(), "--json", "cleanup"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    deleted += j["keys_deleted"].get<std::uint64_t>();
    EXPECT_GT(j["bytes_freed"].get<std::uint64_t>(), 0u);
  }
  // N=3 of 4 nodes: each key the new node took lost exactly one old replica, and every key
  // keeps exactly 3 copies.
  EXPECT_EQ(deleted, static_cast<std::uint64_t>(HeldLocally(3, keys)));
  int copies = 0;
  for (int i : {0, 1, 2, 3}) copies += HeldLocally(i, keys);
  EXPECT_EQ(copies, 3 * 2000);
  ExpectAllReadable({0, 1, 2, 3}, keys, "after cleanup");
  // A second cleanup has nothing left to delete.
  r = Kvtool({"--host", nodes_[0]->address(), "--json", "cleanup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["keys_deleted"], 0);
}

// A node that lost ranges at a join still holds their old data until a cleanup. Keys deleted
// afterwards, their tombstones purged by the keys' replicas, and the ranges given back to that
// node by a decommission: the old values must not come back (they did, in seed 414 of the
// partition campaign). A node that gains a range drops what it held there before it copies it.
TEST_F(Elastic, ARangeRegainedAfterItsTombstonesWerePurgedBringsNothingBack) {
  const std::vector<std::string> grace = {"--tombstone-grace-s", "1"};
  StartCluster(3, grace);
  const auto keys = Load(0, 300);
  StartNode(3, grace);
  ASSERT_TRUE(Settled({0, 1, 2, 3}, 4, std::chrono::seconds(240)));
  {  // (one client per thread at a time: HeldLocally opens its own)
    auto c = rpc::BlockingClient::Connect(nodes_[0]->address(), std::chrono::milliseconds(5000));
    ASSERT_TRUE(c.ok());
    for (const auto& key : keys) {
      auto read = c.value()->Get(key, rpc::Consistency::kAll);
      ASSERT_TRUE(read.status.ok()) << key << ": " << read.status.ToString();
      auto del = c.value()->Delete(key, read.context, rpc::Consistency::kAll);
      ASSERT_TRUE(del.status.ok()) << key << ": " << del.status.ToString();
    }
  }
  // Every replica holds every tombstone (ALL); once past the grace, repairs purge them.
  std::uint64_t purged = 0;
  const auto end = Clock::now() + std::chrono::seconds(90);
  while (purged < keys.size() && Clock::now() < end) {
    for (int i : {0, 1, 2, 3}) {
      auto r = Kvtool({"--host", nodes_[static_cast<std::size_t>(i)]->address(), "--json",
                       "repair"});
      if (r.exit_code != 0) continue;
      purged += nlohmann::json::parse(r.out)["tombstones_purged"].get<std::uint64_t>();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // poll interval
  }
  ASSERT_GE(purged, keys.size());
  // The old nodes still hold the values of the keys node 3 took from them: the stale data the
  // decommission below gives ranges back to.
  int stale = 0;
  for (int i : {0, 1, 2}) stale += HeldLocally(i, keys);
  ASSERT_GT(stale, 0);
  auto r = Kvtool({"--host", nodes_[3]->address(), "decommission"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(Settled({0, 1, 2}, 3, std::chrono::seconds(240)));
  for (int i : {0, 1, 2}) {
    auto via = rpc::BlockingClient::Connect(nodes_[static_cast<std::size_t>(i)]->address(),
                                            std::chrono::milliseconds(5000));
    ASSERT_TRUE(via.ok());
    std::vector<std::string> back;
    for (const auto& key : keys) {
      auto read = via.value()->Get(key, rpc::Consistency::kAll);
      if (!read.status.IsNotFound()) back.push_back(key + " (" + read.status.ToString() + ")");
    }
    EXPECT_TRUE(back.empty()) << back.size() << " deleted keys came back through node " << i
                              << " (" << stale << " stale copies before), first " << back.front();
  }
}

TEST_F(Elastic, ReplaceTakesADeadNodesPlaceAndRemovenodeReReplicates) {
  StartCluster(4);
  const auto keys = Load(0, 1500);
  const std::string dead = nodes_[3]->node_id();
  nodes_[3]->Stop(SIGKILL);
  ASSERT_TRUE(SeenDown(dead));
  // A new node replaces it: same tokens, its data copied from the other replicas.
  StartNode(4, {"--replace", dead});
  ASSERT_TRUE(Settled({0, 1, 2, 4}, 4, std::chrono::seconds(120)));
  auto s = Status(0);
  for (const auto& m : s["nodes"]) {
    if (m["id"] == dead) {
      EXPECT_EQ(m["status"], "REMOVED");
    }
  }
  EXPECT_EQ(DifferingKeys(4), 0);
  ExpectAllReadable({0, 1, 2, 4}, keys, "after the replace");

  // Node 2 dies; removenode gives its ranges to the survivors, copied from the other replicas.
  const std::string gone = nodes_[2]->node_id();
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(SeenDown(gone));
  auto r = Kvtool({"--host", nodes_[0]->address(), "removenode", gone});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(Settled({0, 1, 4}, 3));
  // N=3 on the three survivors: each holds every key, and they agree.
  for (int i : {0, 1, 4}) EXPECT_EQ(HeldLocally(i, keys), 1500) << "node " << i;
  for (int i : {0, 1, 4}) EXPECT_EQ(DifferingKeys(i), 0) << "node " << i;
  ExpectAllReadable({0, 1, 4}, keys, "after removenode");
}

TEST_F(Elastic, HintsForARemovedNodeGoToTheKeysCurrentOwners) {
  StartCluster(4);
  const std::string dead = nodes_[3]->node_id();
  nodes_[3]->Stop(SIGKILL);
  auto hints_for_dead = [&]() {
    std::uint64_t total = 0;
    for (int i : {0, 1, 2}) {
      const auto s = Status(i);
      for (const auto& m : s["nodes"]) {
        if (m["id"] == dead) total += m["hints"].get<std::uint64_t>();
      }
    }
    return total;
  };
  ASSERT_TRUE(SeenDown(dead));
  const auto keys = Load(0, 300);
  ASSERT_GT(hints_for_dead(), 0u);
  auto r = Kvtool({"--host", nodes_[0]->address(), "removenode", dead});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Nobody keeps hints for it forever: they are written to the keys' owners, then dropped.
  EXPECT_TRUE(Eventually([&] { return hints_for_dead() == 0; }, std::chrono::seconds(60)));
  for (int i : {0, 1, 2}) EXPECT_EQ(HeldLocally(i, keys), 300) << "node " << i;
  ExpectAllReadable({0, 1, 2}, keys, "after the removal");
}

TEST_F(Elastic, RollingRestartWithSigtermMovesNothingAndLosesNothing) {
  StartCluster(5);
  const auto loaded = Load(0, 300);
  Writers writers(Hosts({0, 1, 2, 3, 4}), 4);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(nodes_[static_cast<std::size_t>(i)]->Stop(SIGTERM), 0);
    const std::size_t before = nodes_[static_cast<std::size_t>(i)]->stderr_text().size();
    // Others see it DOWN, still normal, still in the ring; no movement starts.
    auto s = Status((i + 1) % 5);
    EXPECT_TRUE(s["movement"].is_null()) << s.dump();
    for (const auto& m : s["nodes"]) {
      EXPECT_NE(m["status"], "LEFT") << s.dump();
      EXPECT_EQ(m["state"], "normal") << s.dump();
    }
    ASSERT_TRUE(nodes_[static_cast<std::size_t>(i)]->Start());
    ASSERT_TRUE(Settled({0, 1, 2, 3, 4}, 5));
    const std::string restarted = nodes_[static_cast<std::size_t>(i)]->stderr_text().substr(before);
    EXPECT_EQ(restarted.find("join of"), std::string::npos) << restarted;
  }
  writers.Stop();
  auto acked = writers.Acked();
  ASSERT_GT(acked.size(), 0u);
  acked.insert(acked.end(), loaded.begin(), loaded.end());
  ExpectAllReadable({0, 1, 2, 3, 4}, acked, "after the rolling restart");
}

}  // namespace
}  // namespace kv::test
