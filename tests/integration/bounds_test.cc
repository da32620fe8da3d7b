// Issue 14's bounds, tried as an abusive client would: a flood of writes far beyond what the
// node absorbs, thousands of idle connections, connections that send half a message and stop,
// and more connections than the cap. Real kvd processes on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "rpc/client_conn.h"
#include "tests/integration/process.h"

namespace kv::test {
namespace {

// The process's peak and current resident memory (VmHWM, VmRSS) in KiB.
std::pair<long, long> MemoryKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  long hwm = -1, rss = -1;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stol(line.substr(6));
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stol(line.substr(6));
  }
  return {hwm, rss};
}

nlohmann::json Stats(const Kvd& kvd) {
  auto r = Kvtool({"--host", kvd.address(), "--json", "stats"});
  if (r.exit_code != 0) return nlohmann::json();
  return nlohmann::json::parse(r.out)["node"];
}

// A plain TCP connection to the node (no RPC), or -1.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether the node closed the connection (a read sees EOF or a reset, after whatever it sent
// last, such as Cap'n Proto's abort message), without waiting.
bool ClosedByPeer(int fd) {
  char buf[4096];
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
  return false;
}

void RaiseFileLimit() {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 4096) GTEST_SKIP() << "ulimit -n is " << rl.rlim_cur << ", the test needs 4096";
}

