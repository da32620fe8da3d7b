// Anti-entropy on real kvd processes with hinted handoff off, so that nothing but repair can
// bring a replica back: `kvtool repair` after a node missed 10,000 writes, a second repair that
// moves nothing, a node rebuilt from a wiped data folder, and background repair alone.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "rpc/client_conn.h"
#include "tests/integration/process.h"

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kFast = {
    "--probe-interval-ms", "200",          "--probe-timeout-ms",     "100",  "--gossip-interval-ms",
    "50",                  "--cluster-name", "rp", "--push-pull-interval-ms", "2000",
    "--hinted-handoff",    "off",          "--tree-bits",            "12"};

class Repair : public ::testing::Test {
 protected:
  void StartNode(int i, const std::vector<std::string>& extra) {
    const std::string ip = "127.0.0." + std::to_string(i + 1);
    std::vector<std::string> flags = kFast;
    flags.insert(flags.end(), extra.begin(), extra.end());
    flags.insert(flags.end(), {"--gossip", ip + ":0"});
    if (i > 0) flags.insert(flags.end(), {"--seeds", nodes_[0]->gossip_address()});
    auto node = std::make_unique<Kvd>(dir_.path() + "/n" + std::to_string(i + 1), flags, ip);
    ASSERT_TRUE(node->Start()) << node->stderr_text();
    if (static_cast<int>(nodes_.size()) <= i) {
      nodes_.push_back(std::move(node));
    } else {
      nodes_[i] = std::move(node);
    }
  }

  void StartAll(int n, const std::vector<std::string>& extra = {}) {
    extra_ = extra;
    for (int i = 0; i < n; ++i) StartNode(i, extra);
    ASSERT_TRUE(AllSee(n, "UP"));
    std::vector<std::string> hosts;
    for (const auto& node : nodes_) hosts.push_back(node->address());
    ASSERT_TRUE(WaitSettled(hosts, static_cast<std::size_t>(n)));  // every join done
  }

