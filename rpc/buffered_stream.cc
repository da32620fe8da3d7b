#include "rpc/buffered_stream.h"

#include <capnp/serialize.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

namespace kv::rpc {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// Past this many unsent bytes a writer waits for the socket instead of queueing more.
constexpr std::size_t kHighWater = 1024 * 1024;

std::uint32_t LoadLe32(const kj::byte* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

void StoreLe32(std::uint32_t v, kj::byte* p) {
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

}  // namespace

BufferedMessageStream::BufferedMessageStream(kj::AsyncIoStream& stream)
    : stream_(stream), in_(kj::heapArray<kj::byte>(kReadChunk)), tasks_(*this) {}

BufferedMessageStream::BufferedMessageStream(kj::AsyncIoStream& stream, kj::Timer& timer,
                                             kj::Duration message_timeout)
    : stream_(stream),
      timer_(&timer),
      message_timeout_(message_timeout),
      in_(kj::heapArray<kj::byte>(kReadChunk)),
      tasks_(*this) {}

kj::Maybe<kj::Own<capnp::MessageReader>> BufferedMessageStream::TakeMessage(
    const capnp::ReaderOptions& options, std::size_t* need) {
  const kj::byte* p = in_.begin() + in_begin_;
  const std::size_t have = in_end_ - in_begin_;
  if (have < 4) {
    *need = 8;
    return nullptr;
  }
  const std::uint64_t segments = std::uint64_t{LoadLe32(p)} + 1;
  KJ_REQUIRE(segments <= kMaxSegments, "message has too many segments", segments);
  // The table: a count and a size per segment, padded to a whole word.
  const std::size_t table_bytes = (4 + 4 * segments + 7) / 8 * 8;
  if (have < table_bytes) {
    *need = table_bytes;
    return nullptr;
  }
  std::uint64_t words = 0;
  for (std::uint64_t i = 0; i < segments; ++i) words += LoadLe32(p + 4 + 4 * i);
  KJ_REQUIRE(words <= options.traversalLimitInWords, "message is larger than this node accepts",
             words * sizeof(capnp::word));
  const std::size_t total = table_bytes + words * sizeof(capnp::word);
  if (have < total) {
    *need = total;
    return nullptr;
  }
  // Copy out: the reader must outlive later reads that reuse the buffer.
  auto copy = kj::heapArray<capnp::word>(total / sizeof(capnp::word));
  std::memcpy(copy.begin(), p, total);
  in_begin_ += total;
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  auto reader = kj::heap<capnp::FlatArrayMessageReader>(copy.asPtr(), options);
  return kj::Own<capnp::MessageReader>(reader.attach(kj::mv(copy)));
}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> BufferedMessageStream::tryReadMessage(
    kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
    kj::ArrayPtr<capnp::word> scratch_space) {
  return ReadLoop(options).catch_(
      [this](kj::Exception&& e) -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
        read_failed_ = true;
        return kj::mv(e);
      });
}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> BufferedMessageStream::ReadLoop(
    capnp::ReaderOptions options) {
  std::size_t need = 0;
  KJ_IF_MAYBE (reader, TakeMessage(options, &need)) {
    partial_since_ = nullptr;  // the next message's deadline starts when it does
    return kj::Maybe<capnp::MessageReaderAndFds>(
        capnp::MessageReaderAndFds{kj::mv(*reader), nullptr});
  }
  // Make room for at least `need` bytes from in_begin_, plus a chunk to read ahead.
  const std::size_t have = in_end_ - in_begin_;
  if (in_begin_ > 0 && in_begin_ + need > in_.size()) {
    std::memmove(in_.begin(), in_.begin() + in_begin_, have);
    in_begin_ = 0;
    in_end_ = have;
  }
  if (have == in_.size() && need > in_.size()) {
    // Full of what arrived: grow, at most doubling and never past what the message needs.
    auto bigger = kj::heapArray<kj::byte>(std::min(need, 2 * in_.size()));
    std::memcpy(bigger.begin(), in_.begin() + in_begin_, have);
    in_ = kj::mv(bigger);
    in_begin_ = 0;
    in_end_ = have;
  } else if (have == 0 && in_.size() > kReadChunk) {
    in_ = kj::heapArray<kj::byte>(kReadChunk);  // give back a buffer grown for a big message
    in_begin_ = in_end_ = 0;
  }
  kj::Promise<std::size_t> read = stream_.tryRead(in_.begin() + in_end_, 1, in_.size() - in_end_);
  if (have == 0) {
    partial_since_ = nullptr;  // between messages: idle is allowed
  } else if (timer_ != nullptr) {
    if (partial_since_ == nullptr) partial_since_ = timer_->now();
    KJ_IF_MAYBE (since, partial_since_) {
      read = timer_->atTime(*since + message_timeout_)
                 .then([this]() -> kj::Promise<std::size_t> {
                   return KJ_EXCEPTION(DISCONNECTED, "incomplete message: the peer sent part of "
                                                     "a message and not the rest in time",
                                       message_timeout_ / kj::SECONDS);
                 })
                 .exclusiveJoin(kj::mv(read));
    }
  }
  return read.then([this, options](std::size_t n) -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
        if (n == 0) {
          KJ_REQUIRE(in_end_ == in_begin_, "connection closed in the middle of a message");
          return kj::Maybe<capnp::MessageReaderAndFds>(nullptr);
        }
        in_end_ += n;
        return ReadLoop(options);
      });
}

