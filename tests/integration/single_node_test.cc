// One real kvd process driven through the real kvtool binary and the client library.
#include <arpa/inet.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <map>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "rpc/client_conn.h"
#include "storage/codec.h"
#include "tests/integration/process.h"

namespace kv::test {
namespace {

class SingleNode : public ::testing::Test {
 protected:
  void SetUp() override {
    kvd_ = std::make_unique<Kvd>(dir_.path() + "/n1");
    ASSERT_TRUE(kvd_->Start()) << kvd_->stderr_text();
  }
  RunResult Tool(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--host", kvd_->address()});
    return Kvtool(args, input);
  }
  std::unique_ptr<rpc::BlockingClient> Client() {
    auto c = rpc::BlockingClient::Connect(kvd_->address(), std::chrono::seconds(10));
    KV_CHECK(c.ok());
    return std::move(c.value());
  }

  TempDir dir_;
  std::unique_ptr<Kvd> kvd_;
};

TEST_F(SingleNode, PutGetDeleteThroughKvtool) {
  auto r = Tool({"put", "user:42", R"({"name":"ada"})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Tool({"get", "user:42"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), R"({"name":"ada"})");
  EXPECT_NE(r.out.find("context: "), std::string::npos);

  r = Tool({"--json", "get", "user:42"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["key"], "user:42");
  ASSERT_EQ(j["siblings"].size(), 1u);
  EXPECT_EQ(j["siblings"][0]["value"], R"({"name":"ada"})");
  EXPECT_EQ(j["siblings"][0]["encoding"], "utf-8");
  EXPECT_FALSE(j["context"].get<std::string>().empty());

  r = Tool({"delete", "user:42"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Tool({"get", "user:42"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not found"), std::string::npos);
}

TEST_F(SingleNode, ContextSupersedesAndBlindPutAddsSibling) {
  ASSERT_EQ(Tool({"put", "k", "one"}).exit_code, 0);
  ASSERT_EQ(Tool({"put", "k", "two"}).exit_code, 0);  // no context: a sibling
  auto r = Tool({"--json", "get", "k"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["siblings"].size(), 2u);
  const std::string ctx = j["context"];

  // Writing with the context resolves both siblings into one value.
  ASSERT_EQ(Tool({"put", "k", "merged", "--context", ctx}).exit_code, 0);
  j = nlohmann::json::parse(Tool({"--json", "get", "k"}).out);
  ASSERT_EQ(j["siblings"].size(), 1u);
  EXPECT_EQ(j["siblings"][0]["value"], "merged");

  // A delete with the old context leaves the later value alone.
  r = Tool({"delete", "k", "--context", ctx});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(Tool({"--json", "get", "k"}).out);
  ASSERT_EQ(j["siblings"].size(), 1u);
  EXPECT_EQ(j["siblings"][0]["value"], "merged");
}

TEST_F(SingleNode, BinaryValuesFromStdinRoundTrip) {
  std::string value;
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i) value.push_back(static_cast<char>(rng()));
  value[10] = '\0';
  auto r = Tool({"put", "blob", "-"}, value);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Tool({"--json", "get", "blob"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["siblings"][0]["encoding"], "base64");
  auto c = Client();
  auto g = c->Get("blob");
  ASSERT_TRUE(g.status.ok());
  ASSERT_EQ(g.siblings.size(), 1u);
  EXPECT_EQ(g.siblings[0], value);
}

TEST_F(SingleNode, AcknowledgedPutsSurviveSigkill) {
  constexpr int kKeys = 300;
  {
    auto c = Client();
    for (int i = 0; i < kKeys; ++i) {
      auto w = c->Put("durable:" + std::to_string(i), "v" + std::to_string(i), "");
      ASSERT_TRUE(w.status.ok()) << w.status.ToString();
    }
  }
  ASSERT_EQ(Tool({"put", "durable:tool", "from-kvtool"}).exit_code, 0);
  EXPECT_EQ(kvd_->Stop(SIGKILL), -1);
  ASSERT_TRUE(kvd_->Start()) << kvd_->stderr_text();
  auto c = Client();
  for (int i = 0; i < kKeys; ++i) {
    auto g = c->Get("durable:" + std::to_string(i));
    ASSERT_TRUE(g.status.ok()) << i << ": " << g.status.ToString();
    ASSERT_EQ(g.siblings, std::vector<std::string>{"v" + std::to_string(i)});
  }
  auto r = Tool({"get", "durable:tool"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "from-kvtool");
}

// What bounds a key's version vector: a clean restart resumes the node's dot life, so a key
// written before and after it keeps one entry for the node; a kill ends the life, and the key
// gets a second entry.
TEST_F(SingleNode, ACleanRestartKeepsTheDotLifeAndAKillEndsIt) {
  auto actors_after_write = [&](const std::string& value) {
    auto c = Client();
    auto g = c->Get("k");
    KV_CHECK(g.status.ok() || g.status.IsNotFound());
    KV_CHECK(c->Put("k", value, g.context).status.ok());
    auto after = c->Get("k");
    KV_CHECK(after.status.ok());
    auto ctx = storage::DecodeContext(after.context);
    KV_CHECK(ctx.ok());
    return ctx->vv().size() + ctx->cloud().size();
  };
  EXPECT_EQ(actors_after_write("1"), 1u);
  ASSERT_EQ(kvd_->Stop(SIGTERM), 0);
  ASSERT_TRUE(kvd_->Start()) << kvd_->stderr_text();
  EXPECT_EQ(actors_after_write("2"), 1u) << kvd_->stderr_text();
  EXPECT_NE(kvd_->stderr_text().find("resumed the dot life"), std::string::npos);
  ASSERT_EQ(kvd_->Stop(SIGKILL), -1);
  ASSERT_TRUE(kvd_->Start()) << kvd_->stderr_text();
  EXPECT_EQ(actors_after_write("3"), 2u);
}

// The hash tree a clean stop persisted is trusted at the next start (no scan of the data before
// serving); after a kill there is none, and the node serves at once while it builds the tree
// in the background.
TEST_F(SingleNode, ACleanStopPersistsTheHashTreeAndAKillLeavesItToABackgroundBuild) {
  {
    auto c = Client();
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(c->Put("k" + std::to_string(i), "v", "").status.ok());
  }
  // stderr_text() keeps every run's lines: look at what this run wrote.
  std::size_t from = 0;
  auto this_run = [&]() { return kvd_->stderr_text().substr(from); };
  // A first start builds its (empty) tree in the background; only a built tree is persisted.
  ASSERT_TRUE(Eventually(
      [&] { return this_run().find("hash tree built from the data") != std::string::npos; },
      std::chrono::seconds(30)));
  ASSERT_EQ(kvd_->Stop(SIGTERM), 0) << kvd_->stderr_text();
  from = kvd_->stderr_text().size();
  ASSERT_TRUE(kvd_->Start()) << kvd_->stderr_text();
  EXPECT_NE(this_run().find("hash tree of 2^16 segments loaded"), std::string::npos) << this_run();
  EXPECT_EQ(this_run().find("hash tree built from the data"), std::string::npos);
  EXPECT_TRUE(Client()->Get("k7").status.ok());
  ASSERT_EQ(kvd_->Stop(SIGKILL), -1);
  from = kvd_->stderr_text().size();
  ASSERT_TRUE(kvd_->Start()) << kvd_->stderr_text();
  EXPECT_TRUE(Client()->Get("k8").status.ok());
  EXPECT_EQ(this_run().find("segments loaded"), std::string::npos) << this_run();
  EXPECT_TRUE(Eventually(
      [&] { return this_run().find("hash tree built from the data") != std::string::npos; },
      std::chrono::seconds(30)))
      << this_run();
}

// kvd --testing-lose-unsynced-on-kill: a SIGKILL then loses what a power loss would, the
// writes since the last sync of the log, and nothing that was synced.
TEST(PowerLoss, AKillLosesTheUnsyncedWritesOnlyUnderTheTestingFlag) {
  TempDir dir;
  auto write_then_kill = [&](const std::string& data, std::vector<std::string> flags) {
    Kvd kvd(dir.path() + "/" + data, flags);
    KV_CHECK(kvd.Start());
    auto c = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
    KV_CHECK(c.ok());
    for (int i = 0; i < 50; ++i) KV_CHECK(c.value()->Put("k" + std::to_string(i), "v", "").status.ok());
    c.value().reset();
    KV_CHECK(kvd.Stop(SIGKILL) == -1);
    KV_CHECK(kvd.Start());
    auto r = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
    KV_CHECK(r.ok());
    int held = 0;
    for (int i = 0; i < 50; ++i) held += r.value()->Get("k" + std::to_string(i)).status.ok();
    return held;
  };
  // No periodic sync: every write of the run is lost.
  EXPECT_EQ(write_then_kill("lossy", {"--testing-lose-unsynced-on-kill", "--wal-sync-interval-ms",
                                      "0"}),
            0);
  // Synced writes survive.
  EXPECT_EQ(write_then_kill("synced", {"--testing-lose-unsynced-on-kill", "--sync-writes"}), 50);
  // Without the flag a process crash loses nothing: the bytes were in the kernel's hands.
  EXPECT_EQ(write_then_kill("plain", {"--wal-sync-interval-ms", "0"}), 50);
}

// Writers keep going while the node is stopped by `sig`; every write that was acknowledged
// must be there after a restart.
void AckedWritesSurviveStop(Kvd& kvd, int sig) {
  constexpr int kWriters = 4;
  std::vector<std::vector<std::string>> acked(kWriters);
  std::atomic<int> started{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      auto c = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
      if (!c.ok()) return;
      // Bounded: stops at the first failure (the node going away) or after 20,000 writes.
      for (int i = 0; i < 20000; ++i) {
        const std::string key = "w" + std::to_string(t) + ":" + std::to_string(i);
        if (!c.value()->Put(key, key, "").status.ok()) return;
        acked[t].push_back(key);
        if (i == 50) ++started;
      }
    });
  }
  // Stop once every writer is well under way.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (started.load() < kWriters && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  const int code = kvd.Stop(sig);
  for (auto& w : writers) w.join();
  if (sig == SIGTERM) {
    EXPECT_EQ(code, 0) << kvd.stderr_text();
  }
  ASSERT_TRUE(kvd.Start()) << kvd.stderr_text();
  auto c = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
  ASSERT_TRUE(c.ok());
  std::size_t total = 0;
  for (const auto& keys : acked) {
    total += keys.size();
    for (const auto& key : keys) {
      auto g = c.value()->Get(key);
      ASSERT_TRUE(g.status.ok()) << key << ": " << g.status.ToString();
      ASSERT_EQ(g.siblings, std::vector<std::string>{key});
    }
  }
  EXPECT_GE(total, static_cast<std::size_t>(kWriters * 50));
}

TEST_F(SingleNode, AckedWritesUnderLoadSurviveSigterm) { AckedWritesSurviveStop(*kvd_, SIGTERM); }
TEST_F(SingleNode, AckedWritesUnderLoadSurviveSigkill) { AckedWritesSurviveStop(*kvd_, SIGKILL); }

TEST_F(SingleNode, ConcurrentBlindPutsLeaveEverySibling) {
  // Separate kvtool processes racing on one key, and client threads racing on another (80
  // siblings: under the default cap of 100).
  std::vector<std::thread> procs;
  std::vector<int> codes(8, -1);
  for (int i = 0; i < 8; ++i) {
    procs.emplace_back([&, i] {
      codes[i] = Tool({"put", "race", "p" + std::to_string(i)}).exit_code;
    });
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto c = rpc::BlockingClient::Connect(kvd_->address(), std::chrono::seconds(10));
      KV_CHECK(c.ok());
      for (int i = 0; i < 20; ++i) {
        KV_CHECK(
            c.value()->Put("race2", std::to_string(t) + ":" + std::to_string(i), "").status.ok());
      }
    });
  }
  for (auto& p : procs) p.join();
  for (auto& t : threads) t.join();
  for (int code : codes) EXPECT_EQ(code, 0);
  auto j = nlohmann::json::parse(Tool({"--json", "get", "race"}).out);
  std::set<std::string> values;
  for (const auto& s : j["siblings"]) values.insert(s["value"].get<std::string>());
  std::set<std::string> expected;
  for (int i = 0; i < 8; ++i) expected.insert("p" + std::to_string(i));
  EXPECT_EQ(values, expected);
  auto g = Client()->Get("race2");
  ASSERT_TRUE(g.status.ok());
  EXPECT_EQ(std::set<std::string>(g.siblings.begin(), g.siblings.end()).size(), 80u);
}

TEST_F(SingleNode, EveryKvtoolExitCode) {
  // 0: ok.
  EXPECT_EQ(Tool({"put", "k", "v"}).exit_code, 0);
  // 1: not found, for get and for delete of a key with no live value.
  auto r = Tool({"get", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(Tool({"delete", "nope"}).exit_code, 1);
  // 2: bad usage and rejected input.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"frobnicate"},
           {"get"},
           {"put", "k"},
           {"get", ""},
           {"put", "k", "v", "--context", "not base64!"},
           {"put", "k", "v", "--context", "QUFBQQ=="},  // base64, but not a context
           {"put", std::string(64 * 1024 + 1, 'k'), "v"},
           {"--timeout-ms", "0", "get", "k"},
       }) {
    r = Tool(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = Kvtool({"--host", "nohost", "get", "k"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // Values over 16 MiB are refused; exactly 16 MiB is accepted.
  r = Tool({"put", "big", "-"}, std::string(16 * 1024 * 1024 + 1, 'x'));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("limit"), std::string::npos) << r.err;
  r = Tool({"put", "big", "-"}, std::string(16 * 1024 * 1024, 'x'));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // 3: node unreachable. Port 1 on loopback has no listener.
  r = Kvtool({"--host", "127.0.0.1:1", "get", "k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("unreachable"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Global options go before or after the command; --host takes a list, passes over a node it
// cannot reach, asks a read again of the next node, and never sends a write twice.
TEST_F(SingleNode, GlobalOptionsGoAnywhereAndHostTakesAListWithSafeFailover) {
  const std::string a = kvd_->address();
  ASSERT_EQ(Kvtool({"put", "k", "from-a", "--host", a}).exit_code, 0);
  auto r = Kvtool({"get", "k", "--json", "--host", a, "--timeout-ms", "5000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["siblings"][0]["value"], "from-a");
  r = Kvtool({"stats", "--json", "--host", a});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out).contains("node")) << r.out;
  r = Kvtool({"status", "--host", a, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out).contains("nodes")) << r.out;

  // Port 1 on loopback has no listener: passed over, for reads and writes alike.
  const std::string dead = "127.0.0.1:1";
  r = Kvtool({"--host", dead + "," + a, "get", "k"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "from-a");
  ASSERT_EQ(Kvtool({"--host", dead + "," + a, "put", "k2", "v"}).exit_code, 0);
  r = Kvtool({"--host", dead + ",127.0.0.1:2", "get", "k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("no node of --host could be reached"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:2"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // Commands about one node refuse a list.
  for (const char* cmd : {"stats", "repair", "cleanup", "decommission"}) {
    r = Kvtool({"--host", dead + "," + a, cmd});
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("one --host"), std::string::npos) << r.err;
  }
  EXPECT_EQ(Kvtool({"--host", dead + "," + a, "get", "k", "--local"}).exit_code, 2);

  // A second, separate node b; a is stopped (SIGSTOP): it accepts connections and answers
  // nothing. A read times out on a and is asked of b; a put times out on a and is not sent to
  // b, since a may have applied it.
  Kvd b(dir_.path() + "/b");
  ASSERT_TRUE(b.Start()) << b.stderr_text();
  ASSERT_EQ(Kvtool({"--host", b.address(), "put", "k", "from-b"}).exit_code, 0);
  kvd_->Signal(SIGSTOP);
  const std::string both = a + "," + b.address();
  r = Kvtool({"--host", both, "--timeout-ms", "1000", "get", "k"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "from-b");
  r = Kvtool({"--host", both, "--timeout-ms", "1000", "put", "unsure", "v"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("outcome unknown, not retried"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = Kvtool({"--host", both, "--timeout-ms", "1000", "delete", "k"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("outcome unknown"), std::string::npos) << r.err;
  kvd_->Signal(SIGCONT);
  EXPECT_EQ(Kvtool({"--host", b.address(), "get", "unsure"}).exit_code, 1);
  EXPECT_EQ(Kvtool({"--host", b.address(), "get", "k"}).exit_code, 0);  // not deleted on b
}

// Sends raw bytes to the node's port on a fresh connection, then closes it.
void SendRaw(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  KV_CHECK(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  KV_CHECK(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the node may hang up on garbage early: that is fine
    off += n;
  }
  close(fd);
}

TEST_F(SingleNode, GarbageOnThePortLeavesTheNodeServing) {
  ASSERT_EQ(Tool({"put", "before", "v"}).exit_code, 0);
  std::mt19937_64 rng(11);
  for (int i = 0; i < 50; ++i) {
    std::string junk(1 + rng() % 5000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    SendRaw(kvd_->port(), junk);
  }
  // A segment table that claims far more than any limit.
  SendRaw(kvd_->port(), std::string("\x00\x00\x00\x00\xff\xff\xff\x7f", 8));
  SendRaw(kvd_->port(), std::string("\xff\xff\xff\x0f", 4));
  // A well-formed message cut short: a real serialized message, truncated at every length.
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<capnp::AnyPointer>();
  root.initAs<capnp::List<capnp::Data>>(3);
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  const std::string full(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  for (std::size_t n = 1; n < full.size(); n += 3) SendRaw(kvd_->port(), full.substr(0, n));
  // A whole message that is not an RPC message.
  SendRaw(kvd_->port(), full);

  EXPECT_TRUE(kvd_->Alive());
  auto r = Tool({"get", "before"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Tool({"put", "after", "v"}).exit_code, 0);
}

TEST_F(SingleNode, SigtermStopsCleanlyAndKeepsData) {
  ASSERT_EQ(Tool({"put", "k", "v"}).exit_code, 0);
  EXPECT_EQ(kvd_->Stop(SIGTERM), 0);
  EXPECT_NE(kvd_->stderr_text().find("stopped"), std::string::npos) << kvd_->stderr_text();
  // A stopped node is unreachable: exit 3.
  EXPECT_EQ(Tool({"get", "k"}).exit_code, 3);
  ASSERT_TRUE(kvd_->Start());
  EXPECT_EQ(Tool({"get", "k"}).exit_code, 0);
  EXPECT_EQ(kvd_->Stop(SIGINT), 0);
}

TEST_F(SingleNode, SecondNodeOnTheSameDataDirIsRefused) {
  Kvd other(dir_.path() + "/n1");
  EXPECT_FALSE(other.Start(std::chrono::seconds(30)));
  EXPECT_NE(other.stderr_text().find("in use"), std::string::npos) << other.stderr_text();
}

// kvtool keygen prints a new random gossip key: 32 bytes as base64, another each time, and
// asks no node (no --host needed, none reachable).
TEST(Kvtool, KeygenPrintsANewRandomKeyEachTime) {
  std::set<std::string> keys;
  for (int i = 0; i < 3; ++i) {
    auto r = Kvtool({"--host", "127.0.0.1:1", "keygen"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(r.out.size(), 45u) << r.out;
    EXPECT_EQ(r.out.back(), '\n');
    EXPECT_EQ(r.out[43], '=');
    keys.insert(r.out);
  }
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(Kvtool({"keygen", "extra"}).exit_code, 2);
}

TEST(Kvd, BadFlagsExitTwo) {
  TempDir dir;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"--data-dir", dir.path(), "--listen", "nonsense"},
           {"--data-dir", dir.path(), "--max-value-bytes", "-5"},
           {"--data-dir", dir.path(), "--bogus"},
           {"--data-dir", dir.path(), "--wal-sync-interval-ms", "-1"},
           {"--data-dir", dir.path(), "--testing-clock-offset-s", "x"},
           {"--data-dir", dir.path(), "--max-siblings", "0"},
           {"--data-dir", dir.path(), "--max-record-bytes", "70000"},  // under one value
           {"--data-dir", dir.path(), "--max-queued-writes", "0"},
           {"--data-dir", dir.path(), "--max-connections", "-1"},
           {"--data-dir", dir.path(), "--message-timeout-ms", "5"},
           {"--data-dir", dir.path(), "--storage-threads", "0"},
           {"--data-dir", dir.path(), "--gossip-max-stream-bytes", "100"},
           {"--data-dir", dir.path(), "--gossip-forget-after-s", "-3"},
           {"--data-dir", dir.path(), "--background-nice", "20"},
       }) {
    std::vector<std::string> argv = {KV_KVD_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = ::kv::test::Run(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// Each bad gossip key file, or a key flag without what it needs, is refused with one line that
// says why (and the line of the file), exit 2.
// Every kvd flag is a key of its TOML file: --print-config writes them all, the file it writes
// reads back to the same settings, a flag on the command line wins over the file, and each
// mistake is refused with its line.
TEST(Kvd, EveryFlagIsAConfigKeyThatRoundTripsAndMistakesAreRefusedWithTheirLine) {
  TempDir dir;
  const std::string kvd = KV_KVD_PATH;
  const RunResult help = kv::test::Run({kvd, "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  const RunResult printed =
      kv::test::Run({kvd, "--data-dir", dir.path() + "/d", "--probe-interval-ms", "300", "--rack", "r1",
           "--sync-writes", "--print-config"});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  const std::regex flag("--([a-z0-9][a-z0-9-]*)");
  int flags = 0;
  for (auto it = std::sregex_iterator(help.out.begin(), help.out.end(), flag);
       it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if (name == "help" || name == "config" || name == "print-config") continue;
    ++flags;
    EXPECT_TRUE(printed.out.find("\n" + name + " = ") != std::string::npos ||
                printed.out.find("\n# " + name + " =\n") != std::string::npos)
        << name << " is not in --print-config";
  }
  EXPECT_GT(flags, 50);
  EXPECT_NE(printed.out.find("\nprobe-interval-ms = 300\n"), std::string::npos);
  EXPECT_NE(printed.out.find("\nrack = \"r1\"\n"), std::string::npos);
  EXPECT_NE(printed.out.find("\nsync-writes = true\n"), std::string::npos);
  EXPECT_NE(printed.out.find("\nvnodes = "), std::string::npos);  // a default
  const std::string file = WriteFile(dir.path(), "kvd.toml", printed.out);
  const RunResult again = kv::test::Run({kvd, "--config", file, "--print-config"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, printed.out);

  struct Case {
    std::string text, expect;
  };
  const std::vector<Case> cases = {
      {"data-dir = \"x\"\nprobe-intervall-ms = 5\n", ":2: unknown key 'probe-intervall-ms'"},
      {"\n\nvnodes = \"many\"\n", ":3: vnodes takes an integer, not a string"},
      {"sync-writes = \"yes\"\n", ":1: sync-writes takes true or false"},
      {"# n\nn = 0\n", ":2: n = 0: "},
      {"max-value-bytes = 99999999999999\n", ":1: max-value-bytes = 99999999999999: "},
      {"hinted-handoff = \"maybe\"\n", ":1: hinted-handoff = maybe: "},
      {"[membership]\nseeds = \"a\"\n", ":1: [membership]: sections are not used"},
      {"vnodes = 8\nvnodes = 9\n", ":2:"},
  };
  for (const Case& c : cases) {
    const std::string bad = WriteFile(dir.path(), "bad.toml", c.text);
    const RunResult r = kv::test::Run({kvd, "--data-dir", dir.path() + "/d", "--config", bad});
    EXPECT_EQ(r.exit_code, 2) << c.text;
    EXPECT_NE(r.err.find("kvd: " + bad + c.expect), std::string::npos) << c.text << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  const RunResult missing = kv::test::Run({kvd, "--config", dir.path() + "/none.toml"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("cannot read the config file"), std::string::npos) << missing.err;
  const RunResult no_dir = kv::test::Run({kvd});
  EXPECT_EQ(no_dir.exit_code, 2);
  EXPECT_NE(no_dir.err.find("--data-dir is required"), std::string::npos) << no_dir.err;

  // A node started from a file serves with its settings; a flag given beside it wins.
  const std::string small = WriteFile(dir.path(), "small.toml", "max-value-bytes = 10\n");
  Kvd a(dir.path() + "/a", {"--config", small});
  ASSERT_TRUE(a.Start()) << a.stderr_text();
  EXPECT_EQ(Kvtool({"--host", a.address(), "put", "k", "0123456789"}).exit_code, 0);
  EXPECT_EQ(Kvtool({"--host", a.address(), "put", "k", "0123456789x"}).exit_code, 2);
  Kvd b(dir.path() + "/b", {"--config", small, "--max-value-bytes", "20"});
  ASSERT_TRUE(b.Start()) << b.stderr_text();
  EXPECT_EQ(Kvtool({"--host", b.address(), "put", "k", "0123456789x"}).exit_code, 0);
}

// The log: one JSON object per line with time, level and node; the level filter; a log file
// moved away (logrotate) and reopened at SIGHUP.
TEST(Kvd, LogsAreLevelledJsonLinesAndSighupReopensTheLogFile) {
  TempDir dir;
  Kvd a(dir.path() + "/a", {"--log-format", "json"});
  ASSERT_TRUE(a.Start()) << a.stderr_text();
  ASSERT_EQ(Kvtool({"--host", a.address(), "put", "k", "v"}).exit_code, 0);
  ASSERT_EQ(a.Stop(SIGTERM), 0);
  std::istringstream lines(a.stderr_text());
  int parsed = 0;
  std::set<std::string> messages;
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
    EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << line;
    EXPECT_TRUE(j["level"] == "info" || j["level"] == "warning" || j["level"] == "error") << line;
    EXPECT_EQ(j["node"], a.node_id()) << line;
    messages.insert(j["msg"].get<std::string>());
    ++parsed;
  }
  EXPECT_GE(parsed, 2);
  EXPECT_TRUE(messages.count("caught SIGTERM, stopping")) << a.stderr_text();
  EXPECT_TRUE(messages.count("stopped")) << a.stderr_text();

  Kvd b(dir.path() + "/b", {"--log-level", "warning"});
  ASSERT_TRUE(b.Start()) << b.stderr_text();
  ASSERT_EQ(b.Stop(SIGTERM), 0);
  EXPECT_EQ(b.stderr_text().find("stopping"), std::string::npos) << b.stderr_text();

  const std::string log = dir.path() + "/c.log";
  Kvd c(dir.path() + "/c", {"--log-file", log});
  ASSERT_TRUE(c.Start()) << c.stderr_text();
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  // The hash tree's build is logged once the node serves.
  EXPECT_TRUE(Eventually(
      [&] { return read(log).find(" info node=" + c.node_id() + " ") != std::string::npos; },
      std::chrono::seconds(10)))
      << read(log);
  ASSERT_EQ(std::rename(log.c_str(), (log + ".1").c_str()), 0);
  c.Signal(SIGHUP);
  EXPECT_TRUE(Eventually([&] { return read(log).find("log reopened") != std::string::npos; },
                         std::chrono::seconds(10)));
  ASSERT_EQ(c.Stop(SIGTERM), 0);
  EXPECT_NE(read(log).find("stopped"), std::string::npos) << read(log);
  EXPECT_EQ(read(log + ".1").find("stopped"), std::string::npos);
  EXPECT_EQ(c.stderr_text().find("stopped"), std::string::npos) << c.stderr_text();

  // SIGHUP re-reads log-level from the config file.
  const std::string conf = WriteFile(dir.path(), "kvd.toml", "log-level = \"error\"\n");
  Kvd d(dir.path() + "/d0", {"--config", conf});
  ASSERT_TRUE(d.Start()) << d.stderr_text();
  WriteFile(dir.path(), "kvd.toml", "# now\nlog-level = \"warning\"\n");
  d.Signal(SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] { return d.stderr_text().find("log level warning, from " + conf) != std::string::npos; },
      std::chrono::seconds(10)))
      << d.stderr_text();
  EXPECT_EQ(d.stderr_text().find("log reopened"), std::string::npos);  // info: below error
  WriteFile(dir.path(), "kvd.toml", "log-level = \"loud\"\n");
  d.Signal(SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] { return d.stderr_text().find("'loud' is not debug") != std::string::npos; },
      std::chrono::seconds(10)))
      << d.stderr_text();
  ASSERT_EQ(d.Stop(SIGTERM), 0);
  EXPECT_EQ(d.stderr_text().find("stopping"), std::string::npos);  // still warning

  const std::string file = WriteFile(dir.path(), "a-file", "");
  const RunResult bad = kv::test::Run({KV_KVD_PATH, "--data-dir", dir.path() + "/d", "--log-file",
                             file + "/x.log"});  // under a file: cannot be created
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("kvd: --log-file: cannot open the log file"), std::string::npos)
      << bad.err;
}

TEST(Kvd, BadGossipKeyFilesAreRefusedSayingWhy) {
  TempDir dir;
  auto file = [&](const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = dir.path() + "/" + name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  };
  const std::string good = "W4FXANKT1vbdujGQVVAzmjXzMGVPQB2a/xV0Z0k+HYM=\n";
  const std::vector<std::string> gossip = {"--data-dir", dir.path() + "/d", "--gossip",
                                           "127.0.0.1:0"};
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--gossip-key-file", dir.path() + "/missing"}, "No such file"},
      {{"--gossip-key-file", file("open.key", good, 0644)}, "chmod 600"},
      {{"--gossip-key-file", file("empty.key", "# none\n\n")}, "no key"},
      {{"--gossip-key-file", file("bad.key", good + "not a key\n")}, "line 2"},
      {{"--gossip-key-file", file("twice.key", good + good)}, "the same key twice"},
      {{"--gossip-key-file", dir.path()}, "not a regular file"},
      {{"--gossip-encryption", "require"}, "needs --gossip-key-file"},
      {{"--gossip-key-file", file("ok.key", good), "--gossip-encryption", "maybe"}, "maybe"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {KV_KVD_PATH};
    argv.insert(argv.end(), gossip.begin(), gossip.end());
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = ::kv::test::Run(argv);
    EXPECT_EQ(r.exit_code, 2) << c.says << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // Without --gossip there is nothing to seal.
  auto r = ::kv::test::Run({KV_KVD_PATH, "--data-dir", dir.path() + "/d", "--gossip-key-file",
                            file("alone.key", good)});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("needs --gossip"), std::string::npos) << r.err;
}

// Every TLS flag is checked before the node starts: missing, unreadable or malformed files are
// named, partial settings and a mode without certificates are refused (kvd and kvtool alike).
TEST(Kvd, BadTlsFlagsAreRefusedSayingWhy) {
  TempDir dir;
  const std::string certs = dir.path() + "/certs";
  ASSERT_EQ(::kv::test::Run({KV_CERTS_SH, certs, "n1"}).exit_code, 0);
  const std::string junk = WriteFile(dir.path(), "junk.pem", "not a certificate\n", 0644);
  const std::string fake = WriteFile(
      dir.path(), "fake.pem", "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
      0644);
  const std::vector<std::string> cert = {"--tls-cert", certs + "/n1.pem"};
  const std::vector<std::string> key = {"--tls-key", certs + "/n1-key.pem"};
  const std::vector<std::string> ca = {"--tls-ca", certs + "/ca.pem"};
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  auto with = [](std::vector<std::vector<std::string>> parts) {
    std::vector<std::string> out;
    for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  const std::vector<Case> cases = {
      {with({cert, key}), "all three"},
      {with({cert}), "all three"},
      {{"--tls-mode", "require"}, "needs --tls-cert"},
      {with({cert, key, ca, {"--tls-mode", "maybe"}}), "maybe"},
      {with({{"--tls-cert", dir.path() + "/missing.pem"}, key, ca}), "missing.pem"},
      {with({{"--tls-cert", junk}, key, ca}), "not a PEM file"},
      {with({{"--tls-cert", fake}, key, ca}), "fake.pem"},
      {with({cert, {"--tls-key", certs + "/ca.pem"}, ca}), "--tls-key"},
      {with({cert, key, {"--tls-ca", junk}}), "--tls-ca"},
      {with({cert, key, ca, {"--tls-identity", ""}}), "identity"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {KV_KVD_PATH, "--data-dir", dir.path() + "/d"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = ::kv::test::Run(argv);
    EXPECT_EQ(r.exit_code, 2) << c.says << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  // kvtool checks the same before it connects anywhere.
  auto r = Kvtool({"--tls-cert", certs + "/n1.pem", "get", "k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("all three"), std::string::npos) << r.err;
  r = Kvtool({"--tls-cert", junk, "--tls-key", certs + "/n1-key.pem", "--tls-ca", certs + "/ca.pem",
              "get", "k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("junk.pem"), std::string::npos) << r.err;
}

TEST_F(SingleNode, BenchReportsEachOperationKindAndErrorsByKind) {
  auto r = Tool({"--json", "bench", "--workload", "95/5", "--distribution", "zipfian", "--ops",
                 "2000", "--keys", "500", "--concurrency", "8", "--consistency", "quorum",
                 "--value-size", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("bench:"), std::string::npos);  // the progress line
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["workload"], "95/5");
  EXPECT_EQ(j["distribution"], "zipfian");
  std::map<std::string, nlohmann::json> ops;
  for (const auto& o : j["operations"]) ops[o["op"].get<std::string>()] = o;
  ASSERT_TRUE(ops.count("get") && ops.count("put"));
  const auto gets = ops["get"]["ops"].get<int>(), puts = ops["put"]["ops"].get<int>();
  EXPECT_EQ(gets + puts, 2000);
  EXPECT_GT(gets, 1800);  // 95% reads, give or take
  EXPECT_LT(gets, 1990);
  for (auto& [name, o] : ops) {
    EXPECT_EQ(o["errors"].get<int>(), 0) << name;
    EXPECT_LE(o["p50_us"].get<int>(), o["p99_us"].get<int>());
    EXPECT_LE(o["p99_us"].get<int>(), o["p999_us"].get<int>());
    EXPECT_LE(o["p999_us"].get<int>(), o["max_us"].get<int>());
  }
  // ALL on a node alone is one replica: it works. Against a stopped node, the failure is
  // counted by kind and the exit code says so.
  kvd_->Stop(SIGKILL);
  auto down = Tool({"--json", "bench", "--ops", "10", "--no-preload"});
  EXPECT_EQ(down.exit_code, 3) << down.out << down.err;
}

}  // namespace
}  // namespace kv::test
