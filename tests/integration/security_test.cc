// Security on real kvd processes: the gossip keyring rotated across a live cluster under load
// with `kvtool keyring`, and what a request is told when it cannot be applied everywhere.
//
// Membership runs with short intervals; every wait polls with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/process.h"
#include "tests/integration/writers.h"

namespace kv::test {
namespace {

const std::vector<std::string> kFast = {
    "--probe-interval-ms",     "200",  "--probe-timeout-ms", "100", "--gossip-interval-ms", "50",
    "--push-pull-interval-ms", "2000", "--cluster-name",     "sec", "--repair-interval-s",  "0"};

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Security : public ::testing::Test {
 protected:
  // The key file of node i: each node has its own, which kvd rewrites when its keyring changes.
  std::string KeyFile(int i) const { return dir_.path() + "/n" + std::to_string(i + 1) + ".key"; }

  // Starts node i (127.0.0.(i+1)), joining through node 0, with `key` in its own key file.
  void StartNode(int i, const std::string& key) {
    const std::string ip = "127.0.0." + std::to_string(i + 1);
    WriteFile(dir_.path(), "n" + std::to_string(i + 1) + ".key", key);
    std::vector<std::string> flags = kFast;
    flags.insert(flags.end(), {"--gossip", ip + ":0", "--gossip-key-file", KeyFile(i)});
    if (i > 0) flags.insert(flags.end(), {"--seeds", nodes_[0]->gossip_address()});
    nodes_.push_back(std::make_unique<Kvd>(dir_.path() + "/n" + std::to_string(i + 1), flags, ip));
    ASSERT_TRUE(nodes_.back()->Start()) << nodes_.back()->stderr_text();
  }

  void StartCluster(int n, const std::string& key) {
    for (int i = 0; i < n; ++i) StartNode(i, key);
    ASSERT_TRUE(WaitSettled(Hosts(), static_cast<std::size_t>(n)));
  }

  std::vector<std::string> Hosts() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) out.push_back(n->address());
    return out;
  }

  // `kvtool --json keyring ARGS...` through node i: the exit code and the parsed answer.
  std::pair<int, nlohmann::json> Keyring(int i, const std::vector<std::string>& args,
                                         std::string* err = nullptr) {
    std::vector<std::string> argv = {"--host", nodes_[static_cast<std::size_t>(i)]->address(),
                                     "--json", "keyring"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = Kvtool(argv);
    if (err != nullptr) *err = r.err;
    return {r.exit_code, nlohmann::json::parse(r.out, nullptr, false)};
  }

  // Node i's counter `name` from `kvtool stats`; -1 if it did not answer.
  std::int64_t Counter(int i, const std::string& name) {
    auto r = Kvtool({"--host", nodes_[static_cast<std::size_t>(i)]->address(), "--json", "stats"});
    if (r.exit_code != 0) return -1;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j["node"].contains(name)) return -1;
    return j["node"][name].get<std::int64_t>();
  }

  // For each key fingerprint in a keyring answer: {installed on, primary on}.
  static std::map<std::string, std::pair<int, int>> Spread(const nlohmann::json& j) {
    std::map<std::string, std::pair<int, int>> out;
    for (const auto& k : j["keys"]) {
      out[k["key"].get<std::string>()] = {k["installed"].get<int>(), k["primary"].get<int>()};
    }
    return out;
  }

  TempDir dir_;
  std::vector<std::unique_ptr<Kvd>> nodes_;
};

