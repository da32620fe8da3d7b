// BufferedMessageStream over a real socket pair: framing across arbitrary read boundaries,
// many messages per read, write coalescing, and hostile headers.
#include "rpc/buffered_stream.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <random>

namespace kv::rpc {
namespace {

kj::Array<capnp::word> Message(std::uint64_t n, std::size_t blob) {
  capnp::MallocMessageBuilder b(8);  // tiny first segment: forces several segments
  auto root = b.initRoot<capnp::List<capnp::Data>>(3);
  root.set(0, kj::heapArray<capnp::byte>(blob).asPtr());
  for (auto& byte : root[0]) byte = static_cast<capnp::byte>(n);
  root.set(1, kj::arrayPtr(reinterpret_cast<const capnp::byte*>(&n), sizeof n));
  return capnp::messageToFlatArray(b);
}

std::uint64_t Id(capnp::MessageReader& r) {
  auto d = r.getRoot<capnp::List<capnp::Data>>()[1];
  std::uint64_t n = 0;
  memcpy(&n, d.begin(), sizeof n);
  return n;
}

TEST(BufferedMessageStream, ReadsMessagesSplitAnywhere) {
  auto io = kj::setupAsyncIo();
  auto pipe = io.provider->newTwoWayPipe();
  BufferedMessageStream in(*pipe.ends[1]);
  // All messages back to back, then written in random-sized pieces.
  std::string bytes;
  constexpr int kMessages = 200;
  for (int i = 0; i < kMessages; ++i) {
    auto m = Message(i, i % 7 == 0 ? 100000 : i * 3);
    bytes.append(reinterpret_cast<const char*>(m.asBytes().begin()), m.asBytes().size());
  }
  std::mt19937 rng(5);
  kj::Promise<void> writer = kj::READY_NOW;
  for (std::size_t off = 0; off < bytes.size();) {
    const std::size_t n = std::min<std::size_t>(bytes.size() - off, 1 + rng() % 3000);
    writer = writer.then([&, off, n]() { return pipe.ends[0]->write(bytes.data() + off, n); });
    off += n;
  }
  writer = writer.then([&]() { pipe.ends[0]->shutdownWrite(); }).eagerlyEvaluate(nullptr);
  for (int i = 0; i < kMessages; ++i) {
    auto r = in.tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr).wait(io.waitScope);
    KJ_IF_MAYBE (m, r) {
      ASSERT_EQ(Id(*m->reader), static_cast<std::uint64_t>(i));
    } else {
      FAIL() << "early EOF at " << i;
    }
  }
  auto end = in.tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr).wait(io.waitScope);
  EXPECT_TRUE(end == nullptr);
}

TEST(BufferedMessageStream, WritesArriveInOrderAndRoundTrip) {
  auto io = kj::setupAsyncIo();
  auto pipe = io.provider->newTwoWayPipe();
  BufferedMessageStream out(*pipe.ends[0]);
  BufferedMessageStream in(*pipe.ends[1]);
  std::vector<kj::Array<capnp::word>> msgs;
  for (int i = 0; i < 300; ++i) msgs.push_back(Message(i, i % 50 == 0 ? 300000 : 10));
  kj::Vector<kj::Promise<void>> writes;
  for (auto& m : msgs) {
    capnp::FlatArrayMessageReader r(m);
    auto segments = r.getSegment(0);
    (void)segments;
    // Re-serialize through the stream from a builder copy.
    capnp::MallocMessageBuilder b;
    b.setRoot(r.getRoot<capnp::AnyPointer>().getAs<capnp::List<capnp::Data>>());
    writes.add(out.writeMessage(nullptr, b.getSegmentsForOutput()));
  }
  auto all_written = kj::joinPromises(writes.releaseAsArray()).eagerlyEvaluate(nullptr);
  for (int i = 0; i < 300; ++i) {
    auto r = in.tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr).wait(io.waitScope);
    KJ_IF_MAYBE (m, r) {
      ASSERT_EQ(Id(*m->reader), static_cast<std::uint64_t>(i));
    } else {
      FAIL() << "early EOF at " << i;
    }
  }
  all_written.wait(io.waitScope);
  out.end().wait(io.waitScope);
  EXPECT_TRUE(in.tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr).wait(io.waitScope) ==
              nullptr);
}

