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

#include "rpc/buffered_stream.h"

namespace kv::rpc {

class RpcSession {
 public:
  // Server side: serves `bootstrap` to the peer.
  RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
             capnp::ReaderOptions options);
  // Client side: call Bootstrap() for the peer's capability.
  RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::ReaderOptions options);

  capnp::Capability::Client Bootstrap();
  // Resolves when the peer disconnects or the session fails.
  kj::Promise<void> OnDisconnect() { return network_.onDisconnect(); }

 private:
  kj::Own<kj::AsyncIoStream> stream_;
  BufferedMessageStream messages_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

}  // namespace kv::rpc
