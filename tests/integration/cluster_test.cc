// Five real kvd processes on 127.0.0.1 .. 127.0.0.5 finding each other through one seed, and
// the failure detector's verdicts as `kvtool status --json` shows them: crash, restart, pause,
// graceful leave, removal, and garbage on the gossip port.
//
// Membership runs with short intervals (probe 200 ms) so the suite stays quick; every wait
// polls with a generous deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "rpc/client_conn.h"
#include "tests/integration/process.h"

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;

// Sends `bytes` as one UDP datagram to `host_port` (an IPv4 loopback address).
void SendDatagram(const std::string& host_port, const std::string& bytes) {
  const auto colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1))));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  close(fd);
}

const std::vector<std::string> kFast = {
    "--probe-interval-ms",     "200",  "--probe-timeout-ms", "100", "--gossip-interval-ms", "50",
    "--push-pull-interval-ms", "2000", "--cluster-name",     "it"};

struct Seen {
  std::string status;
  std::uint64_t generation = 0;
};

class Cluster : public ::testing::Test {
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
      ASSERT_FALSE(nodes_.back()->gossip_address().empty());
    }
    std::vector<std::string> hosts;
    for (const auto& node : nodes_) hosts.push_back(node->address());
    ASSERT_TRUE(WaitSettled(hosts, static_cast<std::size_t>(n)));  // every join done
  }

  // What node `i` believes of every member, by id; empty if it did not answer.
  std::map<std::string, Seen> ViewOf(int i) {
    std::map<std::string, Seen> out;
    auto r = Kvtool({"--host", nodes_[i]->address(), "--timeout-ms", "2000", "--json", "status"});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "status from node %d failed: exit %d: %s\n", i, r.exit_code,
                   r.err.c_str());
      return out;
    }
    const auto j = nlohmann::json::parse(r.out);  // named: iterating a temporary's member dangles
    for (const auto& m : j["nodes"]) {
      out[m["id"].get<std::string>()] =
          Seen{m["status"].get<std::string>(), m["generation"].get<std::uint64_t>()};
    }
    return out;
  }

  // Polls every live node's view until `pred(view)` holds for all of them. Also fails the test
  // if any view ever shows one of `healthy` as DOWN (the detector must not accuse live nodes).
  bool WaitAll(const std::vector<int>& live,
               const std::function<bool(std::map<std::string, Seen>&)>& pred,
               std::chrono::seconds deadline, const std::vector<int>& healthy = {}) {
    const auto end = Clock::now() + deadline;
    while (Clock::now() < end) {
      bool all = true;
      for (int i : live) {
        auto v = ViewOf(i);
        for (int h : healthy) {
          auto it = v.find(nodes_[h]->node_id());
          if (it != v.end()) {
            EXPECT_NE(it->second.status, "DOWN")
                << "node " << i << " thinks healthy " << h << " is DOWN";
          }
        }
        if (v.empty() || !pred(v)) all = false;
      }
      if (all) return true;
      if (Clock::now() + std::chrono::milliseconds(100) >= end) {
        for (int i : live) {
          auto r = Kvtool({"--host", nodes_[i]->address(), "--json", "status"});
          std::fprintf(stderr, "view of node %d (%s, id %s): exit %d %s %s\n", i,
                       nodes_[i]->address().c_str(), nodes_[i]->node_id().c_str(), r.exit_code,
                       r.out.c_str(), r.err.c_str());
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval, not a wait
    }
    return false;
  }

  bool AllUp(const std::vector<int>& live, std::size_t members, std::chrono::seconds deadline) {
    return WaitAll(
        live,
        [&](auto& v) {
          if (v.size() < members) return false;
          for (int i : live) {
            auto it = v.find(nodes_[i]->node_id());
            if (it == v.end() || it->second.status != "UP") return false;
          }
          return true;
        },
        deadline);
  }

  std::vector<int> Others(int except) {
    std::vector<int> out;
    for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
      if (i != except) out.push_back(i);
    }
    return out;
  }

  TempDir dir_;
  std::vector<std::unique_ptr<Kvd>> nodes_;
};

