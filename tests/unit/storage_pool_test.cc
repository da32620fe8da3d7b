// StoragePool (rpc/storage_pool.h): jobs run on its own named threads, at its nice value, and
// their results come back to the event loop; a full queue refuses a job as overloaded.
#include "rpc/storage_pool.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace kv::rpc {
namespace {

struct ThreadFacts {
  std::string name;
  int nice = 0;
  std::thread::id id;
};

ThreadFacts Here() {
  ThreadFacts f;
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  f.name = name;
  errno = 0;
  f.nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  f.id = std::this_thread::get_id();
  return f;
}

TEST(StoragePool, JobsRunOnItsNamedThreadsAtItsNiceValue) {
  auto io = kj::setupAsyncIo();
  const int base = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  StoragePool bulk({1, 8, "kv-background", 10});
  StoragePool reads({1, 8, "kv-read", 0});
  auto run = [&](StoragePool& pool) {
    return pool.Run<Result<ThreadFacts>>([]() { return Result<ThreadFacts>(Here()); })
        .wait(io.waitScope)
        .value();
  };
  const ThreadFacts b = run(bulk), r = run(reads);
  EXPECT_EQ(b.name, "kv-background");
  EXPECT_EQ(b.nice, std::min(base + 10, 19));
  EXPECT_NE(b.id, std::this_thread::get_id());
  EXPECT_EQ(r.name, "kv-read");
  EXPECT_EQ(r.nice, base);
  // The event loop's own thread keeps its priority.
  EXPECT_EQ(Here().nice, base);
}

TEST(StoragePool, AFullQueueRefusesAJobAsOverloaded) {
  auto io = kj::setupAsyncIo();
  StoragePool pool({1, 1});
  std::mutex gate;
  gate.lock();  // holds the only thread in its first job
  auto first = pool.Run<Status>([&]() {
    std::lock_guard<std::mutex> wait(gate);
    return Status::Ok();
  });
  // The first job may still sit in the queue or already run: fill up to the bound either way.
  std::vector<kj::Promise<Status>> more;
  Status refused;
  for (int i = 0; i < 3 && refused.ok(); ++i) {
    auto p = pool.Run<Status>([]() { return Status::Ok(); });
    if (pool.refused() > 0) refused = p.wait(io.waitScope);
    else more.push_back(kj::mv(p));
  }
  EXPECT_EQ(refused.code(), Status::Code::kOverloaded) << refused.ToString();
  gate.unlock();
  EXPECT_TRUE(first.wait(io.waitScope).ok());
  for (auto& p : more) EXPECT_TRUE(p.wait(io.waitScope).ok());
}

}  // namespace
}  // namespace kv::rpc
