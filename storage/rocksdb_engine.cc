#include "storage/rocksdb_engine.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include "storage/codec.h"
#include "storage/power_loss_fs.h"

namespace kv::storage {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// be64(target) ‖ be64(token) ‖ key: the hints for one node are one contiguous range.
std::string HintKey(std::uint64_t target, std::string_view key) {
  std::string out;
  AppendTokenPrefix(target, &out);
  out += EncodeStorageKey(key);
  return out;
}

Status FromRocks(const rocksdb::Status& s) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound("");
  if (s.IsCorruption()) return Status::Corruption(s.ToString());
  if (s.IsInvalidArgument()) return Status::InvalidArgument(s.ToString());
  return Status::IoError(s.ToString());
}

}  // namespace

Result<std::unique_ptr<RocksDbEngine>> RocksDbEngine::Open(const std::string& dir,
                                                           const RocksDbOptions& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  // Our build has no NDEBUG, so RocksDB would default to debug logging (TOOLCHAIN.md, 7).
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.keep_log_file_num = 4;
  db_options.IncreaseParallelism(2);

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.OptimizeLevelStyleCompaction();
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {"data", cf_options},
      {"meta", rocksdb::ColumnFamilyOptions()},
      {"hints", rocksdb::ColumnFamilyOptions()},
  };

  std::unique_ptr<RocksDbEngine> engine(new RocksDbEngine());
  engine->options_ = options;
  if (options.lose_unsynced_on_kill && !options.power_loss) {
    engine->options_.power_loss = PowerLossFileSystem::OnDefault();
  }
  if (engine->options_.power_loss) {
    engine->env_ = rocksdb::NewCompositeEnv(engine->options_.power_loss);
    db_options.env = engine->env_.get();
  }
  // Compactions keep normal priority. Tried at nice 19 (RocksDB's kLow, as Cassandra runs its
  // compactors): quorum p99 in the 10 s after a 1M-key load was about 5x that with normal
  // priority, and no better during a join's copy (tests/bench/join_bench.sh, one run each),
  // most likely because the compaction debt of the load lingered (more level-0 files per read).
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, families, &engine->handles_, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::IoError("data dir " + dir + " is in use by another process (" + s.ToString() +
                             ")");
    }
    return Status::IoError("cannot open RocksDB at " + dir + ": " + s.ToString());
  }
  engine->db_.reset(raw);
  engine->data_ = engine->handles_[1];
  engine->meta_ = engine->handles_[2];
  engine->hints_ = engine->handles_[3];
  return engine;
}

RocksDbEngine::~RocksDbEngine() {
  if (!db_) return;
  for (auto* h : handles_) {
    (void)db_->DestroyColumnFamilyHandle(h);
  }
  (void)db_->Close();
}

Status RocksDbEngine::Get(std::string_view key, std::string* value) {
  const std::string skey = EncodeStorageKey(key);
  return FromRocks(db_->Get(rocksdb::ReadOptions(), data_, skey, value));
}

Status RocksDbEngine::Put(std::string_view key, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return FromRocks(db_->Put(wo, data_, EncodeStorageKey(key), ToSlice(value)));
}

Status RocksDbEngine::PutBatch(const std::vector<KeyValue>& pairs) {
  rocksdb::WriteBatch batch;
  for (const KeyValue& kv : pairs) {
    rocksdb::Status s =
        kv.hint_for == 0 ? batch.Put(data_, EncodeStorageKey(kv.key), ToSlice(kv.value))
                         : batch.Put(hints_, HintKey(kv.hint_for, kv.key), ToSlice(kv.value));
    if (!s.ok()) return FromRocks(s);
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return FromRocks(db_->Write(wo, &batch));
}

Status RocksDbEngine::Delete(std::string_view key) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return FromRocks(db_->Delete(wo, data_, EncodeStorageKey(key)));
}