// The keyring rotation memberlist and Serf prescribe, on a live 5-node cluster under write load:
// install the new key everywhere, use it everywhere, remove the old one. Every member answers
// for itself at each step; no member is ever suspected, no gossip message fails to open, no
// request fails; each node's key file ends up holding the new key alone, so a restarted node
// rejoins.
TEST_F(Security, AKeyRotationUnderLoadReachesEveryMemberWithoutASuspicionOrAFailedRequest) {
  const std::string key_a = Trimmed(NewKey());
  const std::string key_b = Trimmed(NewKey());
  StartCluster(5, key_a + "\n");
  std::vector<std::int64_t> suspicions;
  for (int i = 0; i < 5; ++i) suspicions.push_back(Counter(i, "gossip_suspicions_started"));
  Writers writers(Hosts(), 3);
  ASSERT_TRUE(Eventually([&] { return writers.acked_count() > 30; }, std::chrono::seconds(30)));

  auto [code, list] = Keyring(2, {"list"});
  ASSERT_EQ(code, 0) << list.dump();
  ASSERT_EQ(Spread(list).size(), 1u) << list.dump();
  const std::string fp_a = Spread(list).begin()->first;
  EXPECT_EQ(Spread(list)[fp_a], std::make_pair(5, 5)) << list.dump();

  auto [installed, after_install] = Keyring(0, {"install", key_b});
  ASSERT_EQ(installed, 0) << after_install.dump();
  EXPECT_EQ(after_install["answered"], 5) << after_install.dump();
  auto spread = Spread(after_install);
  ASSERT_EQ(spread.size(), 2u) << after_install.dump();
  std::string fp_b;
  for (const auto& [fp, counts] : spread) {
    if (fp != fp_a) fp_b = fp;
  }
  EXPECT_EQ(spread[fp_b], std::make_pair(5, 0)) << after_install.dump();
  EXPECT_EQ(spread[fp_a], std::make_pair(5, 5)) << after_install.dump();
  // Installing it again changes nothing and succeeds (a request some members missed can be
  // repeated).
  EXPECT_EQ(Keyring(3, {"install", key_b}).first, 0);

  auto [used, after_use] = Keyring(1, {"use", key_b});
  ASSERT_EQ(used, 0) << after_use.dump();
  EXPECT_EQ(Spread(after_use)[fp_b], std::make_pair(5, 5)) << after_use.dump();

  // The primary cannot be removed, a key that is not one is refused, and neither changes a thing.
  std::string err;
  EXPECT_EQ(Keyring(4, {"remove", key_b}, &err).first, 2);
  EXPECT_NE(err.find("is the primary"), std::string::npos) << err;
  EXPECT_EQ(Keyring(4, {"install", "not-a-key"}, &err).first, 2);
  EXPECT_NE(err.find("KEY"), std::string::npos) << err;

  auto [removed, after_remove] = Keyring(0, {"remove", key_a});
  ASSERT_EQ(removed, 0) << after_remove.dump();
  ASSERT_EQ(Spread(after_remove).size(), 1u) << after_remove.dump();
  EXPECT_EQ(Spread(after_remove)[fp_b], std::make_pair(5, 5)) << after_remove.dump();

  // Load goes on under the new key alone.
  const std::size_t acked = writers.acked_count();
  ASSERT_TRUE(
      Eventually([&] { return writers.acked_count() > acked + 30; }, std::chrono::seconds(30)));
  writers.Stop();
  const auto failures = writers.Failures();
  EXPECT_TRUE(failures.empty()) << failures.size() << " requests failed, first "
                                << failures.front();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Counter(i, "gossip_dropped_unopened"), 0) << "node " << i;
    EXPECT_EQ(Counter(i, "gossip_suspicions_started"), suspicions[static_cast<std::size_t>(i)])
        << "node " << i << " suspected a member during the rotation";
    const std::string file = ReadAll(KeyFile(i));
    EXPECT_NE(file.find(key_b), std::string::npos) << "node " << i << ": " << file;
    EXPECT_EQ(file.find(key_a), std::string::npos) << "node " << i << ": " << file;
  }
  // A restarted node opens what the cluster seals: its key file holds the new keyring.
  ASSERT_EQ(nodes_[4]->Stop(SIGTERM), 0);
  ASSERT_TRUE(nodes_[4]->Start()) << nodes_[4]->stderr_text();
  EXPECT_TRUE(WaitSettled(Hosts(), 5));
}

// A member that is DOWN cannot apply a change: it is listed as not reached and the request
// fails (exit 3) while the live members apply it. A node with plain gossip has no keyring.
TEST_F(Security, AKeyringChangeNamesTheMembersItDidNotReach) {
  const std::string key_a = Trimmed(NewKey());
  StartCluster(3, key_a + "\n");
  const std::string down_id = nodes_[2]->node_id();
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = Kvtool({"--host", nodes_[0]->address(), "--json", "status"});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        if (j.is_discarded()) return false;
        for (const auto& m : j["nodes"]) {
          if (m["id"] == down_id) return m["status"] == "DOWN";
        }
        return false;
      },
      std::chrono::seconds(30)));
  std::string err;
  auto [code, j] = Keyring(0, {"install", Trimmed(NewKey())}, &err);
  EXPECT_EQ(code, 3) << j.dump();
  EXPECT_NE(err.find("not applied on 1 of 3"), std::string::npos) << err;
  ASSERT_EQ(j["nodes"].size(), 3u) << j.dump();
  for (const auto& n : j["nodes"]) {
    if (n["id"] == down_id) {
      EXPECT_FALSE(n["ok"].get<bool>());
      EXPECT_NE(n["error"].get<std::string>().find("DOWN"), std::string::npos) << n.dump();
    } else {
      EXPECT_TRUE(n["ok"].get<bool>()) << n.dump();
      EXPECT_EQ(n["keys"].size(), 2u) << n.dump();
    }
  }

  Kvd plain(dir_.path() + "/plain", {}, "127.0.0.9");
  ASSERT_TRUE(plain.Start()) << plain.stderr_text();
  auto r = Kvtool({"--host", plain.address(), "keyring", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("gossip encryption is off"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kv::test
