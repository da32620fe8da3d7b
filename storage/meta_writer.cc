#include "storage/meta_writer.h"

#include <utility>
#include <vector>

namespace kv::storage {

MetaWriter::MetaWriter(Engine* engine,
                       std::function<void(const std::string&, const Status&)> on_error)
    : engine_(engine), on_error_(std::move(on_error)), thread_([this] { Loop(); }) {}

MetaWriter::~MetaWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MetaWriter::Put(const std::string& name, std::string value) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[name] = std::move(value);
    ++given_;
  }
  cv_.notify_all();
}

void MetaWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const std::uint64_t target = given_;
  idle_.wait(lock, [&] { return done_ >= target; });
}

std::uint64_t MetaWriter::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

void MetaWriter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stop_ and nothing left to write
    std::map<std::string, std::string> batch;
    batch.swap(pending_);
    const std::uint64_t covered = given_;
    lock.unlock();
    std::uint64_t ok = 0;
    for (const auto& [name, value] : batch) {
      const Status s = engine_->PutMeta(name, value);
      if (s.ok()) {
        ++ok;
      } else if (on_error_) {
        on_error_(name, s);
      }
    }
    lock.lock();
    written_ += ok;
    done_ = covered;
    idle_.notify_all();
  }
}

}  // namespace kv::storage
