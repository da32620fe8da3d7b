// Iblt: an invertible Bloom lookup table of 32-bit items, for finding the few entries in which
// two large sets differ with bytes in proportion to the difference, not to the sets
// (Eppstein, Goodrich, Uyeda, Varghese: "What's the difference? Efficient set reconciliation
// without prior context", SIGCOMM 2011).
//
// Each item is added to one cell in each of kHashes equal parts of the table. A cell keeps the
// count of items added (mod 256), the XOR of the items and the XOR of a check hash of each. The
// difference of two tables (Subtract) holds only the items that one set has and the other lacks;
// peeling its pure cells (count +1 or -1 and a check that matches the item) lists them, as long as
// the table has somewhat more cells than differing items (about 1.25 times for large
// differences; more for small ones: see CellsFor).
//
// The repair exchange (repair/exchange.h) uses one table per exchange, salted afresh each time,
// so a collision of 32-bit items hides a difference in one exchange only; the repair that follows
// compares the roots of the trees again.
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
  static constexpr std::size_t kCellBytes = 8;  // count 1, items 4, checks 3
  static constexpr std::size_t kMinCells = 24;
  static constexpr std::size_t kMaxCells = std::size_t{1} << 20;

  // A table of `cells` cells (rounded up to a multiple of kHashes, and at least kMinCells).
  // REQUIRES: cells <= kMaxCells.
  Iblt(std::size_t cells, std::uint64_t salt);

  // Cells enough to list `items` differing items with high probability.
  static std::size_t CellsFor(std::size_t items);

  // The 32-bit item that stands for a 64-bit entry hash under `salt`.
  static std::uint32_t ItemOf(std::uint64_t entry_hash, std::uint64_t salt);

  std::size_t cells() const { return counts_.size(); }
  std::uint64_t salt() const { return salt_; }

  void Add(std::uint32_t item);

  // The table as kCellBytes bytes per cell, and back: false (leaving the table as it was) when
  // `bytes` is not a table of this many cells.
  std::string Encode() const;
  bool Decode(std::string_view bytes);

  // This table minus `other` (same cells and salt): afterwards it holds the items added here
  // but not there (count +1) and there but not here (count -1).
  void Subtract(const Iblt& other);

  // Peels a difference (after Subtract) into the items only this side had (`mine`) and only the
  // other had (`theirs`). Returns false when the table could not be emptied: the difference was
  // too large for it (the lists then hold what was found, which is not all).
  bool Peel(std::vector<std::uint32_t>* mine, std::vector<std::uint32_t>* theirs);

 private:
  std::uint32_t Check(std::uint32_t item) const;
  std::size_t Cell(std::uint32_t item, std::size_t hash) const;
  void Toggle(std::size_t cell, std::uint32_t item, std::uint32_t check, std::int8_t sign);
  bool Pure(std::size_t cell) const;

  std::uint64_t salt_;
  std::size_t part_;  // cells per hash function
  std::vector<std::uint8_t> counts_;
  std::vector<std::uint32_t> items_;
  std::vector<std::uint32_t> checks_;  // 24 bits used
};

}  // namespace kv::repair
