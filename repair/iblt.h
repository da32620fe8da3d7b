// Iblt: an invertible Bloom lookup table over keys, for finding the few keys in which two large
// replicas differ (held on one side only, or in different versions) with bytes in proportion to
// the difference, not to the data (after Eppstein, Goodrich, Uyeda, Varghese: "What's the
// difference? Efficient set reconciliation without prior context", SIGCOMM 2011).
//
// Each key adds, under a per-exchange salt, a key id k (KeyOf: 28 bits) and a version value v
// (ValueOf: nonzero, from the key, its record's version digest and its number of dots) to one cell in
// each of kHashes equal parts of the table. A cell keeps two sums modulo the prime kPrime:
//   S = sum of k * v   and   T = sum of v.
// In the difference of two tables (Subtract) a key both sides hold in the same version cancels;
// a key held in versions v1 here and v2 there (v2 = 0 when absent there) leaves k * d and d,
// d = v1 - v2. A cell left with one such key is pure: k = S / T, and k must be a 28-bit id that
// hashes to this cell, which a cell of several keys passes about once in 2^12 * (cells / 3)
// times. Peeling lists each differing key once, with d, so a key held in two versions costs one
// entry, not two; and from d and its own version value a side learns the other's, which tells
// whether that side lacks the key and which version has more dots (a version that includes
// another has strictly more), so records can move in the right direction without first
// exchanging causal contexts.
//
// Cells are 10 bytes (S and T, 5 bytes each). The repair exchange (repair/exchange.h) salts
// every table afresh from both trees' roots, so a collision of ids or of version values hides a
// difference in one exchange only.
//
// Pure; a value type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kv::repair {

class Iblt {
 public:
  static constexpr std::size_t kHashes = 3;
  static constexpr std::uint64_t kPrime = (std::uint64_t{1} << 40) - 87;
  static constexpr int kKeyBits = 28;
  static constexpr int kDotBits = 11;  // of a version value: its dot count, mod 2^11
  static constexpr std::size_t kCellBytes = 10;
  static constexpr std::size_t kMinCells = 24;
  static constexpr std::size_t kMaxCells = std::size_t{1} << 20;

  // A table of `cells` cells (rounded up to a multiple of kHashes, and at least kMinCells).
  // REQUIRES: cells <= kMaxCells.
  Iblt(std::size_t cells, std::uint64_t salt);

  // Cells enough to list `keys` differing keys with high probability.
  static std::size_t CellsFor(std::size_t keys);

  // The id of `key` under `salt`, below 2^kKeyBits.
  static std::uint32_t KeyOf(std::string_view key, std::uint64_t salt);
  // The version value of `key`'s record with version digest `digest` and `dots` dots in its
  // context, under `salt`: in [1, 2^39], never 0 (0 stands for "absent"). The key is mixed in:
  // many keys often hold byte-identical records, and a table whose differing keys all differed
  // by the same amount would show cells of several keys as pure (their ids' average).
  static std::uint64_t ValueOf(std::string_view key, std::uint64_t digest, std::uint64_t dots,
                               std::uint64_t salt);
  // Of two version values of one key: > 0 when `a` has more dots than `b`, < 0 when fewer, 0
  // when as many (mod 2^kDotBits; a hint of direction, never trusted for correctness).
  static int MoreDots(std::uint64_t a, std::uint64_t b);
  // The other side's version value of a key, from this side's (0 when absent here) and the
  // peeled difference.
  static std::uint64_t Other(std::uint64_t mine, std::uint64_t difference);

  std::size_t cells() const { return s_.size(); }
  std::uint64_t salt() const { return salt_; }

  // REQUIRES: key < 2^kKeyBits, 0 < value < kPrime.
  void Add(std::uint32_t key, std::uint64_t value);

  // The table as kCellBytes bytes per cell, and back: false (leaving the table as it was) when
  // `bytes` is not a table of this many cells.
  std::string Encode() const;
  bool Decode(std::string_view bytes);

  // This table minus `other` (same cells and salt).
  void Subtract(const Iblt& other);

  struct Entry {
    std::uint32_t key = 0;
    std::uint64_t difference = 0;  // this side's version value minus the other's, mod kPrime
    bool operator==(const Entry&) const = default;
  };
  // Peels a difference (after Subtract) into one entry per differing key, appended to `out`.
  // Returns false when the table could not be emptied: the difference was too large for it
  // (`out` then holds what was found, which is not all, and the table what is left).
  bool Peel(std::vector<Entry>* out);
  // Takes out an entry found elsewhere (another table over the same keys under another salt,
  // whose pure cells may free this one's).
  void Remove(const Entry& entry);
  std::size_t NonzeroCells() const;

  // Peels several differences of the same keys (ids and values under one salt, cells under
  // different ones) together: what one lists is taken out of the others. Returns true when all
  // are emptied; `out` gets each entry once.
  static bool PeelTogether(std::vector<Iblt>& tables, std::vector<Entry>* out);

 private:
  std::size_t Cell(std::uint32_t key, std::size_t hash) const;
  // Adds (or takes away) key * value and value in one cell.
  void Toggle(std::size_t cell, std::uint64_t key_times_value, std::uint64_t value, bool add);
  // The key a cell holds alone, if it does.
  bool Pure(std::size_t cell, std::uint32_t* key) const;

  std::uint64_t salt_;
  std::size_t part_;  // cells per hash function
  std::vector<std::uint64_t> s_, t_;
};

}  // namespace kv::repair