TEST_F(Cluster, FiveNodesJoinThroughOneSeed) {
  StartAll(5);
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(30)));
  // Every node reports the full table with the required keys, and ownership adds up.
  auto r = Kvtool({"--host", nodes_[2]->address(), "--json", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  double owns = 0;
  for (const auto& m : j["nodes"]) {
    for (const char* k : {"id", "rpc", "gossip", "status", "state", "generation", "incarnation",
                          "phi", "tokens", "owns", "load", "rack"}) {
      EXPECT_TRUE(m.contains(k)) << k;
    }
    EXPECT_GT(m["tokens"].get<int>(), 0);
    owns += m["owns"].get<double>();
  }
  EXPECT_NEAR(owns, 100.0, 0.01);
  r = Kvtool({"--host", nodes_[3]->address(), "--json", "ring"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ring = nlohmann::json::parse(r.out);
  ASSERT_FALSE(ring["ranges"].empty());
  for (const auto& range : ring["ranges"]) EXPECT_EQ(range["replicas"].size(), 3u);
}

TEST_F(Cluster, KilledNodeIsDownEverywhereAndComesBackWithHigherGeneration) {
  StartAll(5);
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(30)));
  const std::string victim = nodes_[3]->node_id();
  const std::uint64_t old_generation = nodes_[3]->generation();
  const auto t0 = Clock::now();
  nodes_[3]->Stop(SIGKILL);
  ASSERT_TRUE(WaitAll(
      Others(3), [&](auto& v) { return v[victim].status == "DOWN"; }, std::chrono::seconds(60),
      Others(3)));
  std::printf("[ figure ] SIGKILL to DOWN on every node: %.2f s (probe interval 200 ms)\n",
              std::chrono::duration<double>(Clock::now() - t0).count());

  ASSERT_TRUE(nodes_[3]->Start()) << nodes_[3]->stderr_text();
  EXPECT_GT(nodes_[3]->generation(), old_generation);
  ASSERT_TRUE(WaitAll(
      {0, 1, 2, 3, 4},
      [&](auto& v) {
        return v[victim].status == "UP" && v[victim].generation == nodes_[3]->generation();
      },
      std::chrono::seconds(60)));
}

// A data directory saved while its node was cleanly stopped, and restored after the node lived
// on (it resumed the same dot life and wrote more): the restored node must not resume that life,
// or it would issue again the dots its records lack (KV679). The cluster still knows the later
// life: the restored node takes a new one, and both writes survive.
TEST_F(Cluster, ARestoredDirectoryDoesNotResumeTheDotLifeItsNodeLivedOn) {
  StartAll(3);
  Kvd& a = *nodes_[1];
  auto put = [&](const std::string& value, bool with_context) {
    auto c = rpc::BlockingClient::Connect(a.address(), std::chrono::seconds(10));
    KV_CHECK(c.ok());
    std::string ctx;
    if (with_context) ctx = c.value()->Get("k", rpc::Consistency::kAll).context;
    auto w = c.value()->Put("k", value, ctx, rpc::Consistency::kAll);
    return w.status;
  };
  ASSERT_TRUE(put("first", false).ok());
  ASSERT_EQ(a.Stop(SIGTERM), 0);
  namespace fs = std::filesystem;
  const std::string data = dir_.path() + "/n2", copy = dir_.path() + "/n2-copy";
  fs::copy(data, copy, fs::copy_options::recursive);
  // It lives on with the same dot life, and writes once more.
  ASSERT_TRUE(a.Start()) << a.stderr_text();
  ASSERT_TRUE(Eventually([&] { return a.stderr_text().find("resumed the dot life") !=
                                      std::string::npos; },
                         std::chrono::seconds(30)))
      << a.stderr_text();
  ASSERT_TRUE(Eventually([&] { return put("second", true).ok(); }, std::chrono::seconds(30)));
  ASSERT_EQ(a.Stop(SIGTERM), 0);
  // The old copy comes back.
  fs::remove_all(data);
  fs::rename(copy, data);
  ASSERT_TRUE(a.Start()) << a.stderr_text();
  ASSERT_TRUE(Eventually([&] { return a.stderr_text().find("lived on after the state") !=
                                      std::string::npos; },
                         std::chrono::seconds(30)))
      << a.stderr_text();
  EXPECT_EQ(a.stderr_text().find("resumed the dot life", a.stderr_text().find("lived on after")),
            std::string::npos);
  // Its next write carries the context of its own (old) record: with the life resumed it would
  // reuse the dot of "second", and merge would drop one of the two.
  ASSERT_TRUE(Eventually(
      [&] {
        auto c = rpc::BlockingClient::Connect(a.address(), std::chrono::seconds(10));
        if (!c.ok()) return false;
        auto local = c.value()->Get("k", rpc::Consistency::kDefault, /*local=*/true);
        return c.value()->Put("k", "third", local.context, rpc::Consistency::kAll).status.ok();
      },
      std::chrono::seconds(30)));
  auto c = rpc::BlockingClient::Connect(nodes_[0]->address(), std::chrono::seconds(10));
  ASSERT_TRUE(c.ok());
  auto all = c.value()->Get("k", rpc::Consistency::kAll);
  ASSERT_TRUE(all.status.ok()) << all.status.ToString();
  auto sibs = all.siblings;
  std::sort(sibs.begin(), sibs.end());
  EXPECT_EQ(sibs, (std::vector<std::string>{"second", "third"}));
}

TEST_F(Cluster, PausedNodeIsUpAgainAfterContinue) {
  StartAll(5);
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(30)));
  nodes_[1]->Signal(SIGSTOP);
  // Three probe periods; elapsed time is the point here, not an event to wait for.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  nodes_[1]->Signal(SIGCONT);
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(60)));
}

