#include "rpc/storage_worker.h"

#include <pthread.h>

namespace kv::rpc {

StorageWorker::StorageWorker(storage::LocalStore* store)
    : store_(store), thread_([this]() {
        (void)pthread_setname_np(pthread_self(), "kv-write");
        Loop();
      }) {}

StorageWorker::~StorageWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

kj::Promise<void> StorageWorker::Apply(std::vector<storage::WriteOp*> ops) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Job{std::move(ops), kj::mv(paf.fulfiller)});
  }
  cv_.notify_one();
  // As StoragePool::Run: the batch's writes to the ops are ordered before this thread reads
  // them in a way ThreadSanitizer sees, not only through uninstrumented libkj.
  return paf.promise.then([this]() { std::lock_guard<std::mutex> seen(handoff_mu_); });
}

void StorageWorker::Loop() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this]() { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left to do
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    store_->ApplyBatch(job.ops);
    { std::lock_guard<std::mutex> release(handoff_mu_); }
    job.done->fulfill();
  }
}

}  // namespace kv::rpc
