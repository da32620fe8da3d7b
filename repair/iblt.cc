#include "repair/iblt.h"

#include <xxhash.h>

#include "storage/status.h"

namespace kv::repair {
namespace {

constexpr std::uint32_t kCheckMask = 0xFFFFFF;

std::uint64_t Mix(std::uint64_t x, std::uint64_t seed) {
  return XXH3_64bits_withSeed(&x, sizeof x, seed);
}

}  // namespace

Iblt::Iblt(std::size_t cells, std::uint64_t salt) : salt_(salt) {
  KV_CHECK(cells <= kMaxCells);
  if (cells < kMinCells) cells = kMinCells;
  part_ = (cells + kHashes - 1) / kHashes;
  counts_.assign(part_ * kHashes, 0);
  items_.assign(part_ * kHashes, 0);
  checks_.assign(part_ * kHashes, 0);
}

std::size_t Iblt::CellsFor(std::size_t items) {
  // Peeling with three hashes empties a table of about 1.23 cells per item for large
  // differences; small ones need proportionally more room (measured in iblt_test: under 1 in
  // 1,000 tables fails at these sizes).
  const std::size_t cells = items + items / 2 + 2 * kMinCells;
  return cells > kMaxCells ? kMaxCells : cells;
}

std::uint32_t Iblt::ItemOf(std::uint64_t entry_hash, std::uint64_t salt) {
  return static_cast<std::uint32_t>(Mix(entry_hash, salt));
}

std::uint32_t Iblt::Check(std::uint32_t item) const {
  return static_cast<std::uint32_t>(Mix(item, salt_ ^ 0x9E3779B97F4A7C15ull)) & kCheckMask;
}

std::size_t Iblt::Cell(std::uint32_t item, std::size_t hash) const {
  const std::uint64_t h = Mix(item, salt_ + 1 + hash);
  return hash * part_ + static_cast<std::size_t>(h % part_);
}

void Iblt::Toggle(std::size_t cell, std::uint32_t item, std::uint32_t check, std::int8_t sign) {
  counts_[cell] = static_cast<std::uint8_t>(counts_[cell] + static_cast<std::uint8_t>(sign));
  items_[cell] ^= item;
  checks_[cell] ^= check;
}

void Iblt::Add(std::uint32_t item) {
  const std::uint32_t check = Check(item);
  for (std::size_t h = 0; h < kHashes; ++h) Toggle(Cell(item, h), item, check, 1);
}

std::string Iblt::Encode() const {
  std::string out;
  out.reserve(cells() * kCellBytes);
  for (std::size_t c = 0; c < cells(); ++c) {
    out.push_back(static_cast<char>(counts_[c]));
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(items_[c] >> (8 * i)));
    for (int i = 0; i < 3; ++i) out.push_back(static_cast<char>(checks_[c] >> (8 * i)));
  }
  return out;
}

bool Iblt::Decode(std::string_view bytes) {
  if (bytes.size() != cells() * kCellBytes) return false;
  auto byte = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]));
  };
  for (std::size_t c = 0; c < cells(); ++c) {
    const std::size_t o = c * kCellBytes;
    counts_[c] = static_cast<std::uint8_t>(byte(o));
    items_[c] = byte(o + 1) | byte(o + 2) << 8 | byte(o + 3) << 16 | byte(o + 4) << 24;
    checks_[c] = byte(o + 5) | byte(o + 6) << 8 | byte(o + 7) << 16;
  }
  return true;
}

void Iblt::Subtract(const Iblt& other) {
  KV_CHECK(other.cells() == cells() && other.salt_ == salt_);
  for (std::size_t c = 0; c < cells(); ++c) {
    counts_[c] = static_cast<std::uint8_t>(counts_[c] - other.counts_[c]);
    items_[c] ^= other.items_[c];
    checks_[c] ^= other.checks_[c];
  }
}

bool Iblt::Pure(std::size_t cell) const {
  return (counts_[cell] == 1 || counts_[cell] == 0xFF) && checks_[cell] == Check(items_[cell]);
}

bool Iblt::Peel(std::vector<std::uint32_t>* mine, std::vector<std::uint32_t>* theirs) {
  std::vector<std::size_t> queue;
  for (std::size_t c = 0; c < cells(); ++c) {
    if (Pure(c)) queue.push_back(c);
  }
  // Every peel removes one item from kHashes cells; a table cannot hold more items than this
  // without one being listed twice, which only a false pure cell can cause.
  std::size_t budget = cells() * kHashes;
  while (!queue.empty() && budget-- > 0) {
    const std::size_t c = queue.back();
    queue.pop_back();
    if (!Pure(c)) continue;
    const std::uint32_t item = items_[c];
    const std::int8_t sign = counts_[c] == 1 ? 1 : -1;
    (sign > 0 ? mine : theirs)->push_back(item);
    const std::uint32_t check = Check(item);
    for (std::size_t h = 0; h < kHashes; ++h) {
      const std::size_t d = Cell(item, h);
      Toggle(d, item, check, static_cast<std::int8_t>(-sign));
      if (Pure(d)) queue.push_back(d);
    }
  }
  for (std::size_t c = 0; c < cells(); ++c) {
    if (counts_[c] != 0 || items_[c] != 0 || checks_[c] != 0) return false;
  }
  return true;
}

}  // namespace kv::repair
