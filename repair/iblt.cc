#include "repair/iblt.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdint>

#include "storage/status.h"

namespace kv::repair {
namespace {

constexpr std::uint64_t kP = Iblt::kPrime;
constexpr std::uint64_t kKeyMask = (std::uint64_t{1} << Iblt::kKeyBits) - 1;
constexpr std::uint64_t kDotMask = (std::uint64_t{1} << Iblt::kDotBits) - 1;

std::uint64_t Mix(std::uint64_t x, std::uint64_t seed) {
  return XXH3_64bits_withSeed(&x, sizeof x, seed);
}

std::uint64_t AddMod(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t s = a + b;  // both below 2^40: no overflow
  return s >= kP ? s - kP : s;
}

std::uint64_t SubMod(std::uint64_t a, std::uint64_t b) { return a >= b ? a - b : a + kP - b; }

// a * b mod p for a, b < p, by folding: 2^40 = 87 (mod p), so x = hi * 2^40 + lo = hi * 87 + lo.
std::uint64_t MulMod(std::uint64_t a, std::uint64_t b) {
  constexpr std::uint64_t kLow = (std::uint64_t{1} << 40) - 1;
  constexpr std::uint64_t kFold = (std::uint64_t{1} << 40) - kP;  // 87
  const unsigned __int128 x = static_cast<unsigned __int128>(a) * b;  // < 2^80
  std::uint64_t y = static_cast<std::uint64_t>(x >> 40) * kFold +
                    (static_cast<std::uint64_t>(x) & kLow);  // < 2^47 + 2^40
  y = (y >> 40) * kFold + (y & kLow);                       // < 2^40 + 2^14
  return y >= kP ? y - kP : y;
}

std::uint64_t Inverse(std::uint64_t a) {  // a^(p-2), Fermat; REQUIRES: 0 < a < p
  std::uint64_t result = 1, base = a, e = kP - 2;
  while (e > 0) {
    if (e & 1) result = MulMod(result, base);
    base = MulMod(base, base);
    e >>= 1;
  }
  return result;
}

}  // namespace

Iblt::Iblt(std::size_t cells, std::uint64_t salt) : salt_(salt) {
  KV_CHECK(cells <= kMaxCells);
  if (cells < kMinCells) cells = kMinCells;
  part_ = (cells + kHashes - 1) / kHashes;
  s_.assign(part_ * kHashes, 0);
  t_.assign(part_ * kHashes, 0);
}

std::size_t Iblt::CellsFor(std::size_t keys) {
  // Peeling with three hashes empties a table of about 1.23 cells per key for large
  // differences; small ones need proportionally more room (measured in iblt_test: about 1 table
  // in 1,000 fails at these sizes, and the exchange then retries with a larger one).
  const std::size_t cells = keys + keys * 2 / 5 + 2 * kMinCells;
  return cells > kMaxCells ? kMaxCells : cells;
}

std::uint32_t Iblt::KeyOf(std::string_view key, std::uint64_t salt) {
  return static_cast<std::uint32_t>(XXH3_64bits_withSeed(key.data(), key.size(), salt) &
                                    kKeyMask);
}

std::uint64_t Iblt::ValueOf(std::string_view key, std::uint64_t digest, std::uint64_t dots,
                            std::uint64_t salt) {
  const std::uint64_t k = XXH3_64bits_withSeed(key.data(), key.size(), ~salt);
  return 1 + ((dots & kDotMask) << kKeyBits | (Mix(k ^ digest, salt) & kKeyMask));
}

int Iblt::MoreDots(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t da = ((a - 1) >> kKeyBits) & kDotMask;
  const std::uint64_t db = ((b - 1) >> kKeyBits) & kDotMask;
  // The difference mod 2^kDotBits, read as signed.
  const std::uint64_t d = (da - db) & kDotMask;
  if (d == 0) return 0;
  return d < (kDotMask + 1) / 2 ? 1 : -1;
}

std::uint64_t Iblt::Other(std::uint64_t mine, std::uint64_t difference) {
  return SubMod(mine % kP, difference % kP);
}

std::size_t Iblt::Cell(std::uint32_t key, std::size_t hash) const {
  const std::uint64_t h = Mix(key, salt_ + 1 + hash);
  return hash * part_ + static_cast<std::size_t>(h % part_);
}

void Iblt::Toggle(std::size_t cell, std::uint64_t kv, std::uint64_t value, bool add) {
  if (add) {
    s_[cell] = AddMod(s_[cell], kv);
    t_[cell] = AddMod(t_[cell], value);
  } else {
    s_[cell] = SubMod(s_[cell], kv);
    t_[cell] = SubMod(t_[cell], value);
  }
}

void Iblt::Add(std::uint32_t key, std::uint64_t value) {
  KV_CHECK(key <= kKeyMask && value > 0 && value < kP);
  const std::uint64_t kv = MulMod(key, value);
  for (std::size_t h = 0; h < kHashes; ++h) Toggle(Cell(key, h), kv, value, true);
}

std::string Iblt::Encode() const {
  std::string out;
  out.reserve(cells() * kCellBytes);
  for (std::size_t c = 0; c < cells(); ++c) {
    for (int i = 0; i < 5; ++i) out.push_back(static_cast<char>(s_[c] >> (8 * i)));
    for (int i = 0; i < 5; ++i) out.push_back(static_cast<char>(t_[c] >> (8 * i)));
  }
  return out;
}

bool Iblt::Decode(std::string_view bytes) {
  if (bytes.size() != cells() * kCellBytes) return false;
  auto field = [&](std::size_t o) {
    std::uint64_t v = 0;
    for (int i = 0; i < 5; ++i) {
      v |= std::uint64_t{static_cast<unsigned char>(bytes[o + static_cast<std::size_t>(i)])}
           << (8 * i);
    }
    return v;
  };
  std::vector<std::uint64_t> s(cells()), t(cells());
  for (std::size_t c = 0; c < cells(); ++c) {
    s[c] = field(c * kCellBytes);
    t[c] = field(c * kCellBytes + 5);
    if (s[c] >= kP || t[c] >= kP) return false;  // not a residue: not a table
  }
  s_ = std::move(s);
  t_ = std::move(t);
  return true;
}

void Iblt::Subtract(const Iblt& other) {
  KV_CHECK(other.cells() == cells() && other.salt_ == salt_);
  for (std::size_t c = 0; c < cells(); ++c) {
    s_[c] = SubMod(s_[c], other.s_[c]);
    t_[c] = SubMod(t_[c], other.t_[c]);
  }
}

bool Iblt::Pure(std::size_t cell, std::uint32_t* key) const {
  if (t_[cell] == 0) return false;
  const std::uint64_t k = MulMod(s_[cell], Inverse(t_[cell]));
  if (k > kKeyMask) return false;
  *key = static_cast<std::uint32_t>(k);
  return Cell(*key, cell / part_) == cell;
}

bool Iblt::Peel(std::vector<Entry>* out) {
  std::vector<std::size_t> queue;
  std::uint32_t key = 0;
  for (std::size_t c = 0; c < cells(); ++c) {
    if (Pure(c, &key)) queue.push_back(c);
  }
  // Every peel empties a cell for good unless a false pure cell put something back: a table
  // cannot list more keys than this honestly.
  std::size_t budget = cells() * kHashes;
  while (!queue.empty() && budget-- > 0) {
    const std::size_t c = queue.back();
    queue.pop_back();
    if (!Pure(c, &key)) continue;
    const std::uint64_t d = t_[c];
    out->push_back(Entry{key, d});
    const std::uint64_t kd = MulMod(key, d);
    for (std::size_t h = 0; h < kHashes; ++h) {
      const std::size_t e = Cell(key, h);
      Toggle(e, kd, d, false);
      std::uint32_t other = 0;
      if (e != c && Pure(e, &other)) queue.push_back(e);
    }
  }
  for (std::size_t c = 0; c < cells(); ++c) {
    if (s_[c] != 0 || t_[c] != 0) return false;
  }
  return true;
}

void Iblt::Remove(const Entry& entry) {
  const std::uint64_t kd = MulMod(entry.key, entry.difference);
  for (std::size_t h = 0; h < kHashes; ++h) Toggle(Cell(entry.key, h), kd, entry.difference, false);
}

std::size_t Iblt::NonzeroCells() const {
  std::size_t n = 0;
  for (std::size_t c = 0; c < cells(); ++c) n += s_[c] != 0 || t_[c] != 0;
  return n;
}

bool Iblt::PeelTogether(std::vector<Iblt>& tables, std::vector<Entry>* out) {
  // An honest difference lists no more keys than its smallest table has cells times kHashes.
  std::size_t bound = SIZE_MAX;
  for (const Iblt& t : tables) bound = std::min(bound, t.cells() * kHashes);
  bool progress = true;
  while (progress && out->size() <= bound) {
    progress = false;
    for (std::size_t i = 0; i < tables.size(); ++i) {
      std::vector<Entry> got;
      (void)tables[i].Peel(&got);
      for (const Entry& e : got) {
        for (std::size_t j = 0; j < tables.size(); ++j) {
          if (j != i) tables[j].Remove(e);
        }
      }
      progress = progress || !got.empty();
      out->insert(out->end(), got.begin(), got.end());
    }
  }
  if (out->size() > bound) return false;
  for (const Iblt& t : tables) {
    if (t.NonzeroCells() != 0) return false;
  }
  return true;
}

}  // namespace kv::repair
