// Security on real kvd processes: the gossip keyring rotated across a live cluster under load
// with `kvtool keyring`, and what a request is told when it cannot be applied everywhere.
//
// Membership runs with short intervals; every wait polls with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "rpc/client_conn.h"
#include "rpc/client.capnp.h"
#include "rpc/connect.h"
#include "rpc/session.h"
#include "rpc/tls.h"
#include "rpc/wire_status.h"
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

  // Starts (or restarts, with new flags) node i on 127.0.0.(i+1) and its data directory,
  // joining through the gossip address of `seed` (another node) if there is one.
  void StartNode(int i, const std::vector<std::string>& extra, int seed = 0) {
    const std::string ip = "127.0.0." + std::to_string(i + 1);
    std::vector<std::string> flags = kFast;
    flags.insert(flags.end(), {"--gossip", ip + ":0"});
    flags.insert(flags.end(), extra.begin(), extra.end());
    if (seed != i && static_cast<std::size_t>(seed) < nodes_.size() && nodes_[seed]) {
      flags.insert(flags.end(), {"--seeds", nodes_[static_cast<std::size_t>(seed)]->gossip_address()});
    }
    auto node = std::make_unique<Kvd>(dir_.path() + "/n" + std::to_string(i + 1), flags, ip);
    ASSERT_TRUE(node->Start()) << node->stderr_text();
    if (nodes_.size() <= static_cast<std::size_t>(i)) nodes_.resize(static_cast<std::size_t>(i) + 1);
    nodes_[static_cast<std::size_t>(i)] = std::move(node);
  }

  // `n` nodes sharing the gossip key `key`, each in its own key file.
  void StartKeyedCluster(int n, const std::string& key) {
    for (int i = 0; i < n; ++i) {
      WriteFile(dir_.path(), "n" + std::to_string(i + 1) + ".key", key);
      StartNode(i, {"--gossip-key-file", KeyFile(i)});
    }
    ASSERT_TRUE(WaitSettled(Hosts(), static_cast<std::size_t>(n)));
  }

  // A CA and certificates from tools/certs.sh under the test's directory: n1..n`nodes`, client,
  // admin, and a stranger signed by another CA. Again with another identity: more node
  // certificates signed by the same CA.
  void MakeCerts(int nodes, const std::string& identity = "kv") {
    std::vector<std::string> argv = {KV_CERTS_SH, "--identity", identity, certs_};
    for (int i = 1; i <= nodes; ++i) argv.push_back("n" + std::to_string(i));
    auto r = kv::test::Run(argv);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  // kvd flags: node i's certificate, in `mode`.
  std::vector<std::string> NodeTls(int i, const std::string& mode = "require") const {
    const std::string n = certs_ + "/n" + std::to_string(i + 1);
    return {"--tls-cert", n + ".pem", "--tls-key", n + "-key.pem", "--tls-ca", certs_ + "/ca.pem",
            "--tls-mode", mode};
  }
  // kvtool flags: the certificate `who` (client, admin, stranger, n1, ...).
  std::vector<std::string> As(const std::string& who) const {
    return {"--tls-cert", certs_ + "/" + who + ".pem", "--tls-key", certs_ + "/" + who + "-key.pem",
            "--tls-ca", certs_ + "/ca.pem"};
  }
  // kvtool through node i as `who` (empty: no certificate).
  RunResult KvtoolAs(const std::string& who, int i, const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    if (!who.empty()) argv = As(who);
    argv.insert(argv.end(), {"--host", nodes_[static_cast<std::size_t>(i)]->address()});
    argv.insert(argv.end(), args.begin(), args.end());
    return Kvtool(argv);
  }
  std::unique_ptr<rpc::Tls> ClientTls(const std::string& who) const {
    rpc::TlsSettings t;
    t.cert_file = certs_ + "/" + who + ".pem";
    t.key_file = certs_ + "/" + who + "-key.pem";
    t.ca_file = certs_ + "/ca.pem";
    auto tls = rpc::Tls::Load(t);
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    return tls.ok() ? std::move(tls.value()) : nullptr;
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
  std::string certs_ = dir_.path() + "/certs";
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
  StartKeyedCluster(5, key_a + "\n");
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
      Eventually([&] { return writers.acked_count() > acked + 30; }, std::chrono::seconds(30)))
      << writers.ran_out() << " writers ran out of their bound";
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
  StartKeyedCluster(3, key_a + "\n");
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

// What a node with TLS required tells each comer, and what each role may call: no certificate,
// a certificate of another CA, and another cluster's node certificate are refused at the
// handshake; a client certificate reads and writes but runs no admin operation and cannot
// reach the internode interface; an admin certificate runs them. The node serves throughout.
TEST_F(Security, TlsRefusesWhoIsNotOfTheClusterAndEachRoleGetsOnlyItsCalls) {
  MakeCerts(2);
  MakeCerts(1, "other");  // n1 again, same CA, but of another cluster identity: saved below
  std::filesystem::rename(certs_ + "/n1.pem", certs_ + "/foreign.pem");
  std::filesystem::rename(certs_ + "/n1-key.pem", certs_ + "/foreign-key.pem");
  MakeCerts(2);
  StartNode(0, NodeTls(0));

  auto r = KvtoolAs("client", 0, {"put", "k", "v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = KvtoolAs("", 0, {"get", "k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("if the node requires TLS"), std::string::npos) << r.err;
  r = KvtoolAs("stranger", 0, {"get", "k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("TLS handshake"), std::string::npos) << r.err;
  r = KvtoolAs("foreign", 0, {"get", "k"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  // kvtool checks the identity the node's certificate names.
  r = Kvtool({"--tls-identity", "other", "--tls-cert", certs_ + "/client.pem", "--tls-key",
              certs_ + "/client-key.pem", "--tls-ca", certs_ + "/ca.pem", "--host",
              nodes_[0]->address(), "get", "k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("identity 'other'"), std::string::npos) << r.err;

  // A client: reads, writes and the read-only views; no admin operation.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"get", "k"}, {"delete", "gone"}, {"status"}, {"ring"}, {"stats"}}) {
    r = KvtoolAs("client", 0, args);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << args[0] << ": " << r.err;
  }
  int denied = 0;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"repair"}, {"cleanup"}, {"keyring", "list"}, {"removenode", "00000000000000aa"},
           {"decommission"}}) {
    r = KvtoolAs("client", 0, args);
    EXPECT_EQ(r.exit_code, 3) << args[0];
    EXPECT_NE(r.err.find("permission denied"), std::string::npos) << args[0] << ": " << r.err;
    ++denied;
  }
  // An admin runs them (cleanup here; the keyring is off without a gossip key).
  r = KvtoolAs("admin", 0, {"cleanup"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // The internode interface: a client certificate is refused, a node certificate served.
  auto replica_read = [&](const std::string& who) -> std::string {
    auto tls = ClientTls(who);
    if (tls == nullptr) return "no tls";
    auto io = kj::setupAsyncIo();
    std::string outcome;
    kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
      auto stream = rpc::Dial(*io.provider, *io.lowLevelProvider, nodes_[0]->address(), "")
                        .then([&](kj::Own<kj::AsyncIoStream> s) { return tls->Secure(kj::mv(s)); })
                        .wait(io.waitScope);
      rpc::RpcSession session(kj::mv(stream), capnp::ReaderOptions());
      auto client = session.Bootstrap().castAs<rpc::wire::KvClient>();
      auto replica = client.replicaRequest().send().getReplica();
      auto req = replica.readRequest();
      req.setKey(kj::StringPtr("k").asBytes());
      auto resp = req.send().wait(io.waitScope);
      outcome = "served: " + std::string(rpc::FromWire(resp.getStatus()).ToString());
    });
    KJ_IF_MAYBE (e, failure) {
      outcome = e->getDescription().cStr();
    }
    return outcome;
  };
  const std::string as_client = replica_read("client");
  EXPECT_NE(as_client.find("permission denied"), std::string::npos) << as_client;
  const std::string as_admin = replica_read("admin");
  EXPECT_NE(as_admin.find("permission denied"), std::string::npos) << as_admin;
  const std::string as_node = replica_read("n2");
  EXPECT_EQ(as_node.rfind("served: ", 0), 0u) << as_node;

  // Still serving, and every refusal counted.
  r = KvtoolAs("admin", 0, {"get", "k"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = KvtoolAs("admin", 0, {"--json", "stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stats = nlohmann::json::parse(r.out)["node"];
  EXPECT_GE(stats["tls_handshakes_refused"].get<int>(), 4) << stats.dump();
  EXPECT_EQ(stats["tls_calls_permission_denied"].get<int>(), denied + 2) << stats.dump();
  EXPECT_EQ(stats["tls_plain_connections"].get<int>(), 0) << stats.dump();
}

// A live 3-node cluster moves from plain RPC to TLS by three rolling restarts (accept, connect,
// require) while writers write; the writers move to TLS before the last round. Every write
// acknowledged on the way reads back at quorum through every node, and plain clients are then
// refused.
TEST_F(Security, ALiveClusterSwitchesToTlsNodeByNodeUnderLoadAndLosesNoWrite) {
  MakeCerts(3);
  for (int i = 0; i < 3; ++i) StartNode(i, {});
  ASSERT_TRUE(WaitSettled(Hosts(), 3));
  // Nine restarts take long under a sanitizer: 1,500 requests a writer ran out before the last
  // round on CI (ASan).
  Writers writers(Hosts(), 3, /*max_ops=*/6000);
  ASSERT_TRUE(Eventually([&] { return writers.acked_count() > 20; }, std::chrono::seconds(30)));
  auto client_tls = ClientTls("client");
  ASSERT_NE(client_tls, nullptr);
  for (const std::string mode : {"accept", "connect", "require"}) {
    if (mode == "require") writers.SetTls(client_tls.get());  // every node takes TLS by now
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(nodes_[static_cast<std::size_t>(i)]->Stop(SIGTERM), 0);
      StartNode(i, NodeTls(i, mode), (i + 1) % 3);
      // Every node takes plain connections until the last round, and TLS from then on.
      ASSERT_TRUE(WaitSettled(Hosts(), 3, std::chrono::seconds(120),
                              mode == "require" ? As("admin") : std::vector<std::string>{}))
          << mode << " " << i << ": " << nodes_[0]->stderr_text() << nodes_[1]->stderr_text()
          << nodes_[2]->stderr_text();
      writers.SetHosts(Hosts());
      const std::size_t acked = writers.acked_count();
      ASSERT_TRUE(Eventually([&] { return writers.acked_count() > acked + 10; },
                             std::chrono::seconds(30)))
          << "no write acknowledged after node " << i << " went to " << mode << " ("
          << writers.ran_out() << " writers ran out of their bound)";
    }
  }
  writers.Stop();
  const auto acked = writers.Acked();
  std::printf("[ figure ] %zu writes acknowledged through the switch to TLS, %zu failed (nodes "
              "restarting)\n",
              acked.size(), writers.Failures().size());
  for (int i = 0; i < 3; ++i) {
    auto c = rpc::BlockingClient::Connect(nodes_[static_cast<std::size_t>(i)]->address(),
                                          std::chrono::milliseconds(5000), "", client_tls.get());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::size_t missing = 0;
    for (const auto& key : acked) {
      auto g = c.value()->Get(key, rpc::Consistency::kQuorum);
      missing += !g.status.ok();
    }
    EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged writes, through node " << i;
  }
  auto r = KvtoolAs("", 1, {"get", acked.front()});
  EXPECT_EQ(r.exit_code, 3) << r.out;
}

}  // namespace
}  // namespace kv::test
