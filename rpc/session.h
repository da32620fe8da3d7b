// RpcSession: one Cap'n Proto two-party RPC session over one byte stream, with buffered,
// coalesced message I/O (buffered_stream.h). Used by the server for each accepted connection
// and by clients for each connection they open.
//
// Lives on one KJ event loop. Members are destroyed in reverse order: the RPC system, then the
// network, then the message stream, then the socket.
#pragma once

#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstddef>

#include "rpc/buffered_stream.h"

namespace kv::rpc {

// Bounds of a server-side session (ClientServer's, per connection).
struct SessionLimits {
  kj::Timer* timer = nullptr;  // null: no deadline on incomplete messages
  kj::Duration message_timeout = 30 * kj::SECONDS;
  std::size_t flow_limit_bytes = 0;  // calls in flight not yet answered; 0: unbounded
};

class RpcSession {
 public:
  using Limits = SessionLimits;
  // Server side: serves `bootstrap` to the peer.
  RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
             capnp::ReaderOptions options, const Limits& limits = Limits());
  // Client side: call Bootstrap() for the peer's capability.
  RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::ReaderOptions options);

  capnp::Capability::Client Bootstrap();
  // Resolves when the peer disconnects or the session fails.
  kj::Promise<void> OnDisconnect() { return network_.onDisconnect(); }
  // After OnDisconnect: whether reading from the peer failed (rather than ended cleanly).
  bool failed() const { return messages_->read_failed(); }

 private:
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<BufferedMessageStream> messages_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

}  // namespace kv::rpc
