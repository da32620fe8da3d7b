// Engine: the byte-level storage a node keeps on its own disk.
//
// Three keyspaces: data (user key -> encoded record, ordered by token so that a token range is
// one contiguous scan), hints (records kept for another node while it is down: (target node,
// key) -> encoded record, grouped by target) and node metadata (small named values: node id,
// generation, tokens).
// The engine knows nothing of records; LocalStore (local_store.h) gives them meaning.
//
// Thread-safety: every method may be called from any thread concurrently. A single Put is
// atomic; read-modify-write sequences need the caller's own exclusion (LocalStore has it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ring/token.h"
#include "storage/status.h"

namespace kv::storage {

class Engine {
 public:
  virtual ~Engine() = default;

  // NotFound if the key holds nothing.
  virtual Status Get(std::string_view key, std::string* value) = 0;
  virtual Status Put(std::string_view key, std::string_view value) = 0;

  // Writes every pair atomically: all or none, in one log write (one fsync when synced).
  // A pair with `hint_for` != 0 goes to the hints keyspace, as a hint for that node.
  struct KeyValue {
    std::string_view key;
    std::string_view value;
    std::uint64_t hint_for = 0;
  };
  virtual Status PutBatch(const std::vector<KeyValue>& pairs) = 0;
  // Removes a key from the data keyspace (tombstone GC); OK if it was absent.
  virtual Status Delete(std::string_view key) = 0;

  // Calls `fn(token, key, value)` for every key whose token is in `range`, in token order (keys
  // with equal tokens in byte order). `fn` returns false to stop early.
  using ScanFn =
      std::function<bool(ring::Token token, std::string_view key, std::string_view value)>;
  virtual Status Scan(const ring::TokenRange& range, const ScanFn& fn) = 0;

  // A consistent view of the data keyspace as of its creation: a scan through it sees no write
  // made later (RocksDB snapshot). Cheap to take; holding one pins old data files, so hold it
  // for one scan only. May be used from any thread; must not outlive the engine.
  class DataSnapshot {
   public:
    virtual ~DataSnapshot() = default;
    virtual Status Scan(const ring::TokenRange& range, const ScanFn& fn) = 0;
  };
  virtual std::unique_ptr<DataSnapshot> TakeSnapshot() = 0;

  // Hints. NotFound if no hint for (target, key) is held.
  virtual Status GetHint(std::uint64_t target, std::string_view key, std::string* value) = 0;
  virtual Status DeleteHint(std::uint64_t target, std::string_view key) = 0;
  // Calls `fn(target, key, value)` for every hint held for `target` (for every target when
  // `target` is 0), grouped by target, in token order within one. `fn` returns false to stop.
  using HintScanFn = std::function<bool(std::uint64_t target, std::string_view key,
                                        std::string_view value)>;
  virtual Status ScanHints(std::uint64_t target, const HintScanFn& fn) = 0;

  // Makes every write acknowledged so far durable (an fsync of the write-ahead log). Not cheap:
  // storage threads only.
  virtual Status SyncLog() = 0;

  // Approximate bytes of data stored (for `kvtool status`); cheap.
  virtual std::uint64_t ApproximateBytes() = 0;
  // Bytes compactions are estimated to rewrite before the data's shape is settled (for
  // metrics); cheap. 0 where there is no such thing.
  virtual std::uint64_t PendingCompactionBytes() { return 0; }

  virtual Status GetMeta(std::string_view name, std::string* value) = 0;
  virtual Status PutMeta(std::string_view name, std::string_view value) = 0;
};

}  // namespace kv::storage
