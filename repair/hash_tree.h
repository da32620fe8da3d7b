// HashTree: the always-on hash tree of one node's data, for anti-entropy (DESIGN.md, Repair).
//
// The token space is cut into 2^bits equal segments; a segment's leaf hash is the XOR of
// EntryHash(key, version digest) over the keys stored in it, so a write changes one leaf in
// O(1): XOR out the key's old entry, XOR in the new one. XOR makes a leaf a set hash: it does
// not depend on the order writes arrived in, so two replicas holding the same versions have the
// same leaves whatever their histories.
//
// Ring ranges do not line up with segments. RangeTree builds, for one ring range, a tree over
// the leaves of the segments it covers (the caller supplies the partial leaves of the two edge
// segments, computed from a scan of just the range's part), with a fixed fanout; two replicas
// compare such trees top-down and descend only where hashes differ.
//
// Pure; HashTree is thread-compatible (the owner serialises Update calls), RangeTree is a value.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ring/token.h"
#include "storage/local_store.h"

namespace kv::repair {

// A key's contribution to its leaf; `version_digest` is storage::VersionDigest of its record.
std::uint64_t EntryHash(std::string_view key, std::uint64_t version_digest);

class HashTree {
 public:
  // 2^bits leaves; bits in [1, 24].
  explicit HashTree(int bits);

  int bits() const { return bits_; }
  std::size_t segments() const { return leaves_.size(); }
  std::size_t SegmentOf(ring::Token t) const { return static_cast<std::size_t>(t >> (64 - bits_)); }
  // The token range of segment `s` ([begin, end), end 0 for the last).
  ring::TokenRange SegmentRange(std::size_t s) const;

  // Records that `key` (at token `t`) went from version `before` to version `after`; nullopt
  // means absent.
  void Update(ring::Token t, std::string_view key, std::optional<std::uint64_t> before,
              std::optional<std::uint64_t> after);
  std::uint64_t Leaf(std::size_t s) const { return leaves_[s]; }
  void SetLeaf(std::size_t s, std::uint64_t leaf) { leaves_[s] = leaf; }
  void Clear();

  // For persistence: the leaves as bytes, and back (false, leaving the tree untouched, if the
  // bytes are not a tree of this size).
  std::string Encode() const;
  bool Decode(std::string_view bytes);

  bool operator==(const HashTree&) const = default;

 private:
  int bits_;
  std::vector<std::uint64_t> leaves_;
};

// The segments a ring range touches: [first, last] inclusive, and whether the first and last
// are only partly inside the range (their leaves then need a scan of the range's part).
struct SegmentSpan {
  std::size_t first = 0, last = 0;
  bool first_partial = false, last_partial = false;
  std::size_t count() const { return last - first + 1; }
  // Whether segment s (in [first, last]) is only partly inside the range.
  bool Partial(std::size_t s) const {
    return (s == first && first_partial) || (s == last && last_partial);
  }
};
// REQUIRES: the range does not wrap (end == 0 or end > begin).
SegmentSpan SpanOf(const HashTree& tree, const ring::TokenRange& range);
// [begin, end) of segment `s` clipped to `range`.
ring::TokenRange ClipSegment(const HashTree& tree, std::size_t s, const ring::TokenRange& range);

// A tree over one range's leaves: level 0 is the leaves, level k+1 hashes groups of `fanout`
// nodes of level k; the last level has one node, the root.
class RangeTree {
 public:
  static constexpr std::size_t kFanout = 16;
  explicit RangeTree(std::vector<std::uint64_t> leaves);

  std::uint64_t root() const { return levels_.back()[0]; }
  std::size_t depth() const { return levels_.size(); }  // number of levels
  const std::vector<std::uint64_t>& level(std::size_t k) const { return levels_[k]; }
  // The children (in level k-1) of node i of level k: [begin, end).
  std::pair<std::size_t, std::size_t> Children(std::size_t k, std::size_t i) const;

 private:
  std::vector<std::vector<std::uint64_t>> levels_;
};

// The node's live tree: a HashTree kept current by the LocalStore's change notifications.
// Thread-safe: writes arrive on the storage worker thread, readers copy leaves under the lock.
//
// A tree is ready once it matches the data: loaded from a tree persisted at a clean stop, or
// built by RebuildLive. Until then (a start after a crash, while the first build scans)
// Leaves() must not be trusted: a repair would see every segment differ.
//
// A rebuild runs beside the writes: BeginRebuild() (called with writes paused, at the moment
// the scan's snapshot is taken) starts keeping aside the changes made from then on;
// FinishRebuild(built) sets each leaf to the scan's leaf with those changes folded in (XOR:
// the order of changes does not matter), so nothing written during the scan is lost.
class LiveTree final : public storage::ChangeListener {
 public:
  explicit LiveTree(int bits, bool ready = true) : tree_(bits), since_(bits), ready_(ready) {}
  void OnChange(std::string_view key, std::optional<std::uint64_t> before,
                std::optional<std::uint64_t> after) override;
  // A copy of the tree as it is now.
  HashTree Snapshot() const;
  // Leaves [first, last] as they are now.
  std::vector<std::uint64_t> Leaves(std::size_t first, std::size_t last) const;
  int bits() const { return tree_.bits(); }
  bool ready() const;
  // Replaces the tree (loading a persisted one) and makes it ready.
  void Reset(const HashTree& tree);
  void BeginRebuild();
  // Returns how many segments of a ready tree differed from the rebuilt one (drift); 0 when
  // the tree was not ready yet.
  std::size_t FinishRebuild(const HashTree& built);
  // A rebuild that failed: the changes kept aside are dropped.
  void AbandonRebuild();

 private:
  mutable std::mutex mu_;
  HashTree tree_;            // guarded by mu_
  HashTree since_;           // guarded by mu_: changes since BeginRebuild
  bool rebuilding_ = false;  // guarded by mu_
  bool ready_;               // guarded by mu_
};

// A tree built from scratch by scanning every key of `engine`'s data.
Result<HashTree> BuildFromScan(storage::Engine& engine, int bits);

// Rebuilds `live` from a scan of the data, so that disk corruption (or a bug) that made the
// live tree drift from the data is caught and repaired from then on, and an unready tree
// (a start without a persisted tree) becomes ready. Writes are held back only while the scan's
// snapshot is taken (microseconds), never during the scan (see LiveTree). A long scan: call it
// on a storage thread, never on an event loop. Returns how many segments differed (0 for a
// tree that was not ready).
// `cancel` (may be null) stops the scan early when set: Unavailable, the tree as it was.
// `progress` (may be null) is called every 1,024 keys scanned, with the count so far.
Result<std::size_t> RebuildLive(storage::LocalStore& store, storage::Engine& engine,
                                LiveTree& live, const std::atomic<bool>* cancel = nullptr,
                                const std::function<void(std::uint64_t)>& progress = nullptr);

// The tree persisted at a clean stop (metadata "hash_tree"), loaded into `live` (ready) and
// consumed, synced, so that a crash from here on finds none and the next start rebuilds.
// Returns whether one was loaded (false: none, or one of another size).
Result<bool> TakePersistedTree(storage::Engine& engine, LiveTree& live);
// At a clean stop, once nothing writes any more: persists a ready tree for the next start
// (an unready one is not persisted: the next start rebuilds).
Status PersistTree(storage::Engine& engine, const LiveTree& live);

}  // namespace kv::repair
