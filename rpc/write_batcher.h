// WriteBatcher: group commit of local writes, for everything on the RPC thread that writes to
// this node's LocalStore (client writes it coordinates, replica merges, hints).
//
// Ops that arrive during one turn of the event loop, or while the previous batch is still being
// written, go to the storage worker thread as one LocalStore batch: one RocksDB write, one WAL
// append, one fsync when synced. Each op's promise resolves once its batch is durable in the
// configured sense; the op then carries its outcome (WriteOp::status, WriteOp::record).
//
// Lives on the RPC thread; every method is called there.
#pragma once

#include <kj/async.h>

#include <vector>

#include "rpc/storage_worker.h"
#include "storage/local_store.h"

namespace kv::rpc {

// A write op shared between its submitter and the batch that applies it.
struct PendingWrite : public kj::Refcounted {
  storage::WriteOp op;
  kj::Own<kj::PromiseFulfiller<void>> done;
};

class WriteBatcher final : private kj::TaskSet::ErrorHandler {
 public:
  // `store` must outlive the batcher.
  explicit WriteBatcher(storage::LocalStore* store);
  ~WriteBatcher();

  // Queues `write` for the next batch; resolves once its outcome is set. The batcher keeps its
  // own reference, so the caller may drop the promise.
  kj::Promise<void> Submit(PendingWrite& write);

  // Resolves once every op submitted so far has been applied.
  kj::Promise<void> Drain();

 private:
  void Flush();
  void taskFailed(kj::Exception&& exception) override;

  std::vector<kj::Own<PendingWrite>> pending_;  // waiting for the next batch
  bool flush_scheduled_ = false;
  bool batch_in_flight_ = false;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> drained_;  // Drain() callers waiting
  StorageWorker worker_;  // before tasks_: destroyed after it, so no batch is cut short
  kj::TaskSet tasks_;
};

}  // namespace kv::rpc
