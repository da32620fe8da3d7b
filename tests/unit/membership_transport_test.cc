// The gossip transport's bounds on incoming push-pull streams (membership/asio_transport.h),
// over real loopback sockets (127.0.0.1 only), and the size of the push-pull they must admit.
// No sleeps: every wait polls with a deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "membership/asio_transport.h"
#include "membership/membership.h"

namespace kv::membership {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kLoopback = 0x7f000001;

// Polls `done` until it holds or `limit` of wall time passed.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    ::poll(nullptr, 0, 5);  // yield a little between checks
  }
  return true;
}

// A client TCP connection to the agent's gossip port.
class Conn {
 public:
  explicit Conn(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(kLoopback);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Conn() { Close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Whether the agent closed the connection within `limit`.
  bool ClosedByPeer(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) <= 0;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string Header(std::uint32_t n) {
  return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
}

// Peak resident memory of this process, in KiB.
std::size_t PeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

class Transport : public ::testing::Test {
 protected:
  GossipAgent& Start(StreamLimits limits) {
    AgentOptions o;
    o.self = 1;
    o.gossip = Endpoint{kLoopback, 0};
    o.generation = 1;
    o.seed = 1;
    o.streams = limits;
    agent_ = std::make_unique<GossipAgent>(std::move(o));
    std::string error;
    EXPECT_TRUE(agent_->Start(&error)) << error;
    return *agent_;
  }
  std::uint16_t port() const { return agent_->endpoint().port; }

  std::unique_ptr<GossipAgent> agent_;
};

// Beyond max_incoming open streams a new connection is closed at once and counted; once a
// place is free again, a stream is read.
TEST_F(Transport, TooManyConcurrentStreamsAreRefusedAndCounted) {
  StreamLimits limits;
  limits.max_incoming = 2;
  limits.timeout = 60s;  // the held streams must outlive the test
  GossipAgent& agent = Start(limits);
  Conn a(port()), b(port());
  ASSERT_TRUE(a.connected() && b.connected());
  ASSERT_TRUE(a.Send(Header(100)));  // announces 100 bytes and holds its place
  ASSERT_TRUE(b.Send(Header(100)));
  Conn c(port());
  ASSERT_TRUE(c.connected());  // the kernel accepts; the agent closes it
  EXPECT_TRUE(c.ClosedByPeer(10s));
  EXPECT_TRUE(WaitFor([&] { return agent.counters().streams_refused_busy == 1; }));
  EXPECT_FALSE(a.ClosedByPeer(0ms));
  // A place frees once a held stream ends (when is not observable from here: retry until a
  // stream gets read; three bytes that do not decode).
  a.Close();
  EXPECT_TRUE(WaitFor([&] {
    Conn d(port());
    if (!d.Send(Header(3) + "abc") || !d.ClosedByPeer(10s)) return false;
    return WaitFor([&] { return agent.counters().streams_in >= 1; }, 2s);
  }));
  EXPECT_GE(agent.counters().dropped_malformed, 1u);
}

// A stream announcing more than max_bytes is closed before its body is read.
TEST_F(Transport, OversizeStreamIsRefusedAndCounted) {
  StreamLimits limits;
  limits.max_bytes = 1000;
  GossipAgent& agent = Start(limits);
  Conn a(port());
  ASSERT_TRUE(a.Send(Header(1001)));
  EXPECT_TRUE(a.ClosedByPeer(10s));
  EXPECT_TRUE(WaitFor([&] { return agent.counters().streams_refused_oversize == 1; }));
  EXPECT_EQ(agent.counters().streams_in, 0u);
}

// A stream that announces 512 MiB and sends ten bytes costs a read step, not 512 MiB; it is
// closed at its deadline and counted.
TEST_F(Transport, AnnouncedLengthIsNotAllocatedUpFront) {
  StreamLimits limits;
  limits.max_bytes = 1u << 30;
  limits.timeout = 300ms;
  GossipAgent& agent = Start(limits);
  const std::size_t peak_before = PeakRssKib();
  Conn a(port());
  ASSERT_TRUE(a.Send(Header(512u << 20) + "0123456789"));
  EXPECT_TRUE(a.ClosedByPeer(10s));
  EXPECT_TRUE(WaitFor([&] { return agent.counters().streams_timed_out == 1; }));
  const std::size_t grown_kib = PeakRssKib() - peak_before;
  EXPECT_LT(grown_kib, 32u << 10) << "the announced length was allocated";
  std::printf("peak RSS grew by %zu KiB for a stream announcing 512 MiB\n", grown_kib);
}

// A stream that stops half-way is closed at its deadline and counted; one that completes in
// time is not.
TEST_F(Transport, IncompleteStreamIsClosedAtItsDeadline) {
  StreamLimits limits;
  limits.timeout = 500ms;
  GossipAgent& agent = Start(limits);
  Conn a(port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(a.Send(Header(100) + std::string(40, 'x')));
  EXPECT_TRUE(a.ClosedByPeer(10s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms);
  EXPECT_TRUE(WaitFor([&] { return agent.counters().streams_timed_out == 1; }));
  Conn b(port());
  ASSERT_TRUE(b.Send(Header(3) + "abc"));
  EXPECT_TRUE(b.ClosedByPeer(10s));
  EXPECT_TRUE(WaitFor([&] { return agent.counters().streams_in == 1; }));
  EXPECT_EQ(agent.counters().streams_timed_out, 1u);
}

// What the default max_bytes must admit: the SYN-ACK a member of a 1,000-node cluster sends a
// node that joins knowing nobody carries every member's full state.
std::size_t SynAckBytes(std::size_t nodes, std::size_t tokens) {
  std::mt19937_64 rng(nodes * 1000 + tokens);
  auto app_of = [&](NodeId id) {
    AppState app;
    for (std::size_t i = 0; i < tokens; ++i) app.tokens.push_back(rng());
    std::sort(app.tokens.begin(), app.tokens.end());
    app.state = NodeState::kNormal;
    app.rack = "rack" + std::to_string(id % 3);
    app.rpc_address = "10.0." + std::to_string(id / 250) + "." + std::to_string(id % 250) +
                      ":7701";
    app.load_bytes = rng() >> 20;
    app.dots_life = rng();
    return app;
  };
  auto endpoint_of = [](NodeId id) {
    return Endpoint{0x0a000000u + static_cast<std::uint32_t>(id), 7946};
  };
  const Time now = 1000s;
  Membership member(Config{}, 1, endpoint_of(1), 1, app_of(1), 1, now);
  std::vector<MemberView> all;
  for (NodeId id = 2; id <= nodes; ++id) {
    MemberView v;
    v.id = id;
    v.gossip = endpoint_of(id);
    v.generation = 3;
    v.incarnation = 2;
    v.app = app_of(id);
    v.app_version = 5;
    all.push_back(std::move(v));
  }
  member.RestoreMembers(all, now);
  Membership joiner(Config{}, nodes + 1, endpoint_of(nodes + 1), 1, app_of(nodes + 1), 2, now);
  joiner.Join({endpoint_of(1)}, now);
  std::size_t largest = 0;
  for (const Outgoing& o : joiner.TakeOutgoing()) {
    if (!o.stream) continue;
    member.TakeOutgoing();
    member.Receive(endpoint_of(nodes + 1), o.bytes, true, now);
    for (const Outgoing& reply : member.TakeOutgoing()) {
      if (reply.stream) largest = std::max(largest, reply.bytes.size());
    }
  }
  return largest;
}

TEST(TransportBounds, PushPullOfAThousandNodesFitsTheDefaultBound) {
  const std::size_t bound = StreamLimits{}.max_bytes;
  for (std::size_t tokens : {128u, 256u}) {
    const std::size_t bytes = SynAckBytes(1000, tokens);
    std::printf("SYN-ACK of a 1,000-node cluster, %zu tokens each: %zu bytes (bound %zu)\n",
                tokens, bytes, bound);
    EXPECT_GT(bytes, 1000 * tokens * 8) << "not every state was sent";
    EXPECT_LT(bytes + 4, bound);
  }
}

// ---- Gossip encryption (GossipSecurity, gossip_seal.h) between real agents.

class SealedTransport : public ::testing::Test {
 protected:
  // Starts agent `id`, joining through the first agent started; no security when `mode` is
  // empty.
  GossipAgent& Add(NodeId id, std::optional<GossipKey> key, SealMode mode = SealMode::kRequire) {
    AgentOptions o;
    o.self = id;
    o.gossip = Endpoint{kLoopback, 0};
    o.generation = 1;
    o.seed = id;
    o.config.probe_interval = 100ms;
    o.config.push_pull_interval = 500ms;
    if (!agents_.empty()) o.seeds = {agents_.front()->endpoint()};
    if (key) o.security = GossipSecurity{Keyring(*key), mode};
    agents_.push_back(std::make_unique<GossipAgent>(std::move(o)));
    std::string error;
    EXPECT_TRUE(agents_.back()->Start(&error)) << error;
    return *agents_.back();
  }
  static bool Knows(const GossipAgent& a, NodeId id) {
    const auto view = a.view();  // held: the member found points into it
    const MemberView* m = view->Find(id);
    return m != nullptr && m->liveness == Liveness::kUp;
  }
  // Sends `bytes` as one datagram to `a`'s gossip port.
  static void SendTo(const GossipAgent& a, const std::string& bytes) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(a.endpoint().port);
    to.sin_addr.s_addr = htonl(kLoopback);
    ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    ::close(fd);
  }

  std::vector<std::unique_ptr<GossipAgent>> agents_;
};

TEST_F(SealedTransport, AgentsSharingAKeyFormAClusterAndAnotherKeyIsShutOut) {
  const GossipKey key = NewGossipKey();
  GossipAgent& a = Add(1, key);
  GossipAgent& b = Add(2, key);
  ASSERT_TRUE(WaitFor([&] { return Knows(a, 2) && Knows(b, 1); }));
  GossipAgent& c = Add(3, NewGossipKey());  // joins through a with the wrong key
  ASSERT_TRUE(WaitFor([&] { return a.counters().dropped_unopened > 0; }));
  EXPECT_FALSE(Knows(a, 3));
  EXPECT_FALSE(Knows(c, 1));
  // The members still gossip with each other: b keeps hearing from a.
  const auto heard = b.counters().datagrams_in;
  EXPECT_TRUE(WaitFor([&] { return b.counters().datagrams_in > heard + 2; }));
  EXPECT_TRUE(Knows(b, 1));
}

// The rolling change from plain to sealed gossip: each step's neighbours understand each other
// (plain and accept; accept and seal; seal and require), plain and require do not.
TEST_F(SealedTransport, EachStepOfTheMoveToSealedGossipTalksToTheNext) {
  const GossipKey key = NewGossipKey();
  struct Pair {
    std::optional<SealMode> first, second;
    bool talk;
  };
  const std::vector<Pair> pairs = {{std::nullopt, SealMode::kAccept, true},
                                   {SealMode::kAccept, SealMode::kSeal, true},
                                   {SealMode::kSeal, SealMode::kRequire, true},
                                   {std::nullopt, SealMode::kRequire, false}};
  NodeId next = 10;
  for (const Pair& p : pairs) {
    agents_.clear();
    auto key_of = [&](std::optional<SealMode> m) { return m ? std::optional(key) : std::nullopt; };
    GossipAgent& x = Add(next, key_of(p.first), p.first.value_or(SealMode::kRequire));
    GossipAgent& y = Add(next + 1, key_of(p.second), p.second.value_or(SealMode::kRequire));
    if (p.talk) {
      EXPECT_TRUE(WaitFor([&] { return Knows(x, next + 1) && Knows(y, next); }))
          << "pair starting at " << next;
    } else {
      // The sealed node's join reaches the plain one as bytes it cannot decode.
      ASSERT_TRUE(WaitFor([&] { return x.counters().dropped_malformed > 0; }));
      EXPECT_FALSE(Knows(y, next));
      EXPECT_FALSE(Knows(x, next + 1));
    }
    next += 2;
  }
}

TEST_F(SealedTransport, ReplayedPlainForeignAndCutDatagramsAreDroppedAndCounted) {
  const GossipKey key = NewGossipKey();
  GossipAgent& a = Add(1, key);
  const Keyring ring(key);
  // Opens, passes the replay window, then does not decode: the core counts it as malformed.
  const std::string sealed = Seal(ring, Config{}.cluster_name, {99, 1, 5}, "not gossip");
  const std::uint64_t before = a.counters().bytes_in;  // alone: nothing else arrives
  SendTo(a, sealed);
  ASSERT_TRUE(WaitFor([&] { return a.counters().dropped_malformed == 1; }));
  // Counted as it came on the wire, sealed.
  EXPECT_EQ(a.counters().bytes_in - before, sealed.size());
  SendTo(a, sealed);  // the same datagram again
  ASSERT_TRUE(WaitFor([&] { return a.counters().dropped_replayed == 1; }));
  SendTo(a, "plain bytes");
  ASSERT_TRUE(WaitFor([&] { return a.counters().dropped_unsealed == 1; }));
  SendTo(a, Seal(Keyring(NewGossipKey()), Config{}.cluster_name, {99, 1, 6}, "x"));
  SendTo(a, sealed.substr(0, sealed.size() - 1));
  SendTo(a, Seal(ring, "another cluster", {99, 1, 7}, "x"));
  ASSERT_TRUE(WaitFor([&] { return a.counters().dropped_unopened == 3; }));
  EXPECT_EQ(a.counters().dropped_malformed, 1u);  // nothing else reached the core
  EXPECT_EQ(a.counters().dropped_replayed, 1u);
}

}  // namespace
}  // namespace kv::membership
