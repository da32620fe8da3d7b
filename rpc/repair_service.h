// The network side of anti-entropy (repair/exchange.h over rpc/replica.capnp).
//
// RepairSessionServer answers one exchange for one range (the Responder). RunExchange drives an
// Initiator against a peer's session, one bounded request at a time. Lives on the RPC thread;
// the state machines' steps, which read and write the store, run on the StoragePool (one step
// of a session at a time), and only the messages are built and read on the RPC thread.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include "repair/exchange.h"
#include "repair/store_reader.h"
#include "rpc/replica.capnp.h"
#include "rpc/pacer.h"
#include "rpc/storage_pool.h"

#include <memory>
#include <mutex>

namespace kv::rpc {

// A session's responder, shared with the storage jobs that run its steps (a job may outlive the
// session when the peer hangs up); `mu` keeps the steps of one session one at a time.
struct SharedResponder {
  SharedResponder(repair::RangeReader* reader, int tree_bits, ring::TokenRange range)
      : responder(reader, tree_bits, range) {}
  std::mutex mu;
  repair::Responder responder;
};

class RepairSessionServer final : public wire::RepairSession::Server {
 public:
  // `reader` and `pool` must outlive the session and its jobs (null pool: steps run inline, on
  // the calling thread).
  RepairSessionServer(StoragePool* pool, repair::RangeReader* reader, int tree_bits,
                      ring::TokenRange range)
      : pool_(pool), responder_(std::make_shared<SharedResponder>(reader, tree_bits, range)) {}

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
  StoragePool* const pool_;
  std::shared_ptr<SharedResponder> responder_;
};

// Asks `session` to purge these (key, digest) pairs; resolves with how many it purged.
kj::Promise<Result<std::uint64_t>> PurgeRemote(wire::RepairSession::Client session,
                                               const std::vector<repair::KeyDigest>& keys,
                                               kj::Timer& timer, kj::Duration timeout);

// Runs `initiator` against `session` until it is done, its steps on `pool` (null: inline);
// every call is bounded by `timeout`. Resolves with the initiator's final status (or the
// transport failure, or Overloaded when the pool refused a step). `bytes_on_wire` accumulates
// the request and reply message sizes. With `pacer` (it must outlive the exchange), each step
// waits until the bytes so far fit its rate.
kj::Promise<Status> RunExchange(StoragePool* pool, std::shared_ptr<repair::Initiator> initiator,
                                wire::RepairSession::Client session, kj::Timer& timer,
                                kj::Duration timeout, std::uint64_t* bytes_on_wire,
                                Pacer* pacer = nullptr);

}  // namespace kv::rpc
