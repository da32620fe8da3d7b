// ClientService: the server side of the client API (rpc/client.capnp) over this node's
// LocalStore.
//
// Turns Statuses into wire Statuses and decodes client contexts as hostile input. Runs on the
// RPC thread. Reads run at once. Writes are grouped: those that arrive during one turn of the
// event loop, or while the previous batch is still being written, go to the storage worker
// thread as one LocalStore batch: one RocksDB write, one WAL append, one fsync when synced
// (group commit). Each reply goes out after its batch is durable in the configured sense.
#pragma once

#include <kj/async.h>

#include <vector>

#include "rpc/client.capnp.h"
#include "rpc/cluster_control.h"
#include "rpc/storage_worker.h"
#include "storage/local_store.h"

namespace kv::rpc {

// Fills a wire status from a Status.
void ToWire(const Status& status, wire::Status::Builder out);
// The Status a wire status carries.
Status FromWire(wire::Status::Reader in);

class ClientService final : public wire::KvClient::Server, private kj::TaskSet::ErrorHandler {
 public:
  // `store` and `cluster` must outlive the service.
  ClientService(storage::LocalStore* store, ClusterControl* cluster);
  ~ClientService();

  // From now on every request is refused with `unavailable: node is shutting down`.
  void BeginShutdown() { shutting_down_ = true; }
  // Resolves once every write received so far has been applied and its reply set.
  kj::Promise<void> Drain();

 protected:
  kj::Promise<void> get(GetContext context) override;
  kj::Promise<void> put(PutContext context) override;
  kj::Promise<void> delete_(DeleteContext context) override;
  kj::Promise<void> status(StatusContext context) override;
  kj::Promise<void> ring(RingContext context) override;
  kj::Promise<void> removeNode(RemoveNodeContext context) override;
  kj::Promise<void> stats(StatsContext context) override;

 private:
  struct PendingWrite;
  // Queues `write` for the end-of-turn batch; the promise resolves once its outcome is set.
  kj::Promise<void> Enqueue(PendingWrite& write);
  void taskFailed(kj::Exception&& exception) override;

  storage::LocalStore* const store_;
  ClusterControl* const cluster_;
  bool shutting_down_ = false;
  // Sends the pending writes to the worker unless a batch is already there.
  void FlushWrites();

  std::vector<kj::Own<PendingWrite>> pending_;  // writes waiting for the next batch
  bool flush_scheduled_ = false;
  bool batch_in_flight_ = false;
  kj::Own<kj::PromiseFulfiller<void>> drained_;  // set while Drain() waits
  StorageWorker worker_;  // before tasks_: destroyed after it, so no batch is cut short
  kj::TaskSet tasks_;
};

}  // namespace kv::rpc