TEST_F(Cluster, SigtermStopsWithoutLeavingTheRing) {
  StartAll(5);
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(30)));
  const std::string stopped = nodes_[4]->node_id();
  EXPECT_EQ(nodes_[4]->Stop(SIGTERM), 0) << nodes_[4]->stderr_text();
  // A stop is not a leave: the others see it DOWN, in state normal, still owning its tokens.
  ASSERT_TRUE(WaitAll(
      Others(4), [&](auto& v) { return v[stopped].status == "DOWN"; }, std::chrono::seconds(60),
      Others(4)));
  auto r = Kvtool({"--host", nodes_[0]->address(), "--json", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  bool seen = false;
  for (const auto& m : j["nodes"]) {
    if (m["id"] != stopped) continue;
    seen = true;
    EXPECT_EQ(m["state"], "normal");
    EXPECT_GT(m["owns"].get<double>(), 0);
  }
  EXPECT_TRUE(seen);
  EXPECT_TRUE(j["movement"].is_null());
  // It comes back with its ranges and its data, and nothing moved.
  const std::size_t before = nodes_[4]->stderr_text().size();
  ASSERT_TRUE(nodes_[4]->Start()) << nodes_[4]->stderr_text();
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(60)));
  const std::string restarted = nodes_[4]->stderr_text().substr(before);
  EXPECT_EQ(restarted.find("join of"), std::string::npos) << restarted;
}

