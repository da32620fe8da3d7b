#include "storage/power_loss_fs.h"

#include <utility>

namespace kv::storage {

namespace {
// Past this many pending bytes in one file, the oldest are handed to the real file unsynced, as
// a kernel writes dirty pages back: a bound on the memory the wrapper holds.
constexpr std::size_t kMaxPendingBytes = 256u << 20;

rocksdb::IOStatus CrashedError() {
  return rocksdb::IOStatus::IOError("the machine crashed (PowerLossFileSystem)");
}
}  // namespace

class PowerLossFileSystem::File final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(PowerLossFileSystem* fs, std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs) {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    fs_->open_.insert(this);
  }
  ~File() override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    fs_->open_.erase(this);
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fs_->crashed()) return CrashedError();
    pending_.append(data.data(), data.size());
    if (pending_.size() > kMaxPendingBytes) return WriteBackLocked(options, dbg);
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo&,
                           rocksdb::IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  // Only used with direct I/O, which the store does not enable: passed through after the
  // pending bytes (nothing of it is lost on a crash).
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fs_->crashed()) return CrashedError();
    auto s = WriteBackLocked(options, dbg);
    return s.ok() ? target()->PositionedAppend(data, offset, options, dbg) : s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext* dbg) override {
    return PositionedAppend(data, offset, options, dbg);
  }
  // Flush hands bytes to the operating system, which a power loss forgets: they stay here.
  rocksdb::IOStatus Flush(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    if (fs_->crashed()) return CrashedError();
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fs_->crashed()) return CrashedError();
    auto s = WriteBackLocked(options, dbg);
    return s.ok() ? target()->Sync(options, dbg) : s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fs_->crashed()) return CrashedError();
    auto s = WriteBackLocked(options, dbg);
    return s.ok() ? target()->Fsync(options, dbg) : s;
  }
  // A range sync makes the whole file durable here: more than asked, never less.
  rocksdb::IOStatus RangeSync(std::uint64_t, std::uint64_t, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    return Sync(options, dbg);
  }
  bool IsSyncThreadSafe() const override { return true; }
  rocksdb::IOStatus Truncate(std::uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fs_->crashed()) return CrashedError();
    auto s = WriteBackLocked(options, dbg);
    return s.ok() ? target()->Truncate(size, options, dbg) : s;
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fs_->crashed()) {
      pending_.clear();
      (void)target()->Close(options, dbg);
      return CrashedError();
    }
    auto s = WriteBackLocked(options, dbg);
    auto c = target()->Close(options, dbg);
    return s.ok() ? c : s;
  }
  std::uint64_t GetFileSize(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    return target()->GetFileSize(options, dbg) + pending_.size();
  }

  void DropPending() {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.clear();
  }
  std::size_t PendingBytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }

 private:
  // Hands the pending bytes to the real file, unsynced.
  rocksdb::IOStatus WriteBackLocked(const rocksdb::IOOptions& options,
                                    rocksdb::IODebugContext* dbg) {
    if (pending_.empty()) return rocksdb::IOStatus::OK();
    auto s = target()->Append(rocksdb::Slice(pending_), options, dbg);
    if (s.ok()) s = target()->Flush(options, dbg);
    if (s.ok()) pending_.clear();
    return s;
  }

  PowerLossFileSystem* const fs_;
  mutable std::mutex mu_;
  std::string pending_;  // appended, not yet handed to the real file
};

PowerLossFileSystem::PowerLossFileSystem(std::shared_ptr<rocksdb::FileSystem> target)
    : FileSystemWrapper(std::move(target)) {}

std::shared_ptr<PowerLossFileSystem> PowerLossFileSystem::OnDefault() {
  return std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
}

rocksdb::IOStatus PowerLossFileSystem::Wrap(rocksdb::IOStatus s,
                                            std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (!s.ok()) return s;
  *result = std::make_unique<File>(this, std::move(*result));
  return s;
}

rocksdb::IOStatus PowerLossFileSystem::NewWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  if (crashed()) return CrashedError();
  return Wrap(target()->NewWritableFile(name, options, result, dbg), result);
}

rocksdb::IOStatus PowerLossFileSystem::ReopenWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  if (crashed()) return CrashedError();
  return Wrap(target()->ReopenWritableFile(name, options, result, dbg), result);
}

rocksdb::IOStatus PowerLossFileSystem::ReuseWritableFile(
    const std::string& name, const std::string& old_name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  if (crashed()) return CrashedError();
  return Wrap(target()->ReuseWritableFile(name, old_name, options, result, dbg), result);
}

rocksdb::IOStatus PowerLossFileSystem::DeleteFile(const std::string& name,
                                                  const rocksdb::IOOptions& options,
                                                  rocksdb::IODebugContext* dbg) {
  if (crashed()) return CrashedError();
  return target()->DeleteFile(name, options, dbg);
}

rocksdb::IOStatus PowerLossFileSystem::RenameFile(const std::string& from, const std::string& to,
                                                  const rocksdb::IOOptions& options,
                                                  rocksdb::IODebugContext* dbg) {
  if (crashed()) return CrashedError();
  return target()->RenameFile(from, to, options, dbg);
}

void PowerLossFileSystem::Crash() {
  crashed_.store(true);
  std::lock_guard<std::mutex> lock(mu_);
  for (File* f : open_) f->DropPending();
}

std::uint64_t PowerLossFileSystem::UnsyncedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::uint64_t total = 0;
  for (const File* f : open_) total += f->PendingBytes();
  return total;
}

}  // namespace kv::storage
