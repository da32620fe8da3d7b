#include "rpc/storage_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace kv::rpc {

StoragePool::StoragePool(Options options) : options_(std::move(options)) {
  const std::size_t n = options_.threads == 0 ? 1 : options_.threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads_.emplace_back([this]() {
      (void)pthread_setname_np(pthread_self(), options_.name.substr(0, 15).c_str());
      // On Linux a nice value belongs to a thread (its tid), not to the whole process; a new
      // thread starts with its creator's, which `nice` is added to (as nice(1) does).
      if (options_.nice != 0) {
        const auto tid = static_cast<id_t>(syscall(SYS_gettid));
        errno = 0;
        const int now = getpriority(PRIO_PROCESS, tid);
        if (errno != 0 ||
            setpriority(PRIO_PROCESS, tid, std::clamp(now + options_.nice, -20, 19)) != 0) {
          std::perror("kvd: cannot change a storage thread's priority");
        }
      }
      Loop();
    });
  }
}

StoragePool::~StoragePool() { Stop(); }

void StoragePool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool StoragePool::Enqueue(std::unique_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return false;
    queued_.fetch_add(1, std::memory_order_relaxed);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void StoragePool::Loop() {
  while (true) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this]() { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stop_ and nothing left to do
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    queued_.fetch_sub(1, std::memory_order_relaxed);
    job->Run();
    job.reset();  // what the job captured goes now, on this thread
    ran_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace kv::rpc
