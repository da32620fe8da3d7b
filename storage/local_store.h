// LocalStore: this node's own replica of the versioned records, on an Engine.
//
// It turns reads and writes into record operations (record.h) with the node's id as the
// coordinator of new dots, enforces the size limits, and serialises the read-modify-write of
// each key so that concurrent writers never lose each other's siblings.
//
// Thread-safety: every method may be called from any thread concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/codec.h"
#include "storage/dots.h"
#include "storage/engine.h"
#include "storage/record.h"

namespace kv::storage {

struct Limits {
  std::size_t max_key_bytes = 64 * 1024;
  std::size_t max_value_bytes = 16 * 1024 * 1024;
  // A tombstone is purged only once this long has passed since its delete by this store's own
  // clock, whoever asks (kvd --tombstone-grace-s).
  std::uint64_t tombstone_grace_s = 10 * 86400;
  // A write this node coordinates is refused if it would leave the key with more siblings than
  // this, or a record larger than max_record_bytes (its values and causal metadata, about), and
  // the record would grow: blind writes cannot pile up a record that no message can carry. The
  // writer is told to read and write with the context, which resolves siblings (Riak's
  // max_siblings). Merges from other replicas are never refused (that would lose their writes):
  // concurrent sides of a partition can together exceed the caps, up to what a message carries
  // (kvd sizes messages for two records at the cap).
  std::size_t max_siblings = 100;
  std::size_t max_record_bytes = std::size_t{32} << 20;
};

// InvalidArgument if the key is empty or too long.
Status CheckKey(std::string_view key, const Limits& limits);
// InvalidArgument if the value is too long.
Status CheckValue(std::string_view value, const Limits& limits);

// Returns the node id kept in the engine's metadata, generating and storing a random non-zero
// one on first start.
Result<NodeId> LoadOrCreateNodeId(Engine& engine);

// One write in a batch (LocalStore::ApplyBatch). The caller fills the request fields; the
// batch fills the outcome.
struct WriteOp {
  enum class Kind {
    kPut,         // a value superseding `seen`
    kDelete,      // a tombstone superseding `seen`
    kDeleteSeen,  // a tombstone superseding everything stored (`seen` ignored)
    kMerge,       // `remote` (another replica's record) joined into the stored one
    kHint,        // `remote` joined into the hint held for node `hint_for`
  };
  Kind kind = Kind::kPut;
  std::string key;
  CausalContext seen;
  std::string value;
  Record remote;        // kMerge, kHint
  NodeId hint_for = 0;  // kHint

  // Outcome.
  Status status;
  Record record;           // the record as stored after the write, when status is ok
  bool had_value = false;  // whether a live value was stored before the write
};

// One hint as a scan returns it.
struct Hint {
  NodeId target = 0;
  std::string key;
  Record record;
  std::uint64_t created_s = 0;  // when its first write was kept (Unix seconds); 0: unknown
};

// Told of every change to a key's record in the data keyspace (hints are not data), while the
// key's lock is held, after the engine write succeeded. Digests are VersionDigest (codec.h) of
// the encoded record; nullopt means the key held nothing. Called from whichever thread wrote.
class ChangeListener {
 public:
  virtual ~ChangeListener() = default;
  virtual void OnChange(std::string_view key, std::optional<std::uint64_t> before,
                        std::optional<std::uint64_t> after) = 0;
};

// About the bytes `r` takes: its values and causal metadata (what max_record_bytes bounds).
std::size_t ApproxBytes(const Record& r);

class LocalStore {
 public:
  // `engine` must outlive the store. Counts the hints already held (one scan of them). The
  // writes it coordinates get dots of a life drawn at random now (storage/dots.h).
  LocalStore(Engine* engine, NodeId self, Limits limits);

  NodeId self() const { return self_; }
  // The life of this store's dots (storage/dots.h).
  std::uint64_t life() const { return dots_->life(); }
  // The issuer of this store's dots: kvd saves its state at a clean stop and offers it back.
  DotIssuer& dots() { return *dots_; }
  // Tests: lives `life`, `life + 1`, ... instead of random ones, so dots replay. Call before any
  // write.
  void SetLifeForTest(std::uint64_t life) {
    dots_ = std::make_unique<DotIssuer>(
        [life]() mutable { return life++ << DotIssuer::kEpochBits; });
  }

  // Sets the listener told of every data change (repair's hash tree). Call before any write;
  // it must outlive the store's writes.
  void SetListener(ChangeListener* listener) { listener_ = listener; }
  // The clock that stamps tombstones (seconds since the epoch); the wall clock by default.
  // Call before any write.
  void SetClock(std::function<std::uint64_t()> clock) { clock_ = std::move(clock); }