// One client floods the node with far more writes than its disk takes (every batch fsynced,
// a small write queue): the excess is refused as overloaded at once, memory stays bounded,
// another client is still answered, and every write acknowledged is there afterwards, every
// refused one is not.
TEST(Bounds, AFloodOfWritesIsRefusedAsOverloadedAndLosesNothingAcknowledged) {
  TempDir dir;
  Kvd kvd(dir.path() + "/d", {"--sync-writes", "--max-queued-writes", "32"});
  ASSERT_TRUE(kvd.Start()) << kvd.stderr_text();
  std::atomic<bool> flooding{true};
  std::atomic<int> other_ok{0}, other_overloaded{0}, other_failed{0}, other_reads_ok{0};
  std::string other_error;
  std::vector<std::string> other_acked;
  std::thread other([&] {
    auto c = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
    if (!c.ok()) {
      other_failed = 1;
      other_error = c.status().ToString();
      return;
    }
    for (int i = 0; i < 2000 && flooding; ++i) {
      const std::string key = "other:" + std::to_string(i);
      const Status s = c.value()->Put(key, "x", "").status;
      if (s.ok()) {
        ++other_ok;
        other_acked.push_back(key);
      } else if (s.code() == Status::Code::kOverloaded) {
        ++other_overloaded;
        if (s.ToString().rfind("overloaded: ", 0) != 0) other_error = s.ToString();
      } else {
        ++other_failed;
        other_error = s.ToString();
      }
      if (!other_acked.empty()) {
        const auto g = c.value()->Get(other_acked.front());
        if (g.status.ok()) ++other_reads_ok;
        else {
          ++other_failed;
          other_error = g.status.ToString();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // pacing
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto flood = Kvtool({"--host", kvd.address(), "--json", "--timeout-ms", "30000", "bench",
                       "--workload", "write-only", "--distribution", "sequential", "--ops",
                       "20000", "--keys", "20000", "--concurrency", "1000", "--value-size",
                       "4096", "--duration", "60"});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  flooding = false;
  other.join();
  const auto [hwm_kib, rss_kib] = MemoryKiB(kvd.pid());
  ASSERT_FALSE(flood.out.empty()) << flood.err;
  const auto j = nlohmann::json::parse(flood.out);
  const auto& put = j["operations"][0];
  const std::uint64_t acked = put["ops"].get<std::uint64_t>();
  const std::uint64_t refused =
      put["errors_by_kind"].contains("overloaded") ? put["errors_by_kind"]["overloaded"].get<std::uint64_t>() : 0;
  std::printf("flood: %llu acknowledged, %llu refused as overloaded in %.1f s (%.0f and %.0f per s), "
              "%llu other errors; kvd peak memory %ld MiB\n",
              static_cast<unsigned long long>(acked), static_cast<unsigned long long>(refused), secs,
              acked / secs, refused / secs,
              static_cast<unsigned long long>(put["errors"].get<std::uint64_t>() - refused),
              hwm_kib / 1024);
  EXPECT_GT(refused, 0u) << flood.out;
  EXPECT_GT(acked, 0u) << flood.out;
  EXPECT_EQ(put["errors"].get<std::uint64_t>(), refused) << "errors other than overloaded: " << flood.out;
  EXPECT_LT(hwm_kib, 512 * 1024) << "kvd's peak memory";
  // The other client was answered every time: reads always, writes done or refused.
  EXPECT_EQ(other_failed.load(), 0) << other_error;
  EXPECT_GT(other_ok + other_overloaded, 0);
  EXPECT_EQ(other_reads_ok.load(), other_ok.load() > 0 ? other_ok + other_overloaded : 0);
  // Every acknowledged write is there and no refused one is: each key was written once.
  auto c = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
  ASSERT_TRUE(c.ok());
  std::uint64_t present = 0;
  for (int k = 0; k < 20000; ++k) present += c.value()->Get("bench:" + std::to_string(k)).status.ok();
  EXPECT_EQ(present, acked);
  for (const auto& key : other_acked) EXPECT_TRUE(c.value()->Get(key).status.ok()) << key;
  auto stats = Stats(kvd);
  EXPECT_GE(stats["writes_refused_overloaded"].get<std::uint64_t>(), refused);
}

// 2,000 idle connections and 50 that send half a message (announcing 1 MiB) and stop: the node
// keeps serving another client, holds no announced megabytes, and closes the half-sent ones
// at their deadline.
TEST(Bounds, IdleAndHalfSentConnectionsLeaveTheNodeServing) {
  RaiseFileLimit();
  TempDir dir;
  Kvd kvd(dir.path() + "/d", {"--message-timeout-ms", "3000"});
  ASSERT_TRUE(kvd.Start()) << kvd.stderr_text();
  std::vector<int> idle, half;
  for (int i = 0; i < 2000; ++i) {
    const int fd = Connect(kvd.port());
    ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
    idle.push_back(fd);
  }
  // A one-segment message of 131072 words (1 MiB), of which 1,000 bytes are sent.
  std::string part(8 + 1000, '\x55');
  const std::uint32_t segments_minus_one = 0, words = 131072;
  std::memcpy(part.data(), &segments_minus_one, 4);
  std::memcpy(part.data() + 4, &words, 4);
  for (int i = 0; i < 50; ++i) {
    const int fd = Connect(kvd.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, part.data(), part.size(), MSG_NOSIGNAL), static_cast<ssize_t>(part.size()));
    half.push_back(fd);
  }
  auto c = rpc::BlockingClient::Connect(kvd.address(), std::chrono::seconds(10));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(c.value()->Put("k" + std::to_string(i), "v", "").status.ok()) << i;
    ASSERT_TRUE(c.value()->Get("k" + std::to_string(i)).status.ok()) << i;
  }
  const auto [hwm_kib, rss_kib] = MemoryKiB(kvd.pid());
  std::printf("2,000 idle and 50 half-sent connections: kvd resident %ld MiB (peak %ld MiB)\n",
              rss_kib / 1024, hwm_kib / 1024);
  EXPECT_LT(hwm_kib, 256 * 1024) << "50 x 1 MiB announced would show here";
  EXPECT_TRUE(Eventually(
      [&] {
        for (int fd : half) {
          if (!ClosedByPeer(fd)) return false;
        }
        return true;
      },
      std::chrono::seconds(30)))
      << "half-sent connections still open";
  int idle_closed = 0;
  for (int fd : idle) idle_closed += ClosedByPeer(fd);
  EXPECT_EQ(idle_closed, 0) << "idle connections have no deadline";
  auto stats = Stats(kvd);
  EXPECT_GE(stats["connections_failed"].get<std::uint64_t>(), 50u) << stats.dump();
  EXPECT_GE(stats["connections_open"].get<std::uint64_t>(), 2000u) << stats.dump();
  for (int fd : idle) close(fd);
  for (int fd : half) close(fd);
}

// Past --max-connections, a new connection is closed at once and counted; once others go,
// clients are served again.
TEST(Bounds, ConnectionsPastTheCapAreClosedAtOnceAndCounted) {
  TempDir dir;
  Kvd kvd(dir.path() + "/d", {"--max-connections", "100"});
  ASSERT_TRUE(kvd.Start()) << kvd.stderr_text();
  std::vector<int> fds;
  for (int i = 0; i < 150; ++i) {
    const int fd = Connect(kvd.port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  int closed = 0;
  EXPECT_TRUE(Eventually(
      [&] {
        closed = 0;
        for (int fd : fds) closed += ClosedByPeer(fd);
        return closed >= 50;
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(closed, 50);
  for (int fd : fds) close(fd);
  // Served again; the refusals were counted.
  EXPECT_TRUE(Eventually(
      [&] {
        auto s = Stats(kvd);
        return !s.is_null() && s["connections_refused_over_cap"].get<std::uint64_t>() == 50u;
      },
      std::chrono::seconds(30)))
      << Stats(kvd).dump();
}

}  // namespace
}  // namespace kv::test
