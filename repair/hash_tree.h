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

#include <cstddef>
#include <cstdint>
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
class LiveTree final : public storage::ChangeListener {
 public:
  explicit LiveTree(int bits) : tree_(bits) {}
  void OnChange(std::string_view key, std::optional<std::uint64_t> before,
                std::optional<std::uint64_t> after) override;
  // A copy of the tree as it is now.
  HashTree Snapshot() const;
  // Leaves [first, last] as they are now.
  std::vector<std::uint64_t> Leaves(std::size_t first, std::size_t last) const;
  int bits() const { return tree_.bits(); }
  // Replaces the tree (after a rebuild from a scan, or loading a persisted one).
  void Reset(const HashTree& tree);

 private:
  mutable std::mutex mu_;
  HashTree tree_;  // guarded by mu_
};

// A tree built from scratch by scanning every key of `engine`'s data.
Result<HashTree> BuildFromScan(storage::Engine& engine, int bits);

// Rebuilds `live` from a scan of the data with writes paused, so that disk corruption (or a
// bug) that made the live tree drift from the data is caught and repaired from then on.
// Returns how many segments differed.
Result<std::size_t> RebuildLive(storage::LocalStore& store, storage::Engine& engine,
                                LiveTree& live);

}  // namespace kv::repair