  // Runs `fn` with every key lock held: no write changes the data meanwhile (repair rebuilds its
  // hash tree from a scan this way). Writes wait until it returns.
  void WithWritesPaused(const std::function<void()>& fn);

  // Tombstone GC: removes `key` if its stored record still has version digest `digest` and
  // holds nothing but tombstones older than the grace period (Limits::tombstone_grace_s) by this
  // store's clock: a purge initiator whose clock runs ahead cannot shorten it (a tombstone's
  // time still comes from the clock of the node that wrote the delete). Returns whether it did.
  Result<bool> PurgeIfUnchanged(std::string_view key, std::uint64_t digest);
  const Limits& limits() const { return limits_; }
  // Writes refused by the sibling cap and by the record size cap (Limits).
  std::uint64_t refused_siblings() const { return refused_siblings_.load(); }
  std::uint64_t refused_record_size() const { return refused_size_.load(); }

  // Cleanup: deletes every record whose key's token is in `range` (the hash tree is told).
  // Returns the keys deleted and their stored bytes (key and record).
  struct Dropped {
    std::uint64_t keys = 0, bytes = 0;
  };
  Result<Dropped> DropRange(const ring::TokenRange& range);

  // The stored record; an empty record if the key was never written.
  Result<Record> Read(std::string_view key);

  // Writes a value (or a tombstone when `tombstone`) that supersedes exactly the siblings in
  // `seen`. Returns the record as stored after the write. InvalidArgument if `seen` names a
  // write of this life's actor that it never made.
  Result<Record> Write(std::string_view key, const CausalContext& seen, bool tombstone,
                       std::string value);

  // Deletes what this replica currently holds: a tombstone whose context is the stored one.
  // `*had_value` tells whether a live value was there.
  Result<Record> DeleteSeen(std::string_view key, bool* had_value);

  // Applies every op in order, as if one after another, with one engine write for all of them
  // (group commit: one log append, one fsync when synced). Ops that fail validation fail alone;
  // if the engine write fails, every op that got that far fails with its status.
  void ApplyBatch(std::vector<WriteOp*>& ops);

  // Joins a record from another replica into the stored one. Returns the merged record.
  Result<Record> Merge(std::string_view key, const Record& remote);

  // Hinted handoff. A hint is a record kept for another node (the target) while it cannot take
  // it; hints for the same (target, key) are merged into one. They are written with
  // ApplyBatch (WriteOp::Kind::kHint).
  //
  // The hint held for (target, key); an empty record if none.
  Result<Record> ReadHint(NodeId target, std::string_view key);
  // The same with when its first write was kept (created_s 0: none held, or age unknown).
  Result<StoredHint> ReadStoredHint(NodeId target, std::string_view key);
  // Up to `limit` hints for `target` (every target when 0), in key order from the start.
  Result<std::vector<Hint>> ScanHints(NodeId target, std::size_t limit);
  // Deletes the hint for (target, key) if it still equals `delivered`; a hint that grew since
  // it was read stays, to be delivered again. Returns whether it was deleted.
  Result<bool> DeleteHintIfUnchanged(NodeId target, std::string_view key, const Record& delivered);
  // How many hints are held per target node (targets with none are left out).
  std::map<NodeId, std::uint64_t> HintCounts() const;

 private:
  std::mutex& LockFor(std::string_view key);
  Result<Record> ReadLocked(std::string_view key);
  // Writes `record` over `before` (the record read under the same lock) and tells the listener.
  Status Store(std::string_view key, const Record& before, const Record& record);
  static std::optional<std::uint64_t> DigestOf(const Record& r);

  Engine* const engine_;
  const NodeId self_;
  const Limits limits_;
  std::unique_ptr<DotIssuer> dots_;
  ChangeListener* listener_ = nullptr;
  std::function<std::uint64_t()> clock_;
  // Every write holds pause_mu_ shared, then its keys' stripes; WithWritesPaused holds it
  // exclusively. 32 stripes, each a slice of the token ring (StripeOf): a batch may hold them
  // all, and TSan tracks at most 64 locks held by one thread.
  static constexpr std::size_t kStripes = 32;
  static std::size_t StripeOf(std::string_view key);
  mutable std::shared_mutex pause_mu_;
  std::array<std::mutex, kStripes> stripes_;
  // OK, or why a client write that turns `before` into `after` is refused (Limits' caps).
  Status CheckCaps(const Record& before, const Record& after);
  std::atomic<std::uint64_t> refused_siblings_{0}, refused_size_{0};
  mutable std::mutex counts_mu_;
  std::map<NodeId, std::uint64_t> hint_counts_;  // guarded by counts_mu_
};

}  // namespace kv::storage
