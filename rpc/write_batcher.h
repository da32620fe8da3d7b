// WriteBatcher: group commit of local writes, for everything on the RPC thread that writes to
// this node's LocalStore (client writes it coordinates, replica merges, hints).
//
// Ops that arrive during one turn of the event loop, or while the previous batch is still being
// written, go to the storage worker thread as one LocalStore batch: one RocksDB write, one WAL
// append, one fsync when synced. Each op's promise resolves once its batch is durable in the
// configured sense; the op then carries its outcome (WriteOp::status, WriteOp::record).
//
// Bounded: at most `max_queued` writes, or `max_queued_bytes` of keys and values, wait or are
// being written at once. A write past either bound is not queued: its promise resolves at
// once with Status::Overloaded ("overloaded: ..."), and refused() counts it. A client then
// sees its write fail as overloaded (kvtool exit 3), never queued without end.
//
// Lives on the RPC thread; every method is called there.
#pragma once

#include <kj/async.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rpc/storage_worker.h"
#include "storage/local_store.h"

namespace kv::rpc {

// A write op shared between its submitter and the batch that applies it.
struct PendingWrite : public kj::Refcounted {
  storage::WriteOp op;
  kj::Own<kj::PromiseFulfiller<void>> done;
  std::size_t queued_bytes = 0;  // what the batcher counted for it
};

class WriteBatcher final : private kj::TaskSet::ErrorHandler {
 public:
  struct Options {
    std::size_t max_queued = 4096;
    std::size_t max_queued_bytes = std::size_t{256} << 20;
  };
  // `store` must outlive the batcher.
  explicit WriteBatcher(storage::LocalStore* store) : WriteBatcher(store, Options()) {}
  WriteBatcher(storage::LocalStore* store, Options options);
  ~WriteBatcher();

  // Queues `write` for the next batch; resolves once its outcome is set. The batcher keeps its
  // own reference, so the caller may drop the promise.
  kj::Promise<void> Submit(PendingWrite& write);

  // Resolves once every op submitted so far has been applied.
  kj::Promise<void> Drain();

  std::uint64_t refused() const { return refused_; }
  std::size_t queued() const { return queued_; }
  std::size_t queued_bytes() const { return queued_bytes_; }

 private:
  void Flush();
  void taskFailed(kj::Exception&& exception) override;

  const Options options_;
  std::vector<kj::Own<PendingWrite>> pending_;  // waiting for the next batch
  std::size_t queued_ = 0, queued_bytes_ = 0;   // pending_ and the batch in flight
  std::uint64_t refused_ = 0;
  bool flush_scheduled_ = false;
  bool batch_in_flight_ = false;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> drained_;  // Drain() callers waiting
  StorageWorker worker_;  // before tasks_: destroyed after it, so no batch is cut short
  kj::TaskSet tasks_;
};

}  // namespace kv::rpc
