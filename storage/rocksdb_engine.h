// RocksDbEngine: the Engine on an embedded RocksDB under a data directory.
//
// Column families: "data" (be64(token) ‖ key -> record), "hints" (be64(target) ‖ be64(token) ‖
// key -> record) and "meta" (name -> value). Writes go to
// the WAL; by default without fsync (a process crash loses nothing, a machine crash may lose
// what was written since the last SyncLog(), which kvd calls periodically like Cassandra's
// periodic commit log); with `sync_writes` every write is fsynced before it is acknowledged.
//
// Thread-safety: as Engine. Open fails cleanly if another process holds the directory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/engine.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
class Snapshot;
}  // namespace rocksdb

namespace kv::storage {

class PowerLossFileSystem;  // storage/power_loss_fs.h

struct RocksDbOptions {
  bool sync_writes = false;
  bool create_if_missing = true;
  // TESTING ONLY: open the database on this PowerLossFileSystem, or on a new one when
  // `lose_unsynced_on_kill` is set, so that a SIGKILL loses the unsynced writes as a power loss
  // would (kvd --testing-lose-unsynced-on-kill).
  std::shared_ptr<PowerLossFileSystem> power_loss;
  bool lose_unsynced_on_kill = false;
};

class RocksDbEngine final : public Engine {
 public:
  static Result<std::unique_ptr<RocksDbEngine>> Open(const std::string& dir,
                                                     const RocksDbOptions& options);
  ~RocksDbEngine() override;  // closes the database

  Status Get(std::string_view key, std::string* value) override;
  Status Put(std::string_view key, std::string_view value) override;
  Status PutBatch(const std::vector<KeyValue>& pairs) override;
  Status Delete(std::string_view key) override;
  Status Scan(const ring::TokenRange& range, const ScanFn& fn) override;
  std::unique_ptr<DataSnapshot> TakeSnapshot() override;
  Status GetHint(std::uint64_t target, std::string_view key, std::string* value) override;
  Status DeleteHint(std::uint64_t target, std::string_view key) override;
  Status ScanHints(std::uint64_t target, const HintScanFn& fn) override;
  std::uint64_t ApproximateBytes() override;
  std::uint64_t PendingCompactionBytes() override;
  Status SyncLog() override;
  Status GetMeta(std::string_view name, std::string* value) override;
  Status PutMeta(std::string_view name, std::string_view value) override;

 private:
  RocksDbEngine() = default;
  class Snapshot;
  // Scan at `snapshot` (null: now).
  Status ScanAt(const ring::TokenRange& range, const ScanFn& fn,
                const rocksdb::Snapshot* snapshot);

  RocksDbOptions options_;
  std::unique_ptr<rocksdb::Env> env_;  // only on a PowerLossFileSystem; outlives db_
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, data, meta, hints
  rocksdb::ColumnFamilyHandle* data_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* hints_ = nullptr;
};

}  // namespace kv::storage
