// Writers: client load for integration tests that must prove no acknowledged write is lost
// while the cluster changes. For tests only.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "rpc/client_conn.h"

namespace kv::test {

// Writers that put unique keys at quorum through the given nodes until stopped, and remember
// which were acknowledged. Bounded: at most `max_ops` requests each and kMaxTime in all. Every
// acknowledged key is read back by the tests, so the count is also what their checks cost; a
// test that waits for more writes late in a long run should raise it, and say when the
// writers ran out (ran_out()): a slow build (ASan, a loaded machine) restarting nodes one by
// one can use up a small count.
class Writers {
 public:
  static constexpr std::chrono::minutes kMaxTime{15};
  Writers(std::vector<std::string> hosts, int count, int max_ops = 1500)
      : hosts_(std::move(hosts)), max_ops_(max_ops) {
    for (int t = 0; t < count; ++t) {
      threads_.emplace_back([this, t]() { Run(t); });
    }
  }
  ~Writers() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // With `tls` (it must outlive the writers), connections from now on go through it.
  void SetTls(rpc::Tls* tls) {
    std::lock_guard<std::mutex> lock(mu_);
    tls_ = tls;
  }
  // Hosts the writers use from now on (a decommissioned node goes away).
  void SetHosts(std::vector<std::string> hosts) {
    std::lock_guard<std::mutex> lock(mu_);
    hosts_ = std::move(hosts);
  }
  std::vector<std::string> Acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  std::size_t acked_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_.size();
  }
  // Every request that failed (connections that failed included), as "host: why".
  std::vector<std::string> Failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  // How many writers stopped on their bound (count or time) rather than on Stop().
  int ran_out() const { return ran_out_.load(); }

 private:
  void Run(int t) {
    const auto deadline = std::chrono::steady_clock::now() + kMaxTime;
    int i = 0;
    for (; i < max_ops_ && !stop_ && std::chrono::steady_clock::now() < deadline; ++i) {
      std::string host;
      rpc::Tls* tls = nullptr;
      {
        std::lock_guard<std::mutex> lock(mu_);
        host = hosts_[static_cast<std::size_t>(i + t) % hosts_.size()];
        tls = tls_;
      }
      auto c = rpc::BlockingClient::Connect(host, std::chrono::milliseconds(3000), "", tls);
      if (!c.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        failures_.push_back(host + ": " + c.status().ToString());
        continue;
      }
      // A few puts per connection, so coordinators change often.
      for (int j = 0; j < 5 && !stop_; ++j, ++i) {
        const std::string key = "w" + std::to_string(t) + "-" + std::to_string(i);
        auto r = c.value()->Put(key, "v" + key, "", rpc::Consistency::kQuorum);
        std::lock_guard<std::mutex> lock(mu_);
        if (r.status.ok()) {
          acked_.push_back(key);
        } else {
          failures_.push_back(host + ": put " + key + ": " + r.status.ToString());
        }
      }
    }
    if (!stop_) ++ran_out_;
  }

  std::mutex mu_;
  std::vector<std::string> hosts_;
  const int max_ops_;
  std::vector<std::string> acked_;
  std::vector<std::string> failures_;
  rpc::Tls* tls_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<int> ran_out_{0};
  std::vector<std::thread> threads_;
};

}  // namespace kv::test