// A removed id's tombstone keeps its age while a node is down (kvd persists when each id was
// removed): a node stopped before the tombstone expired and started after it does not bring it
// back to a cluster that dropped it (it did, for one more TTL, when only ids were kept).
TEST_F(Cluster, ANodeDownWhileATombstoneExpiresDoesNotBringItBack) {
  StartAll(3, {"--gossip-removed-ttl-s", "8"});
  ASSERT_TRUE(AllUp({0, 1, 2}, 3, std::chrono::seconds(30)));
  // Tombstones node i holds now (kvtool stats: node.gossip_tombstones); -1 if it did not answer.
  auto tombstones = [&](int i) -> int {
    auto r = Kvtool({"--host", nodes_[i]->address(), "--json", "stats"});
    if (r.exit_code != 0) return -1;
    return nlohmann::json::parse(r.out)["node"]["gossip_tombstones"].get<int>();
  };
  auto until = [&](const std::function<bool()>& done, std::chrono::seconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // poll interval
    }
    return false;
  };
  const std::string victim = nodes_[2]->node_id();
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(WaitAll(
      {0, 1}, [&](auto& v) { return v[victim].status == "DOWN"; }, std::chrono::seconds(60)));
  auto r = Kvtool({"--host", nodes_[0]->address(), "removenode", victim});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(until([&] { return tombstones(0) == 1 && tombstones(1) == 1; },
                    std::chrono::seconds(60)));
  nodes_[1]->Stop(SIGTERM);
  // Node 0 drops the tombstone once it is 8 s old; node 1 is down meanwhile.
  ASSERT_TRUE(until([&] { return tombstones(0) == 0; }, std::chrono::seconds(60)));
  ASSERT_TRUE(nodes_[1]->Start()) << nodes_[1]->stderr_text();
  EXPECT_EQ(tombstones(1), 0) << "the restarted node restored an expired tombstone: "
                              << nodes_[1]->stderr_text();
  ASSERT_TRUE(AllUp({0, 1}, 2, std::chrono::seconds(60)));
  // Three push-pull rounds (2 s apart) go by: neither node holds the id again.
  const auto end = Clock::now() + std::chrono::seconds(6);
  while (Clock::now() < end) {
    for (int i : {0, 1}) ASSERT_EQ(tombstones(i), 0) << "node " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // poll interval
  }
}

TEST_F(Cluster, RemovedNodeNeverComesBack) {
  StartAll(5);
  ASSERT_TRUE(AllUp({0, 1, 2, 3, 4}, 5, std::chrono::seconds(30)));
  const std::string victim = nodes_[2]->node_id();
  // An UP node cannot be removed.
  auto r = Kvtool({"--host", nodes_[0]->address(), "removenode", victim});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  nodes_[2]->Stop(SIGKILL);
  ASSERT_TRUE(WaitAll(
      Others(2), [&](auto& v) { return v[victim].status == "DOWN"; }, std::chrono::seconds(60)));
  r = Kvtool({"--host", nodes_[0]->address(), "removenode", victim});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitAll(
      Others(2), [&](auto& v) { return v[victim].status == "REMOVED"; }, std::chrono::seconds(60)));
  // Its process comes back with its old data: the cluster refuses it, and it says why.
  Kvd& again = *nodes_[2];
  const bool started = again.Start();
  if (started) {
    // It may get as far as printing its ready line before it hears the verdict.
    const auto end = Clock::now() + std::chrono::seconds(60);
    while (again.Alive() && Clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(again.Alive());
  EXPECT_EQ(again.Stop(SIGKILL), -1);
  EXPECT_NE(again.stderr_text().find("removed"), std::string::npos) << again.stderr_text();
  // And a later start refuses at once, from its own metadata.
  EXPECT_FALSE(again.Start());
  EXPECT_NE(again.stderr_text().find("cannot rejoin"), std::string::npos) << again.stderr_text();
  // Nobody resurrects it.
  for (int i : Others(2)) EXPECT_EQ(ViewOf(i)[victim].status, "REMOVED");
}

}  // namespace
}  // namespace kv::test

