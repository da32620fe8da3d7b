// ClientService: the server side of the client API (rpc/client.capnp).
//
// Reads and writes go through the Coordinator, which runs them across the key's replicas;
// `get --local` reads this node's own store. Decodes client contexts as hostile input and turns
// Statuses into wire Statuses. Also hands out the internode interface (ReplicaService) that
// other nodes use. Runs on the RPC thread.
#pragma once

#include <kj/async.h>

#include "rpc/client.capnp.h"
#include "rpc/node_services.h"
#include "rpc/wire_status.h"

namespace kv::rpc {

class ClientService final : public wire::KvClient::Server {
 public:
  explicit ClientService(const NodeServices& node);
  ~ClientService();

  // From now on every request, client or replica, is refused with
  // `unavailable: node is shutting down`.
  void BeginShutdown() { shutting_down_ = true; }
  // Resolves once every local write received so far has been applied and its reply set.
  kj::Promise<void> Drain() { return batcher_->Drain(); }

 protected:
  kj::Promise<void> get(GetContext context) override;
  kj::Promise<void> put(PutContext context) override;
  kj::Promise<void> delete_(DeleteContext context) override;
  kj::Promise<void> status(StatusContext context) override;
  kj::Promise<void> ring(RingContext context) override;
  kj::Promise<void> removeNode(RemoveNodeContext context) override;
  kj::Promise<void> stats(StatsContext context) override;
  kj::Promise<void> replica(ReplicaContext context) override;
  kj::Promise<void> repair(RepairContext context) override;
  kj::Promise<void> decommission(DecommissionContext context) override;
  kj::Promise<void> cleanup(CleanupContext context) override;
  kj::Promise<void> keyring(KeyringContext context) override;

 private:
  // Why this node does not coordinate client requests now (ok: it does).
  Status Refusal() const;
  const NodeServices node_;
  storage::LocalStore* const store_;
  ClusterControl* const cluster_;
  WriteBatcher* const batcher_;
  Coordinator* const coordinator_;
  bool shutting_down_ = false;
  wire::KvReplica::Client replica_;
};

}  // namespace kv::rpc
