// PowerLossFileSystem: a RocksDB FileSystem, for tests only, under which killing the process
// loses exactly what a power loss would: every byte written to a file but not yet synced.
//
// An ordinary process crash loses nothing RocksDB wrote: the bytes sit in the kernel's page
// cache and reach the disk later. A power loss drops them. This wrapper keeps each writable
// file's appended bytes in the process's own memory until RocksDB syncs the file (Sync, Fsync,
// RangeSync) and only then hands them to the real file and syncs it. So SIGKILL loses the tail
// of the write-ahead log that was never synced, as a machine crash would, while every synced
// write (kvd --sync-writes, the metadata, RocksDB's own SST, MANIFEST and CURRENT files, which
// it syncs before use) survives. The same seam as RocksDB's FaultInjectionTestFS and leveldb's
// fault_injection_test; written here because Debian's librocksdb-dev does not ship theirs.
//
// What it does not model: a file closed without a sync keeps its bytes (RocksDB syncs every
// file it relies on before closing it; its info LOG is the exception), and a new file or a
// rename whose directory was not synced survives.
//
// In-process tests crash it with Crash(): the pending bytes of every open file are dropped and
// every later write fails, as if the machine stopped there; the database is then closed (its
// writes go nowhere) and reopened on a fresh file system.
//
// Used by RocksDbEngine when RocksDbOptions::lose_unsynced_on_kill is set (kvd's test-only
// flag) or a test passes one in. Thread-safe.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace kv::storage {

class PowerLossFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFileSystem(std::shared_ptr<rocksdb::FileSystem> target);
  // One over the operating system's file system.
  static std::shared_ptr<PowerLossFileSystem> OnDefault();

  const char* Name() const override { return "PowerLossFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& name,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& name, const std::string& old_name,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  // After a crash nothing changes on disk any more: these fail too.
  rocksdb::IOStatus DeleteFile(const std::string& name, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

  // The machine stops now: unsynced bytes of every open file are dropped, and from here on
  // every write and sync fails.
  void Crash();
  bool crashed() const { return crashed_.load(); }

  // Bytes appended and not yet synced, over every open file.
  std::uint64_t UnsyncedBytes() const;

  class File;  // the wrapped writable file (power_loss_fs.cc)

 private:
  friend class File;
  rocksdb::IOStatus Wrap(rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* result);

  std::atomic<bool> crashed_{false};
  mutable std::mutex mu_;
  std::set<File*> open_;  // guarded by mu_
};

}  // namespace kv::storage
