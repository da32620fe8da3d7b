// StoragePool: threads that run this node's storage reads, scans and repair steps, so that no
// RocksDB call waits on the RPC thread's event loop.
//
// The RPC thread hands a job to Run() and gets a promise; a pool thread runs the job and
// fulfils the promise across threads (the result is moved to the RPC thread). Writes do not
// come here: they go through WriteBatcher's single StorageWorker, which keeps their order and
// groups them into one RocksDB write.
//
// Bounded: at most `max_queued` jobs wait. Past that, Run() does not queue the job; it resolves
// at once with Status::Overloaded, and refused() counts it. A job's own promise may be dropped
// (the request was cancelled): the job still runs, so whatever it touches must be owned by the
// job (shared_ptr captures) or outlive the pool, not borrowed from the caller. A job is
// destroyed on the pool thread, so it must capture no KJ or Cap'n Proto object.
//
// Run(), Stop() and the accessors are called on the RPC thread; Stop() (and the destructor)
// runs every job already queued, then joins the threads.
#pragma once

#include <kj/async.h>
#include <kj/debug.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "storage/status.h"

namespace kv::rpc {

class StoragePool {
 public:
  struct Options {
    std::size_t threads = 2;
    std::size_t max_queued = 1024;
    // Thread name (as `top -H` and perf show it; at most 15 bytes) and how much to add to the
    // creating thread's nice value (as nice(1); clamped to 19). A pool of
    // bulk work (repair, movement, rebuilds) runs niced so that, on a busy machine, the
    // scheduler serves the RPC thread, the readers and the writer first; its jobs must then
    // hold shared locks only briefly (LocalStore's stripes: see StoreReader::MergeAll).
    std::string name = "kv-storage";
    int nice = 0;
  };
  explicit StoragePool(Options options);
  ~StoragePool();
  StoragePool(const StoragePool&) = delete;
  StoragePool& operator=(const StoragePool&) = delete;

  // Runs `fn` (returning T, which must be constructible from a Status: Status or Result<X>) on
  // a pool thread. An exception from `fn` rejects the promise.
  template <typename T, typename F>
  kj::Promise<T> Run(F fn) {
    if (queued_.load(std::memory_order_relaxed) >= options_.max_queued) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return T(Status::Overloaded("storage queue full (" + std::to_string(options_.max_queued) +
                                  " jobs waiting)"));
    }
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    if (!Enqueue(std::make_unique<JobOf<T, F>>(std::move(fn), kj::mv(paf.fulfiller), &handoff_mu_))) {
      return T(Status::Unavailable("node is shutting down"));
    }
    // The job's writes happen before this thread reads them: KJ's cross-thread fulfilment
    // orders them, but inside Debian's uninstrumented libkj, where ThreadSanitizer cannot see
    // it; the pool thread unlocks handoff_mu_ before fulfilling and this thread locks it after,
    // which TSan does see (an uncontended lock per job).
    return paf.promise.then([this](T&& value) {
      std::lock_guard<std::mutex> seen(handoff_mu_);
      return kj::mv(value);
    });
  }

  // Runs every job already queued, then joins the threads; later Run() calls resolve with
  // Unavailable at once. Idempotent; the destructor calls it.
  void Stop();

  std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  std::uint64_t ran() const { return ran_.load(std::memory_order_relaxed); }
  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  struct Job {
    virtual ~Job() noexcept(false) = default;  // kj::Own members may throw
    virtual void Run() = 0;
  };
  template <typename T, typename F>
  struct JobOf final : Job {
    JobOf(F f, kj::Own<kj::CrossThreadPromiseFulfiller<T>> d, std::mutex* h)
        : fn(std::move(f)), done(kj::mv(d)), handoff(h) {}
    void Run() override {
      try {
        T result = fn();
        { std::lock_guard<std::mutex> release(*handoff); }
        done->fulfill(kj::mv(result));
      } catch (const std::exception& e) {
        done->reject(KJ_EXCEPTION(FAILED, "storage job failed", e.what()));
      }
    }
    F fn;
    kj::Own<kj::CrossThreadPromiseFulfiller<T>> done;
    std::mutex* handoff;
  };

  bool Enqueue(std::unique_ptr<Job> job);  // false once stopped
  void Loop();

  const Options options_;
  std::mutex mu_;
  std::mutex handoff_mu_;  // see Run()
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> jobs_;  // guarded by mu_
  bool stop_ = false;                      // guarded by mu_
  std::atomic<std::size_t> queued_{0};     // queued and not yet started
  std::atomic<std::uint64_t> refused_{0}, ran_{0};
  std::vector<std::thread> threads_;
};

// pool->Run<T>(fn), or fn() right here when `pool` is null (unit tests of the logic above it).
template <typename T, typename F>
kj::Promise<T> RunOn(StoragePool* pool, F fn) {
  if (pool == nullptr) return T(fn());
  return pool->Run<T>(std::move(fn));
}

}  // namespace kv::rpc