namespace kv::test {
namespace {

// Gossip sealed under one cluster key: the nodes holding it form a cluster and serve; a node
// with another key never gets in, and what it sends is dropped and counted.
TEST_F(Cluster, NodesSharingAGossipKeyFormAClusterAndAnotherKeyStaysOut) {
  const std::string key = WriteFile(dir_.path(), "cluster.key", NewKey());
  StartAll(3, {"--gossip-key-file", key});
  ASSERT_TRUE(AllUp({0, 1, 2}, 3, std::chrono::seconds(30)));
  auto put = Kvtool({"--host", nodes_[1]->address(), "put", "k", "v"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  const std::string other = WriteFile(dir_.path(), "other.key", NewKey());
  nodes_.push_back(std::make_unique<Kvd>(
      dir_.path() + "/n4",
      std::vector<std::string>{"--probe-interval-ms", "200", "--probe-timeout-ms", "100",
                               "--gossip-interval-ms", "50", "--push-pull-interval-ms", "2000",
                               "--cluster-name", "it", "--gossip", "127.0.0.4:0", "--seeds",
                               nodes_[0]->gossip_address(), "--gossip-key-file", other},
      "127.0.0.4"));
  (void)nodes_.back()->Start(std::chrono::seconds(5));  // it may never get ready: it cannot join
  auto dropped = [&](int i) -> std::uint64_t {
    auto r = Kvtool({"--host", nodes_[i]->address(), "--json", "stats"});
    if (r.exit_code != 0) return 0;
    return nlohmann::json::parse(r.out)["node"]["gossip_dropped_unopened"].get<std::uint64_t>();
  };
  ASSERT_TRUE(Eventually([&] { return dropped(0) > 0; }, std::chrono::seconds(30)));
  const auto v = ViewOf(0);
  EXPECT_EQ(v.size(), 3u) << "a node with another key got into the view";
  auto get = Kvtool({"--host", nodes_[2]->address(), "get", "k"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
}

TEST_F(Cluster, GarbageDatagramsChangeNothingAndAreCounted) {
  StartAll(3);
  ASSERT_TRUE(AllUp({0, 1, 2}, 3, std::chrono::seconds(30)));
  auto before = ViewOf(0);
  auto counted = [&]() {
    auto r = Kvtool({"--host", nodes_[0]->address(), "--json", "stats"});
    if (r.exit_code != 0) return std::uint64_t{0};
    const auto j = nlohmann::json::parse(r.out)["gossip"];
    return j["dropped_malformed"].get<std::uint64_t>() +
           j["dropped_oversize"].get<std::uint64_t>() + j["dropped_version"].get<std::uint64_t>() +
           j["dropped_cluster"].get<std::uint64_t>();
  };
  // Batches of 20, each counted before the next is sent, so the socket's receive buffer never
  // overflows (a slow sanitizer build drops a burst at the kernel, before kvd sees it).
  std::mt19937_64 rng(17);
  std::uint64_t sent = 0;
  for (int batch = 0; batch < 15; ++batch) {
    for (int i = 0; i < 20; ++i, ++sent) {
      std::string junk(1 + rng() % 1400, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      SendDatagram(nodes_[0]->gossip_address(), junk);
    }
    if (batch == 14) {
      SendDatagram(nodes_[0]->gossip_address(), std::string(9000, 'x'));  // oversize
      ++sent;
    }
    const auto end = Clock::now() + std::chrono::seconds(30);
    while (counted() < sent && Clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval
    }
  }
  EXPECT_EQ(counted(), sent);
  // Every member is still UP, with the same generation.
  ASSERT_TRUE(AllUp({0, 1, 2}, 3, std::chrono::seconds(30)));
  auto after = ViewOf(0);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [id, seen] : before) EXPECT_EQ(after[id].generation, seen.generation);
}

}  // namespace
}  // namespace kv::test

namespace kv::test {
namespace {

// An HTTP/1.1 request to 127.0.0.1:`port`; the whole response (status line, headers, body).
std::string Http(int port, const std::string& method, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: kv\r\nConnection: close\r\n\r\n";
  (void)!send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  // Read until the body announced by Content-Length is in (the server may keep the
  // connection open for another request).
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
    out.append(buf, static_cast<std::size_t>(n));
    const auto end = out.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    std::smatch m;
    const std::string head = out.substr(0, end);
    static const std::regex length("[Cc]ontent-[Ll]ength: *([0-9]+)");
    if (std::regex_search(head, m, length) && out.size() >= end + 4 + std::stoul(m[1])) break;
  }
  close(fd);
  return out;
}

// The value of the sample `series` (its name and labels as printed) in exposition `text`; -1 if
// it is not there.
double Sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

int MetricsPort(Kvd& node) {
  std::smatch m;
  const std::string err = node.stderr_text();
  static const std::regex re("metrics on 127\\.0\\.0\\.1:([0-9]+)");
  return std::regex_search(err, m, re) ? std::stoi(m[1]) : -1;
}

// After known traffic, the histograms and counters of /metrics equal what was sent, and the
// output is Prometheus text as Prometheus' own checker reads it.
TEST_F(Cluster, MetricsCountWhatWasSentAndParseAsPrometheusText) {
  StartAll(3, {"--metrics", "127.0.0.1:0"});
  std::vector<int> port;
  for (auto& n : nodes_) {
    ASSERT_TRUE(Eventually([&] { return MetricsPort(*n) > 0; }, std::chrono::seconds(10)))
        << n->stderr_text();
    port.push_back(MetricsPort(*n));
  }
  auto body = [&](int i) {
    const std::string r = Http(port[i], "GET", "/metrics");
    const auto at = r.find("\r\n\r\n");
    return at == std::string::npos ? std::string() : r.substr(at + 4);
  };
  const std::string before = body(0);
  const double puts0 = Sample(before, R"(kv_coordinator_request_duration_seconds_count{op="put"})");
  ASSERT_GE(puts0, 0) << before;
  const std::string h = nodes_[0]->address();
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(Kvtool({"--host", h, "put", "m" + std::to_string(i), "v"}).exit_code, 0);
  }
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Kvtool({"--host", h, "get", "m" + std::to_string(i)}).exit_code, 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Kvtool({"--host", h, "get", "none" + std::to_string(i)}).exit_code, 1);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Kvtool({"--host", h, "delete", "m" + std::to_string(i)}).exit_code, 0);

  const std::string text = body(0);
  auto count = [&](const std::string& series) { return Sample(text, series); };
  EXPECT_EQ(count(R"(kv_coordinator_request_duration_seconds_count{op="put"})") - puts0, 20);
  EXPECT_EQ(count(R"(kv_coordinator_request_duration_seconds_count{op="get"})"), 13);
  EXPECT_EQ(count(R"(kv_coordinator_request_duration_seconds_count{op="delete"})"), 5);
  EXPECT_EQ(count(R"(kv_coordinator_request_duration_seconds_bucket{op="get",le="+Inf"})"), 13);
  EXPECT_EQ(count(R"(kv_client_requests_total{op="get",outcome="ok"})"), 10);
  EXPECT_EQ(count(R"(kv_client_requests_total{op="get",outcome="not_found"})"), 3);
  EXPECT_EQ(count(R"(kv_client_requests_total{op="put",outcome="ok"})") - puts0, 20);
  EXPECT_EQ(count(R"(kv_client_requests_total{op="delete",outcome="ok"})"), 5);
  EXPECT_EQ(count(R"(kv_client_requests_total{op="put",outcome="unavailable"})"), 0);
  EXPECT_EQ(count("kv_read_siblings_count"), 10);
  EXPECT_EQ(count(R"(kv_read_siblings_bucket{le="1"})"), 10);
  EXPECT_GT(count(R"(kv_gossip_messages_total{kind="datagram",direction="in"})"), 0);
  EXPECT_EQ(count(R"(kv_gossip_members{status="UP"})"), 3);
  // Every write reached the two other replicas; every read asked at least one of them.
  EXPECT_TRUE(Eventually([&] {
    double writes = 0;
    for (int i : {1, 2}) writes += Sample(body(i), R"(kv_replica_request_duration_seconds_count{op="write"})");
    return writes == 2 * (25 + puts0);
  }, std::chrono::seconds(10)));
  double reads = 0;
  for (int i : {1, 2}) reads += Sample(body(i), R"(kv_replica_request_duration_seconds_count{op="read"})");
  EXPECT_GE(reads, 13);

  // A repair adds its run and what it moved with each peer.
  ASSERT_EQ(Kvtool({"--host", h, "repair"}).exit_code, 0);
  const std::string after_repair = body(0);
  EXPECT_EQ(Sample(after_repair, R"(kv_repair_runs_total{outcome="ok"})"), 1) << after_repair;
  for (int i : {1, 2}) {
    const std::string peer = nodes_[i]->node_id();
    EXPECT_GE(Sample(after_repair, "kv_repair_keys_total{peer=\"" + peer + "\",direction=\"sent\"}"), 0)
        << after_repair;
  }
  for (const std::string& t : {text, after_repair}) {
    const RunResult check = kv::test::Run({"promtool", "check", "metrics"}, t);
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err << t;
  }

  EXPECT_NE(Http(port[0], "GET", "/other").find("HTTP/1.1 404"), std::string::npos);
  EXPECT_NE(Http(port[0], "POST", "/metrics").find("HTTP/1.1 405"), std::string::npos);
  EXPECT_NE(Http(port[0], "GET", "/metrics").find("Content-Type: text/plain; version=0.0.4"),
            std::string::npos);
  const RunResult bad = kv::test::Run({KV_KVD_PATH, "--data-dir", dir_.path() + "/bad", "--metrics", "nohost"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("kvd: --metrics:"), std::string::npos) << bad.err;
}

// Nodes that bind every address (0.0.0.0) take the address they advertise as their identity
// in gossip and in the ring: the others dial it, names resolve at start, and a wildcard bind
// without an advertised address is refused.
TEST_F(Cluster, WildcardBindsAdvertiseTheirAddressAndServeQuorum) {
  for (int i = 0; i < 3; ++i) {
    const std::string ip = "127.0.0." + std::to_string(i + 1);
    std::vector<std::string> flags = kFast;
    // Node 1 advertises a name, and the others join through it by name.
    flags.insert(flags.end(), {"--gossip", "0.0.0.0:0", "--advertise", i == 0 ? "localhost" : ip});
    if (i > 0) {
      const std::string g = nodes_[0]->gossip_address();
      flags.insert(flags.end(), {"--seeds", "localhost" + g.substr(g.rfind(':'))});
    }
    nodes_.push_back(std::make_unique<Kvd>(dir_.path() + "/w" + std::to_string(i), flags,
                                           "0.0.0.0"));
    ASSERT_TRUE(nodes_.back()->Start()) << nodes_.back()->stderr_text();
    EXPECT_EQ(nodes_.back()->address().rfind(ip + ":", 0), 0u) << nodes_.back()->address();
    EXPECT_EQ(nodes_.back()->gossip_address().rfind(ip + ":", 0), 0u);
  }
  std::vector<std::string> hosts;
  for (const auto& node : nodes_) hosts.push_back(node->address());
  ASSERT_TRUE(WaitSettled(hosts, 3));
  auto r = Kvtool({"--host", hosts[1], "--json", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto status = nlohmann::json::parse(r.out);
  ASSERT_EQ(status["nodes"].size(), 3u);
  for (const auto& m : status["nodes"]) {
    EXPECT_EQ(m["rpc"].get<std::string>().rfind("127.0.0.", 0), 0u) << m;
    EXPECT_EQ(m["gossip"].get<std::string>().rfind("127.0.0.", 0), 0u) << m;
  }
  ASSERT_EQ(Kvtool({"--host", hosts[2], "put", "k", "v", "-c", "all"}).exit_code, 0);
  r = Kvtool({"--host", hosts[1], "get", "k", "-c", "all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "v");

  const std::string kvd = KV_KVD_PATH;
  auto bad = kv::test::Run({kvd, "--data-dir", dir_.path() + "/b", "--listen", "0.0.0.0:0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("binds every address: give --advertise"), std::string::npos) << bad.err;
  bad = kv::test::Run({kvd, "--data-dir", dir_.path() + "/b", "--listen", "127.0.0.1:0",
                       "--gossip", "0.0.0.0:0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("give --advertise"), std::string::npos) << bad.err;
  bad = kv::test::Run({kvd, "--data-dir", dir_.path() + "/b", "--listen", "127.0.0.1:0",
                       "--gossip", "127.0.0.1:0", "--seeds", "no-such-host.invalid:7946"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("cannot resolve 'no-such-host.invalid'"), std::string::npos) << bad.err;
  bad = kv::test::Run({kvd, "--data-dir", dir_.path() + "/b", "--listen", "0.0.0.0:0",
                       "--advertise", "0.0.0.0"});
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
}  // namespace kv::test
