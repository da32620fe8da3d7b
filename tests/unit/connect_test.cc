#include "rpc/connect.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

namespace kv::rpc {
namespace {

TEST(SourceHostOf, IsTheListenHostOnlyWhenItIsOneIpv4Address) {
  EXPECT_EQ(SourceHostOf("127.0.0.3:7701"), "127.0.0.3");
  EXPECT_EQ(SourceHostOf("127.0.0.3:0"), "127.0.0.3");
  EXPECT_EQ(SourceHostOf("0.0.0.0:7701"), "");
  EXPECT_EQ(SourceHostOf("localhost:7701"), "");
  EXPECT_EQ(SourceHostOf("127.0.0.3"), "");
  EXPECT_EQ(SourceHostOf(""), "");
}

// The peer address the listener sees for a connection dialled from `source`.
std::string PeerSeenFrom(const std::string& source) {
  auto io = kj::setupAsyncIo();
  auto listener =
      io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
  const std::string target = "127.0.0.1:" + std::to_string(listener->getPort());
  auto accepted = listener->accept();
  auto dialled = Dial(*io.provider, *io.lowLevelProvider, target, source).wait(io.waitScope);
  auto stream = accepted.wait(io.waitScope);
  sockaddr_in peer{};
  kj::uint len = sizeof(peer);
  stream->getpeername(reinterpret_cast<sockaddr*>(&peer), &len);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &peer.sin_addr, buf, sizeof(buf));
  return buf;
}

TEST(Dial, ConnectionLeavesFromTheSourceAddress) {
  EXPECT_EQ(PeerSeenFrom("127.0.0.9"), "127.0.0.9");
  EXPECT_EQ(PeerSeenFrom("127.0.0.23"), "127.0.0.23");
  EXPECT_EQ(PeerSeenFrom(""), "127.0.0.1");  // the kernel's choice on loopback
}

// RPC streams send each loop turn's messages at once: Nagle's algorithm would only hold a small
// request back until the peer's delayed ACK (40 ms a step). KJ turns it off on the streams it
// connects; a dial from a source address makes its own socket and must do the same.
TEST(Dial, ConnectionsFromASourceAddressSendAtOnce) {
  auto io = kj::setupAsyncIo();
  auto listener =
      io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
  const std::string target = "127.0.0.1:" + std::to_string(listener->getPort());
  auto accepted = listener->accept();
  for (const std::string source : {"127.0.0.1", ""}) {
    auto dialled = Dial(*io.provider, *io.lowLevelProvider, target, source).wait(io.waitScope);
    int v = 0;
    kj::uint len = sizeof v;
    dialled->getsockopt(IPPROTO_TCP, TCP_NODELAY, &v, &len);
    EXPECT_NE(v, 0) << "from '" << source << "'";
  }
}

TEST(Dial, MalformedAddressesAreRejected) {
  auto io = kj::setupAsyncIo();
  for (auto [target, source] : {std::pair<std::string, std::string>{"127.0.0.1:1", "nonsense"},
                                {"localhost:1", "127.0.0.2"},
                                {"127.0.0.1", "127.0.0.2"},
                                {"127.0.0.1:99999", "127.0.0.2"}}) {
    auto result = Dial(*io.provider, *io.lowLevelProvider, target, source)
                      .then([](kj::Own<kj::AsyncIoStream>) { return true; },
                            [](kj::Exception&&) { return false; })
                      .wait(io.waitScope);
    EXPECT_FALSE(result) << target << " from " << source;
  }
}

}  // namespace
}  // namespace kv::rpc
