// The network side of anti-entropy (repair/exchange.h over rpc/replica.capnp).
//
// RepairSessionServer answers one exchange for one range (the Responder). RunExchange drives an
// Initiator against a peer's session, one bounded request at a time. Lives on the RPC thread.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include "repair/exchange.h"
#include "repair/store_reader.h"
#include "rpc/replica.capnp.h"

namespace kv::rpc {

class RepairSessionServer final : public wire::RepairSession::Server {
 public:
  // `reader` must outlive the session.
  RepairSessionServer(repair::RangeReader* reader, int tree_bits, ring::TokenRange range)
      : responder_(reader, tree_bits, range) {}

 protected:
  kj::Promise<void> root(RootContext context) override;
  kj::Promise<void> children(ChildrenContext context) override;
  kj::Promise<void> entries(EntriesContext context) override;
  kj::Promise<void> split(SplitContext context) override;
  kj::Promise<void> sketch(SketchContext context) override;
  kj::Promise<void> fetchItems(FetchItemsContext context) override;
  kj::Promise<void> offer(OfferContext context) override;
  kj::Promise<void> fetch(FetchContext context) override;
  kj::Promise<void> push(PushContext context) override;
  kj::Promise<void> purge(PurgeContext context) override;
  kj::Promise<void> copy(CopyContext context) override;

 private:
  repair::Responder responder_;
};

// Asks `session` to purge these (key, digest) pairs; resolves with how many it purged.
kj::Promise<Result<std::uint64_t>> PurgeRemote(wire::RepairSession::Client session,
                                               const std::vector<repair::KeyDigest>& keys,
                                               kj::Timer& timer, kj::Duration timeout);

// Runs `initiator` against `session` until it is done; every call is bounded by `timeout`.
// Resolves with the initiator's final status (or the transport failure). `bytes_on_wire`
// accumulates the request and reply message sizes.
kj::Promise<Status> RunExchange(repair::Initiator& initiator, wire::RepairSession::Client session,
                                kj::Timer& timer, kj::Duration timeout,
                                std::uint64_t* bytes_on_wire);

}  // namespace kv::rpc
