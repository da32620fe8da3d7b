// PeerPool: this node's connections to the other nodes' internode interface (replica.capnp).
//
// One connection per peer, opened on first use and kept; a connection that fails or closes is
// dropped, and the next call opens a new one. A connect that does not finish within
// `connect_timeout` fails; after a failed connect, calls fail at once for `retry_after` instead
// of each trying again.
//
// A connection is replaced, not reused, once it is suspect: when a call over it times out
// (Timed), and when the failure detector's verdict on the peer changes between "up" and
// "suspected or down" (the `suspected` argument of Get). After a partition, a connection that
// carried calls sits in TCP retransmission backoff for as long as the partition lasted (RTO
// doubling up to minutes), and a connect begun during it waits for its next SYN retry; a fresh
// connection works as soon as the network does. The replaced connection is retired, not closed:
// calls already on it may still complete, for `retire_grace` at most (then it is closed and they
// fail), and at most kMaxRetired are kept (the oldest closes first).
//
// Every call made on a returned client should be bounded with Timed().
//
// Lives on the RPC thread; every method is called there.
#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "rpc/client.capnp.h"
#include "rpc/replica.capnp.h"
#include "rpc/tls.h"
#include "rpc/session.h"

namespace kv::rpc {

class PeerPool final : private kj::TaskSet::ErrorHandler {
 public:
  // `io` must outlive the pool. Connections are opened from `source_host` (see rpc/connect.h;
  // empty: any address). `max_message_bytes` bounds one incoming reply.
  struct Options {
    kj::Duration retry_after = 500 * kj::MILLISECONDS;
    // Past the kernel's first SYN retry (1 s), so that a connect begun just before a partition
    // heals still gets through on that retry.
    kj::Duration connect_timeout = 1500 * kj::MILLISECONDS;
    kj::Duration retire_grace = 60 * kj::SECONDS;
    // Connections to peers go through its handshake when it dials TLS (tls.h); null: plain.
    Tls* tls = nullptr;
  };
  static constexpr std::size_t kMaxRetired = 64;

  PeerPool(kj::AsyncIoContext& io, std::string source_host, std::size_t max_message_bytes)
      : PeerPool(io, std::move(source_host), max_message_bytes, Options()) {}
  PeerPool(kj::AsyncIoContext& io, std::string source_host, std::size_t max_message_bytes,
           Options options);
  ~PeerPool();

  // The replica interface of node `id` at `address` ("HOST:PORT"). A changed address opens a
  // new connection; so does a change of `suspected` (the failure detector does not see the
  // peer UP) since the connection was opened.
  wire::KvReplica::Client Get(std::uint64_t id, const std::string& address,
                              bool suspected = false);

  // `call` (a request just sent on the client Get returned for `id`) bounded by `timeout`. A
  // timeout retires the connection the call went over; the exception is passed on unchanged
  // (kj's OVERLOADED "operation timed out").
  template <typename T>
  kj::Promise<T> Timed(std::uint64_t id, kj::Duration timeout, kj::Promise<T> call) {
    const std::uint64_t serial = SerialOf(id);
    return timer_.timeoutAfter(timeout, kj::mv(call))
        .catch_([this, id, serial](kj::Exception&& e) -> kj::Promise<T> {
          if (e.getType() == kj::Exception::Type::OVERLOADED) Retire(id, serial);
          return kj::mv(e);
        });
  }

  // Drops every connection (calls in flight fail).
  void Clear();

  kj::Timer& timer() { return timer_; }
  // Connections replaced because a call timed out or the peer's liveness changed.
  std::uint64_t replaced() const { return replaced_; }

 private:
  struct Peer;
  struct Retired {
    kj::Own<Peer> peer;
    kj::TimePoint until;
  };
  void Drop(std::uint64_t id, std::uint64_t serial);
  // Moves the connection `serial` of `id`, if it is still the current one, to retired_.
  void Retire(std::uint64_t id, std::uint64_t serial);
  std::uint64_t SerialOf(std::uint64_t id) const;
  void taskFailed(kj::Exception&& exception) override {}

  kj::AsyncIoContext& io_;
  std::string source_host_;
  kj::Timer& timer_;
  capnp::ReaderOptions reader_options_;
  const Options options_;
  std::uint64_t next_serial_ = 1;
  std::uint64_t replaced_ = 0;
  std::map<std::uint64_t, kj::Own<Peer>> peers_;
  std::deque<Retired> retired_;  // oldest first; at most kMaxRetired
  kj::TaskSet tasks_;  // after peers_: destroyed first
};

}  // namespace kv::rpc