class RocksDbEngine::Snapshot final : public DataSnapshot {
 public:
  Snapshot(RocksDbEngine* engine) : engine_(engine), snapshot_(engine->db_->GetSnapshot()) {}
  ~Snapshot() override { engine_->db_->ReleaseSnapshot(snapshot_); }
  Status Scan(const ring::TokenRange& range, const ScanFn& fn) override {
    return engine_->ScanAt(range, fn, snapshot_);
  }

 private:
  RocksDbEngine* const engine_;
  const rocksdb::Snapshot* const snapshot_;
};

std::unique_ptr<Engine::DataSnapshot> RocksDbEngine::TakeSnapshot() {
  return std::make_unique<Snapshot>(this);
}

Status RocksDbEngine::Scan(const ring::TokenRange& range, const ScanFn& fn) {
  return ScanAt(range, fn, nullptr);
}

Status RocksDbEngine::ScanAt(const ring::TokenRange& range, const ScanFn& fn,
                             const rocksdb::Snapshot* snapshot) {
  std::string lower, upper;
  AppendTokenPrefix(range.begin, &lower);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  // Scans are bulk work (repair, copies, rebuilds, purges): they read each block once, and must
  // not push the blocks client reads keep hitting out of the block cache.
  ro.fill_cache = false;
  rocksdb::Slice upper_slice;
  if (range.end != 0) {
    AppendTokenPrefix(range.end, &upper);
    upper_slice = rocksdb::Slice(upper);
    ro.iterate_upper_bound = &upper_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, data_));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    DecodedKey dk;
    const rocksdb::Slice k = it->key();
    if (!DecodeStorageKey(std::string_view(k.data(), k.size()), &dk)) {
      return Status::Corruption("storage key shorter than a token");
    }
    const rocksdb::Slice v = it->value();
    if (!fn(dk.token, dk.key, std::string_view(v.data(), v.size()))) break;
  }
  return FromRocks(it->status());
}

Status RocksDbEngine::GetHint(std::uint64_t target, std::string_view key, std::string* value) {
  return FromRocks(db_->Get(rocksdb::ReadOptions(), hints_, HintKey(target, key), value));
}

Status RocksDbEngine::DeleteHint(std::uint64_t target, std::string_view key) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return FromRocks(db_->Delete(wo, hints_, HintKey(target, key)));
}

Status RocksDbEngine::ScanHints(std::uint64_t target, const HintScanFn& fn) {
  std::string lower, upper;
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper_slice;
  if (target != 0) {
    AppendTokenPrefix(target, &lower);
    if (target != UINT64_MAX) {
      AppendTokenPrefix(target + 1, &upper);
      upper_slice = rocksdb::Slice(upper);
      ro.iterate_upper_bound = &upper_slice;
    }
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, hints_));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    DecodedKey target_part, dk;
    if (!DecodeStorageKey(std::string_view(k.data(), k.size()), &target_part) ||
        !DecodeStorageKey(target_part.key, &dk)) {
      return Status::Corruption("hint key shorter than a target and a token");
    }
    const rocksdb::Slice v = it->value();
    if (!fn(target_part.token, dk.key, std::string_view(v.data(), v.size()))) break;
  }
  return FromRocks(it->status());
}

std::uint64_t RocksDbEngine::ApproximateBytes() {
  std::uint64_t live = 0, mem = 0;
  db_->GetIntProperty(data_, "rocksdb.estimate-live-data-size", &live);
  db_->GetIntProperty(data_, "rocksdb.cur-size-all-mem-tables", &mem);
  return live + mem;
}

std::uint64_t RocksDbEngine::PendingCompactionBytes() {
  std::uint64_t pending = 0;
  db_->GetIntProperty(data_, "rocksdb.estimate-pending-compaction-bytes", &pending);
  return pending;
}

Status RocksDbEngine::SyncLog() { return FromRocks(db_->SyncWAL()); }

Status RocksDbEngine::GetMeta(std::string_view name, std::string* value) {
  return FromRocks(db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(name), value));
}

Status RocksDbEngine::PutMeta(std::string_view name, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;  // metadata is rare and must survive a machine crash
  return FromRocks(db_->Put(wo, meta_, ToSlice(name), ToSlice(value)));
}

}  // namespace kv::storage