void BufferedMessageStream::Append(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
  KJ_REQUIRE(segments.size() > 0 && segments.size() <= kMaxSegments);
  const std::size_t table_bytes = (4 + 4 * segments.size() + 7) / 8 * 8;
  const std::size_t start = out_.size();
  out_.resize(start + table_bytes);
  kj::byte* table = out_.begin() + start;
  std::memset(table, 0, table_bytes);
  StoreLe32(static_cast<std::uint32_t>(segments.size() - 1), table);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    StoreLe32(static_cast<std::uint32_t>(segments[i].size()), table + 4 + 4 * i);
  }
  for (const auto& seg : segments) out_.addAll(seg.asBytes());
}

kj::Promise<void> BufferedMessageStream::writeMessage(
    kj::ArrayPtr<const int> fds, kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
  KJ_REQUIRE(fds.size() == 0, "this stream cannot carry file descriptors");
  KJ_IF_MAYBE (e, write_error_) {
    return kj::cp(*e);
  }
  Append(segments);
  if (!flush_scheduled_ && writing_.size() == 0) {
    flush_scheduled_ = true;
    if (drained_ == nullptr) {
      auto paf = kj::newPromiseAndFulfiller<void>();
      drained_ = paf.promise.fork();
      drained_fulfiller_ = kj::mv(paf.fulfiller);
    }
    tasks_.add(kj::evalLast([this]() { return Flush(); }));
  }
  return Backpressure();
}

kj::Promise<void> BufferedMessageStream::writeMessages(
    kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) {
  kj::Promise<void> last = kj::READY_NOW;
  for (auto& m : messages) last = writeMessage(nullptr, m);
  return last;
}

kj::Promise<void> BufferedMessageStream::Backpressure() {
  if (out_.size() + writing_.size() < kHighWater) return kj::READY_NOW;
  KJ_IF_MAYBE (d, drained_) {
    return d->addBranch();
  }
  return kj::READY_NOW;
}

kj::Promise<void> BufferedMessageStream::Flush() {
  flush_scheduled_ = false;
  if (out_.size() == 0) {
    drained_ = nullptr;
    if (drained_fulfiller_) drained_fulfiller_->fulfill();
    return kj::READY_NOW;
  }
  std::swap(writing_, out_);
  return stream_.write(writing_.begin(), writing_.size()).then([this]() {
    writing_.clear();
    return Flush();  // whatever queued up meanwhile leaves in the next write
  });
}

void BufferedMessageStream::taskFailed(kj::Exception&& exception) {
  if (drained_fulfiller_) drained_fulfiller_->reject(kj::cp(exception));
  drained_ = nullptr;
  write_error_ = kj::mv(exception);
}

kj::Maybe<int> BufferedMessageStream::getSendBufferSize() {
  int size = 0;
  kj::uint len = sizeof(size);
  kj::Maybe<kj::Exception> e =
      kj::runCatchingExceptions([&]() { stream_.getsockopt(SOL_SOCKET, SO_SNDBUF, &size, &len); });
  if (e != nullptr) return nullptr;
  return size;
}

kj::Promise<void> BufferedMessageStream::end() {
  kj::Promise<void> drained = kj::READY_NOW;
  KJ_IF_MAYBE (d, drained_) {
    drained = d->addBranch();
  }
  return drained.then([this]() { stream_.shutdownWrite(); });
}

}  // namespace kv::rpc
