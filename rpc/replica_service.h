// ReplicaService: the server side of the internode interface (rpc/replica.capnp) over this
// node's LocalStore: replica reads, record merges and hints (through the WriteBatcher's group
// commit), and client writes forwarded here by nodes that do not own the key.
//
// Records from peers are decoded as hostile input. Runs on the RPC thread.
#pragma once

#include "rpc/coordinator.h"
#include "rpc/replica.capnp.h"
#include "rpc/write_batcher.h"
#include "storage/local_store.h"

namespace kv::rpc {

class ReplicaService final : public wire::KvReplica::Server {
 public:
  // Every pointer must outlive the service; `shutting_down` is read at each call.
  ReplicaService(storage::LocalStore* store, WriteBatcher* batcher, Coordinator* coordinator,
                 const bool* shutting_down);

 protected:
  kj::Promise<void> read(ReadContext context) override;
  kj::Promise<void> write(WriteContext context) override;
  kj::Promise<void> coordinate(CoordinateContext context) override;

 private:
  storage::LocalStore* const store_;
  WriteBatcher* const batcher_;
  Coordinator* const coordinator_;
  const bool* const shutting_down_;
};

}  // namespace kv::rpc
