// ReplicaService: the server side of the internode interface (rpc/replica.capnp) over this
// node's LocalStore: replica reads, record merges and hints (through the WriteBatcher's group
// commit), client writes forwarded here by nodes that do not own the key, and anti-entropy
// sessions.
//
// Records from peers are decoded as hostile input. Runs on the RPC thread.
#pragma once

#include "rpc/node_services.h"
#include "rpc/replica.capnp.h"

namespace kv::rpc {

class ReplicaService final : public wire::KvReplica::Server {
 public:
  // `shutting_down` is read at each call and must outlive the service.
  ReplicaService(const NodeServices& node, const bool* shutting_down);

 protected:
  kj::Promise<void> read(ReadContext context) override;
  kj::Promise<void> write(WriteContext context) override;
  kj::Promise<void> coordinate(CoordinateContext context) override;
  kj::Promise<void> repair(RepairContext context) override;
  kj::Promise<void> repairInfo(RepairInfoContext context) override;
  kj::Promise<void> movement(MovementContext context) override;
  kj::Promise<void> pull(PullContext context) override;
  kj::Promise<void> keyring(KeyringContext context) override;

 private:
  const NodeServices node_;
  storage::LocalStore* const store_;
  WriteBatcher* const batcher_;
  Coordinator* const coordinator_;
  const bool* const shutting_down_;
};

}  // namespace kv::rpc