// Feeds `bytes` then EOF, and expects the read to fail with an exception.
void ExpectRejected(const std::string& bytes, capnp::ReaderOptions options = {}) {
  auto io = kj::setupAsyncIo();
  auto pipe = io.provider->newTwoWayPipe();
  BufferedMessageStream in(*pipe.ends[1]);
  auto w = pipe.ends[0]
               ->write(bytes.data(), bytes.size())
               .then([&]() { pipe.ends[0]->shutdownWrite(); })
               .eagerlyEvaluate(nullptr);
  auto result = kj::runCatchingExceptions(
      [&]() { in.tryReadMessage(nullptr, options, nullptr).wait(io.waitScope); });
  EXPECT_TRUE(result != nullptr) << "accepted " << bytes.size() << " bytes";
}

TEST(BufferedMessageStream, RejectsHostileHeadersWithoutAllocating) {
  // 2^32 segments claimed.
  ExpectRejected(std::string("\xff\xff\xff\xff\0\0\0\0", 8));
  // One segment of 2^32-1 words: over the traversal limit, refused before reading the body.
  ExpectRejected(std::string("\0\0\0\0\xff\xff\xff\xff", 8));
  // A message over a small limit.
  auto m = Message(1, 10000);
  capnp::ReaderOptions small;
  small.traversalLimitInWords = 100;
  ExpectRejected(
      std::string(reinterpret_cast<const char*>(m.asBytes().begin()), m.asBytes().size()), small);
  // A message cut short by EOF.
  auto full = std::string(reinterpret_cast<const char*>(m.asBytes().begin()), m.asBytes().size());
  ExpectRejected(full.substr(0, full.size() / 2));
  ExpectRejected(full.substr(0, 3));
}

// A message announced as 8 MiB of which only 100 KiB arrive holds a buffer about that size,
// not 8 MiB; the message still reads whole once the rest arrives.
TEST(BufferedMessageStream, TheBufferFollowsWhatArrivesNotWhatIsAnnounced) {
  auto io = kj::setupAsyncIo();
  auto pipe = io.provider->newTwoWayPipe();
  BufferedMessageStream in(*pipe.ends[1]);
  auto m = Message(9, 8 << 20);
  const auto bytes = m.asBytes();
  capnp::ReaderOptions big;
  big.traversalLimitInWords = 2 << 20;
  auto reading = in.tryReadMessage(nullptr, big, nullptr);
  pipe.ends[0]->write(bytes.begin(), 100 * 1024).wait(io.waitScope);
  // Let the reader take what was sent.
  for (int i = 0; i < 20; ++i) io.provider->getTimer().afterDelay(5 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_LE(in.buffer_bytes(), 256u * 1024) << "grew to the announced size";
  auto rest = pipe.ends[0]->write(bytes.begin() + 100 * 1024, bytes.size() - 100 * 1024);
  auto r = reading.wait(io.waitScope);
  rest.wait(io.waitScope);
  KJ_IF_MAYBE (msg, r) {
    EXPECT_EQ(Id(*msg->reader), 9u);
  } else {
    FAIL() << "no message";
  }
}

// A message that starts and never finishes ends the read at the deadline; an idle connection
// (nothing sent, or only whole messages) has none.
TEST(BufferedMessageStream, AnIncompleteMessageIsCutOffAtItsDeadlineAndIdleIsNot) {
  auto io = kj::setupAsyncIo();
  auto& timer = io.provider->getTimer();
  auto pipe = io.provider->newTwoWayPipe();
  BufferedMessageStream in(*pipe.ends[1], timer, 200 * kj::MILLISECONDS);
  // Idle: still waiting after twice the deadline.
  bool idle_waited = in.tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr)
                         .then([](auto&&) { return false; })
                         .exclusiveJoin(timer.afterDelay(400 * kj::MILLISECONDS).then([] { return true; }))
                         .wait(io.waitScope);
  EXPECT_TRUE(idle_waited);
  // Half a message: the read fails at the deadline.
  auto m = Message(3, 5000);
  pipe.ends[0]->write(m.asBytes().begin(), m.asBytes().size() / 2).wait(io.waitScope);
  const kj::TimePoint start = timer.now();
  auto result = kj::runCatchingExceptions(
      [&]() { in.tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr).wait(io.waitScope); });
  KJ_IF_MAYBE (e, result) {
    EXPECT_NE(std::string(e->getDescription().cStr()).find("incomplete message"), std::string::npos)
        << e->getDescription().cStr();
  } else {
    FAIL() << "half a message was accepted";
  }
  EXPECT_GE(timer.now() - start, 150 * kj::MILLISECONDS);
}

}  // namespace
}  // namespace kv::rpc