  // Every live node shows `count` members with status `status`.
  bool AllSee(int count, const std::string& status, const std::vector<int>& observers = {}) {
    std::vector<int> obs = observers;
    if (obs.empty()) {
      for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) obs.push_back(i);
    }
    return Eventually(
        [&] {
          for (int o : obs) {
            auto r = Kvtool({"--host", nodes_[o]->address(), "--json", "status"});
            if (r.exit_code != 0) return false;
            const auto j = nlohmann::json::parse(r.out);
            int n = 0;
            for (const auto& m : j["nodes"]) n += m["status"] == status;
            if (n != count) return false;
          }
          return true;
        },
        std::chrono::seconds(30));
  }

  // Writes keys bench:0 .. bench:n-1 through node `via` at quorum.
  void Load(int via, int n) {
    auto r = Kvtool({"--host", nodes_[via]->address(), "bench", "--workload", "write-only",
                     "--distribution", "sequential", "--keys", std::to_string(n), "--ops",
                     std::to_string(n), "--concurrency", "16", "--duration", "120"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  }

  // How many of bench:0 .. bench:n-1 node `i` holds in its own store.
  int HeldLocally(int i, int n) {
    auto c = rpc::BlockingClient::Connect(nodes_[i]->address(), std::chrono::seconds(5));
    if (!c.ok()) return -1;
    int held = 0;
    for (int k = 0; k < n; ++k) {
      auto r = c.value()->Get("bench:" + std::to_string(k), rpc::Consistency::kDefault, true);
      held += r.status.ok() && !r.siblings.empty();
    }
    return held;
  }

  nlohmann::json RepairOn(int i, int* exit_code, bool dry_run = false) {
    std::vector<std::string> args = {"--host", nodes_[i]->address(), "--json", "repair"};
    if (dry_run) args.push_back("--dry-run");
    auto r = Kvtool(args);
    *exit_code = r.exit_code;
    if (r.out.empty()) {
      ADD_FAILURE() << "repair printed nothing: " << r.err;
      return {};
    }
    return nlohmann::json::parse(r.out);
  }

  TempDir dir_;
  std::vector<std::string> extra_;
  std::vector<std::unique_ptr<Kvd>> nodes_;
};

TEST_F(Repair, ReplicaThatMissedWritesIsRepairedAndASecondRepairMovesNothing) {
  const int kKeys = 10000;
  StartAll(3, {"--repair-interval-s", "0"});
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(AllSee(1, "DOWN", {0, 1}));
  Load(0, kKeys);
  StartNode(2, extra_);
  ASSERT_TRUE(AllSee(3, "UP"));
  EXPECT_EQ(HeldLocally(2, kKeys), 0);  // nothing else brought it back

  int code = -1;
  auto dry = RepairOn(2, &code, /*dry_run=*/true);
  EXPECT_EQ(code, 0);
  EXPECT_GE(dry["keys_differing"].get<int>(), kKeys);
  EXPECT_EQ(dry["keys_moved"].get<int>(), 0);
  EXPECT_EQ(HeldLocally(2, kKeys), 0);

  auto first = RepairOn(2, &code);
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(first["consistent"].get<bool>());
  EXPECT_EQ(first["keys_moved"].get<int>(), kKeys);
  EXPECT_EQ(HeldLocally(2, kKeys), kKeys);

  // Every node's status shows when node 2 repaired and what it moved.
  {
    auto st = Kvtool({"--host", nodes_[0]->address(), "--json", "status"});
    ASSERT_EQ(st.exit_code, 0) << st.err;
    const auto j = nlohmann::json::parse(st.out);
    bool found = false;
    for (const auto& m : j["nodes"]) {
      if (m["id"] != nodes_[2]->node_id()) continue;
      found = true;
      EXPECT_GT(m["last_repair"].get<double>(), 0) << m.dump();
      EXPECT_EQ(m["repair_keys_moved"].get<int>(), kKeys);
    }
    EXPECT_TRUE(found);
  }

  auto second = RepairOn(2, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(second["keys_moved"].get<int>(), 0);
  EXPECT_EQ(second["keys_differing"].get<int>(), 0);
  // Consistent ranges cost their roots only.
  EXPECT_EQ(second["tree_nodes_exchanged"].get<int>(), second["ranges"].get<int>());
}

TEST_F(Repair, UnreachablePeerIsNamedAndExitsThree) {
  StartAll(3, {"--repair-interval-s", "0"});
  nodes_[1]->Stop(SIGKILL);
  ASSERT_TRUE(AllSee(1, "DOWN", {0, 2}));
  int code = -1;
  auto r = RepairOn(0, &code);
  EXPECT_EQ(code, 3);
  EXPECT_FALSE(r["consistent"].get<bool>());
  ASSERT_FALSE(r["skipped"].empty());
  EXPECT_NE(r["skipped"][0].get<std::string>().find(nodes_[1]->node_id()), std::string::npos)
      << r.dump();
}

TEST_F(Repair, WipedNodeRejoinsThroughItsJoinAndRepairThenFindsNothing) {
  const int kKeys = 2000;
  StartAll(3, {"--repair-interval-s", "0"});
  Load(0, kKeys);
  const std::string old_id = nodes_[2]->node_id();
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(AllSee(1, "DOWN", {0, 1}));
  ASSERT_EQ(Kvtool({"--host", nodes_[0]->address(), "removenode", old_id}).exit_code, 0);
  std::filesystem::remove_all(dir_.path() + "/n3");
  StartNode(2, extra_);  // a new node: new id, new tokens
  ASSERT_NE(nodes_[2]->node_id(), old_id);
  ASSERT_TRUE(AllSee(3, "UP"));
  ASSERT_TRUE(WaitSettled({nodes_[0]->address(), nodes_[1]->address(), nodes_[2]->address()}, 3));
  // N=3 on three nodes: it owns every key, and its join copied every one.
  EXPECT_EQ(HeldLocally(2, kKeys), kKeys);
  int code = -1;
  auto r = RepairOn(2, &code);
  EXPECT_EQ(code, 0) << r.dump();
  EXPECT_EQ(r["keys_differing"], 0) << r.dump();
}

TEST_F(Repair, BackgroundRepairAloneConverges) {
  const int kKeys = 3000;
  StartAll(3, {"--repair-interval-s", "1"});
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(AllSee(1, "DOWN", {0, 1}));
  Load(1, kKeys);
  StartNode(2, extra_);
  ASSERT_TRUE(AllSee(3, "UP"));
  EXPECT_TRUE(Eventually([&] { return HeldLocally(2, kKeys) == kKeys; }, std::chrono::seconds(60)));
}

// Whether node `i` stores a record for `key` at all (a tombstone counts; a purged key does not).
bool StoresRecord(const std::string& host, const std::string& key) {
  auto c = rpc::BlockingClient::Connect(host, std::chrono::seconds(5));
  if (!c.ok()) return true;  // cannot tell: assume it does
  return !c.value()->Get(key, rpc::Consistency::kDefault, true).context.empty();
}

TEST_F(Repair, TombstonesArePurgedOnlyOnceEveryReplicaHoldsThemAndDeletedDataStaysDeleted) {
  const int kKeys = 50;
  StartAll(3, {"--repair-interval-s", "0", "--tombstone-grace-s", "1"});
  Load(0, kKeys);
  // Writes are acknowledged at quorum: the third replica's copies may still be on their way.
  // Node 2 must hold every value before it is killed, or it would miss writes as well as deletes.
  ASSERT_TRUE(Eventually([&] { return HeldLocally(2, kKeys) == kKeys; }, std::chrono::seconds(30)))
      << "node 2 holds " << HeldLocally(2, kKeys) << " of " << kKeys;
  // One replica misses the deletes: it still holds every value.
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(AllSee(1, "DOWN", {0, 1}));
  for (int k = 0; k < kKeys; ++k) {
    auto r = Kvtool({"--host", nodes_[k % 2]->address(), "delete", "bench:" + std::to_string(k)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Past the grace period (the event waited for is the clock itself passing it), but a replica
  // is unreachable: repair fails (exit 3) and purges nothing.
  const auto grace_over = std::chrono::system_clock::now() + std::chrono::seconds(2);
  ASSERT_TRUE(Eventually([&] { return std::chrono::system_clock::now() >= grace_over; },
                         std::chrono::seconds(5)));
  int code = -1;
  auto skipped = RepairOn(0, &code);
  EXPECT_EQ(code, 3);
  EXPECT_EQ(skipped["tombstones_purged"].get<int>(), 0);
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_TRUE(StoresRecord(nodes_[0]->address(), "bench:" + std::to_string(k))) << k;
  }
  // It returns holding the old values; a full repair gives it the tombstones, then purges them
  // everywhere.
  StartNode(2, extra_);
  ASSERT_TRUE(AllSee(3, "UP"));
  EXPECT_EQ(HeldLocally(2, kKeys), kKeys);
  auto full = RepairOn(0, &code);
  EXPECT_EQ(code, 0) << full.dump();
  EXPECT_EQ(full["tombstones_purged"].get<int>(), kKeys);
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < kKeys; ++k) {
      EXPECT_FALSE(StoresRecord(nodes_[i]->address(), "bench:" + std::to_string(k)))
          << "node " << i << " key " << k;
    }
  }
  // Deleted data never comes back: more repairs from every node, then reads at ALL.
  for (int i = 0; i < 3; ++i) {
    auto again = RepairOn(i, &code);
    EXPECT_EQ(code, 0) << "node " << i << ": " << again.dump();
    EXPECT_EQ(again["keys_moved"].get<int>(), 0) << again.dump();
  }
  for (int k = 0; k < kKeys; ++k) {
    auto r = Kvtool({"--host", nodes_[1]->address(), "get", "bench:" + std::to_string(k),
                     "--consistency", "all"});
    EXPECT_EQ(r.exit_code, 1) << k << ": " << r.out << r.err;
  }
}

// Clock skew (kvd --testing-clock-offset-s): a coordinator whose clock runs two hours behind
// stamps its deletes two hours old. Past a one-hour grace by the clocks of the other replicas,
// they purge them at once; the skewed replica checks the grace with its own clock, finds the
// tombstones brand new, and keeps them. Nothing deleted comes back.
TEST_F(Repair, EachReplicaChecksTheGraceWithItsOwnClock) {
  const int kKeys = 20;
  StartAll(3, {"--repair-interval-s", "0", "--tombstone-grace-s", "3600"});
  Load(0, kKeys);
  ASSERT_TRUE(Eventually([&] { return HeldLocally(2, kKeys) == kKeys; }, std::chrono::seconds(30)));
  ASSERT_EQ(nodes_[2]->Stop(SIGTERM), 0);
  std::vector<std::string> behind = extra_;
  behind.insert(behind.end(), {"--testing-clock-offset-s", "-7200"});
  StartNode(2, behind);
  ASSERT_TRUE(AllSee(3, "UP"));
  ASSERT_NE(nodes_[2]->stderr_text().find("clock runs -7200 s off"), std::string::npos);
  // Seen UP is not yet serving: the restarted node first waits for a peer's state.
  ASSERT_TRUE(Eventually(
      [&] { return Kvtool({"--host", nodes_[2]->address(), "get", "bench:0"}).exit_code == 0; },
      std::chrono::seconds(30)));
  for (int k = 0; k < kKeys; ++k) {
    auto r = Kvtool({"--host", nodes_[2]->address(), "delete", "bench:" + std::to_string(k),
                     "--consistency", "all"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  int code = -1;
  auto run = RepairOn(0, &code);
  EXPECT_EQ(code, 0) << run.dump();
  EXPECT_EQ(run["tombstones_purged"].get<int>(), kKeys) << run.dump();
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "bench:" + std::to_string(k);
    EXPECT_FALSE(StoresRecord(nodes_[0]->address(), key)) << key;
    EXPECT_FALSE(StoresRecord(nodes_[1]->address(), key)) << key;
    EXPECT_TRUE(StoresRecord(nodes_[2]->address(), key)) << key << ": purged by a clock that "
                                                         << "says the grace has not passed";
    auto g = Kvtool({"--host", nodes_[1]->address(), "get", key, "--consistency", "all"});
    EXPECT_EQ(g.exit_code, 1) << key << ": " << g.out << g.err;
  }
}

}  // namespace
}  // namespace kv::test
