// StorageWorker: a thread that applies write batches to the LocalStore off the RPC thread.
//
// A batch can take long (a synced write waits for fsync); on the RPC thread it would stall every
// connection. The worker takes one batch at a time, in submission order, and wakes the
// submitting KJ event loop when the batch is done.
//
// Apply() and the destructor are called on the RPC thread (the one whose event loop the
// promises belong to). The worker thread touches nothing but the ops it was given and the store.
#pragma once

#include <kj/async.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/local_store.h"

namespace kv::rpc {

class StorageWorker {
 public:
  // `store` must outlive the worker.
  explicit StorageWorker(storage::LocalStore* store);
  // Finishes every submitted batch, then joins the thread.
  ~StorageWorker();

  // Applies `ops` (LocalStore::ApplyBatch) on the worker thread. The ops must stay alive, and
  // untouched by the caller, until the promise resolves, even if the promise is dropped: the
  // caller keeps them until the destructor has run or the promise resolved.
  kj::Promise<void> Apply(std::vector<storage::WriteOp*> ops);

 private:
  struct Job {
    std::vector<storage::WriteOp*> ops;
    kj::Own<kj::CrossThreadPromiseFulfiller<void>> done;
  };
  void Loop();

  storage::LocalStore* const store_;
  std::mutex mu_;
  std::mutex handoff_mu_;  // see Apply()
  std::condition_variable cv_;
  std::deque<Job> queue_;  // guarded by mu_
  bool stop_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace kv::rpc
