// PeerPool: this node's connections to the other nodes' internode interface (replica.capnp).
//
// One connection per peer, opened on first use and kept; a connection that fails or closes is
// dropped, and the next call opens a new one. After a failed connect, calls fail at once for
// `retry_after` instead of each trying again. Every call a caller makes on a returned client
// should be bounded with Timeout().
//
// Lives on the RPC thread; every method is called there.
#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstdint>
#include <map>
#include <string>

#include "rpc/client.capnp.h"
#include "rpc/replica.capnp.h"
#include "rpc/session.h"

namespace kv::rpc {

class PeerPool final : private kj::TaskSet::ErrorHandler {
 public:
  // `io` must outlive the pool. Connections are opened from `source_host` (see rpc/connect.h;
  // empty: any address). `max_message_bytes` bounds one incoming reply.
  PeerPool(kj::AsyncIoContext& io, std::string source_host, std::size_t max_message_bytes,
           kj::Duration retry_after = 500 * kj::MILLISECONDS);
  ~PeerPool();

  // The replica interface of node `id` at `address` ("HOST:PORT"). A changed address opens a
  // new connection.
  wire::KvReplica::Client Get(std::uint64_t id, const std::string& address);

  // Drops every connection (calls in flight fail).
  void Clear();

  kj::Timer& timer() { return timer_; }

 private:
  struct Peer;
  void Drop(std::uint64_t id, std::uint64_t serial);
  void taskFailed(kj::Exception&& exception) override {}

  kj::AsyncIoContext& io_;
  std::string source_host_;
  kj::Timer& timer_;
  capnp::ReaderOptions reader_options_;
  kj::Duration retry_after_;
  std::uint64_t next_serial_ = 1;
  std::map<std::uint64_t, kj::Own<Peer>> peers_;
  kj::TaskSet tasks_;  // after peers_: destroyed first
};

}  // namespace kv::rpc
