// PeerPool: a suspect connection is replaced, not reused (rpc/peers.h). Real sockets on
// loopback; the "peer" accepts connections and never answers, as a peer behind a partition
// whose packets are dropped looks to a connection that already carries calls.
#include "rpc/peers.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <string>
#include <vector>

namespace kv::rpc {
namespace {

class SilentPeer {
 public:
  explicit SilentPeer(kj::AsyncIoContext& io)
      : listener_(io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen()),
        accepting_(Accept().eagerlyEvaluate(nullptr)) {}
  std::string address() { return "127.0.0.1:" + std::to_string(listener_->getPort()); }
  std::size_t accepted() const { return streams_.size(); }

 private:
  kj::Promise<void> Accept() {
    return listener_->accept().then([this](kj::Own<kj::AsyncIoStream> s) {
      streams_.push_back(kj::mv(s));  // held open, never read
      return Accept();
    });
  }
  kj::Own<kj::ConnectionReceiver> listener_;
  std::vector<kj::Own<kj::AsyncIoStream>> streams_;
  kj::Promise<void> accepting_;
};

// Runs the loop until `done` holds, for `turns` timer ticks of 10 ms at most.
template <typename F>
bool Until(kj::AsyncIoContext& io, F&& done, int turns = 500) {
  for (int i = 0; i < turns && !done(); ++i) {
    io.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).wait(io.waitScope);
  }
  return done();
}

TEST(PeerPool, ACallThatTimesOutRetiresItsConnectionAndTheNextCallDialsAnew) {
  auto io = kj::setupAsyncIo();
  SilentPeer peer(io);
  PeerPool pool(io, "", 1 << 20);
  auto first = pool.Get(7, peer.address());
  ASSERT_TRUE(Until(io, [&] { return peer.accepted() == 1; }));
  // The same connection while nothing went wrong.
  auto again = pool.Get(7, peer.address());
  EXPECT_EQ(pool.replaced(), 0u);
  auto req = again.readRequest();
  req.setKey(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("k"), 1));
  kj::Maybe<kj::Exception> failure =
      kj::runCatchingExceptions([&] { pool.Timed(7, 100 * kj::MILLISECONDS, req.send()).wait(io.waitScope); });
  KJ_IF_MAYBE (e, failure) {
    EXPECT_EQ(e->getType(), kj::Exception::Type::OVERLOADED) << e->getDescription().cStr();
  } else {
    FAIL() << "a call the peer never answers completed";
  }
  EXPECT_EQ(pool.replaced(), 1u);
  // The next call goes over a new connection; the silent one is retired, not reused.
  auto fresh = pool.Get(7, peer.address());
  EXPECT_TRUE(Until(io, [&] { return peer.accepted() == 2; }));
  EXPECT_EQ(pool.replaced(), 1u);
}

TEST(PeerPool, AChangeInThePeersLivenessReplacesTheConnectionOncePerChange) {
  auto io = kj::setupAsyncIo();
  SilentPeer peer(io);
  PeerPool pool(io, "", 1 << 20);
  auto up = pool.Get(3, peer.address(), false);
  ASSERT_TRUE(Until(io, [&] { return peer.accepted() == 1; }));
  // Suspected: a new connection, once.
  auto suspected = pool.Get(3, peer.address(), true);
  EXPECT_EQ(pool.replaced(), 1u);
  EXPECT_TRUE(Until(io, [&] { return peer.accepted() == 2; }));
  auto still = pool.Get(3, peer.address(), true);
  EXPECT_EQ(pool.replaced(), 1u);
  // Up again (the partition healed): a new connection again.
  auto back = pool.Get(3, peer.address(), false);
  EXPECT_EQ(pool.replaced(), 2u);
  EXPECT_TRUE(Until(io, [&] { return peer.accepted() == 3; }));
  // Another peer's connections are its own.
  auto other = pool.Get(4, peer.address(), true);
  EXPECT_EQ(pool.replaced(), 2u);
}

}  // namespace
}  // namespace kv::rpc
