// Iblt (repair/iblt.h) against a model of two replicas (key id -> version value): the
// difference of two tables lists exactly the keys held on one side only or in different
// versions, once each, with the difference of their values, across sizes, at the table sizes
// CellsFor gives; a table too small says so; version values carry their dot counts; the
// encoding round-trips and rejects what is not a table.
#include "repair/iblt.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace kv::repair {
namespace {

constexpr std::uint32_t kIdMask = (1u << Iblt::kKeyBits) - 1;

struct Replicas {
  std::map<std::uint32_t, std::uint64_t> a, b;  // id -> version value
};

std::uint64_t Value(std::mt19937_64& rng) {
  return Iblt::ValueOf(std::to_string(rng()), rng(), rng() % 50, 9);
}

// `common` keys alike on both, `only_a` and `only_b` keys on one side, `versions` keys in a
// different version on each.
Replicas Make(std::mt19937_64& rng, std::size_t common, std::size_t only_a, std::size_t only_b,
              std::size_t versions) {
  std::set<std::uint32_t> used;
  auto fresh = [&] {
    std::uint32_t x;
    do x = static_cast<std::uint32_t>(rng()) & kIdMask;
    while (!used.insert(x).second);
    return x;
  };
  Replicas r;
  for (std::size_t i = 0; i < common; ++i) {
    const std::uint32_t k = fresh();
    r.a[k] = r.b[k] = Value(rng);
  }
  for (std::size_t i = 0; i < only_a; ++i) r.a[fresh()] = Value(rng);
  for (std::size_t i = 0; i < only_b; ++i) r.b[fresh()] = Value(rng);
  for (std::size_t i = 0; i < versions; ++i) {
    const std::uint32_t k = fresh();
    r.a[k] = Value(rng);
    do r.b[k] = Value(rng);
    while (r.b[k] == r.a[k]);
  }
  return r;
}

// Peels table(a) - table(b) (b's across the wire); true when it lists exactly the differing
// keys, each once with a's value minus b's.
bool Reconciles(const Replicas& r, std::size_t cells, std::uint64_t salt) {
  Iblt ta(cells, salt), tb(cells, salt);
  for (const auto& [k, v] : r.a) ta.Add(k, v);
  for (const auto& [k, v] : r.b) tb.Add(k, v);
  Iblt received(cells, salt);
  EXPECT_TRUE(received.Decode(tb.Encode()));
  ta.Subtract(received);
  std::vector<Iblt::Entry> found;
  const bool ok = ta.Peel(&found);
  std::map<std::uint32_t, std::uint64_t> got;
  for (const auto& e : found) {
    // (A table that does not peel may have listed garbage.)
    EXPECT_TRUE(got.emplace(e.key, e.difference).second || !ok) << "listed twice: " << e.key;
  }
  std::map<std::uint32_t, std::uint64_t> want;
  std::set<std::uint32_t> ids;
  for (const auto& [k, v] : r.a) ids.insert(k);
  for (const auto& [k, v] : r.b) ids.insert(k);
  for (std::uint32_t k : ids) {
    const std::uint64_t va = r.a.contains(k) ? r.a.at(k) : 0;
    const std::uint64_t vb = r.b.contains(k) ? r.b.at(k) : 0;
    if (va == vb) continue;
    want[k] = (va + Iblt::kPrime - vb) % Iblt::kPrime;
    // What each side learns of the other's version.
    EXPECT_TRUE(!ok || !got.contains(k) || Iblt::Other(va, got[k]) == vb);
  }
  if (ok) {
    EXPECT_EQ(got, want);
  }
  return ok && got == want;
}

TEST(Iblt, ListsExactlyTheDifferenceAtTheSizesCellsForGives) {
  std::mt19937_64 rng(1);
  for (std::size_t d : {0, 1, 2, 5, 10, 30, 100, 300, 1000, 3000}) {
    int failures = 0;
    const int trials = d >= 1000 ? 20 : 100;
    for (int t = 0; t < trials; ++t) {
      // A mix of keys on one side only and keys in two versions.
      const std::size_t versions = d == 0 ? 0 : rng() % (d + 1);
      const std::size_t a = d - versions == 0 ? 0 : rng() % (d - versions + 1);
      Replicas r = Make(rng, 2000, a, d - versions - a, versions);
      failures += !Reconciles(r, Iblt::CellsFor(d), rng());
    }
    // The exchange retries a failed table at twice the size; failures must be rare.
    EXPECT_LE(failures, trials / 20) << d << " differing keys";
    std::printf("%zu differing keys: %d of %d tables failed\n", d, failures, trials);
  }
}

TEST(Iblt, KeysInTwoVersionsAloneCostOneEntryEach) {
  std::mt19937_64 rng(3);
  for (int t = 0; t < 20; ++t) {
    Replicas r = Make(rng, 5000, 0, 0, 1000);
    EXPECT_TRUE(Reconciles(r, Iblt::CellsFor(1000), rng()));
  }
}

TEST(Iblt, KeysWithByteIdenticalRecordsStillPeel) {
  // The common case of a replica that missed the same kind of write on many keys: every key's
  // old record is the same bytes, and so is every new one. Their differences must not all be
  // alike, or a cell of several keys looks pure.
  for (std::uint64_t salt = 1; salt <= 20; ++salt) {
    Iblt a(Iblt::CellsFor(1000), salt), b(Iblt::CellsFor(1000), salt);
    for (int i = 0; i < 1000; ++i) {
      const std::string key = "key" + std::to_string(i);
      a.Add(Iblt::KeyOf(key, salt), Iblt::ValueOf(key, 111, 2, salt));
      b.Add(Iblt::KeyOf(key, salt), Iblt::ValueOf(key, 222, 1, salt));
    }
    a.Subtract(b);
    std::vector<Iblt::Entry> found;
    EXPECT_TRUE(a.Peel(&found)) << "salt " << salt;
    EXPECT_EQ(found.size(), 1000u) << "salt " << salt;
  }
}

// A table sized for an estimate 30% low does not peel; a second, smaller one over the same keys
// under other cells lets the two peel together, for less than a table twice as large.
TEST(Iblt, TablesOfTheSameKeysPeelTogether) {
  std::mt19937_64 rng(6);
  int alone = 0, together = 0;
  for (int t = 0; t < 20; ++t) {
    Replicas r = Make(rng, 3000, 150, 150, 700);  // 1,000 differing keys
    const std::uint64_t salt = rng();
    auto difference = [&](std::size_t cells, std::uint64_t cell_salt) {
      Iblt a(cells, cell_salt), b(cells, cell_salt);
      for (const auto& [k, v] : r.a) a.Add(k, v);
      for (const auto& [k, v] : r.b) b.Add(k, v);
      a.Subtract(b);
      return a;
    };
    std::vector<Iblt> tables;
    tables.push_back(difference(Iblt::CellsFor(700), salt));
    std::vector<Iblt::Entry> found;
    alone += Iblt::PeelTogether(tables, &found);
    tables.push_back(difference(Iblt::CellsFor(700) * 7 / 10, salt + 1));
    for (const auto& e : found) tables.back().Remove(e);
    if (Iblt::PeelTogether(tables, &found)) {
      ++together;
      std::set<std::uint32_t> ids;
      for (const auto& e : found) ids.insert(e.key);
      EXPECT_EQ(found.size(), 1000u);
      EXPECT_EQ(ids.size(), 1000u);  // each once
    }
  }
  EXPECT_LE(alone, 2);
  EXPECT_GE(together, 19);
}

TEST(Iblt, ATableTooSmallSaysSo) {
  std::mt19937_64 rng(2);
  Replicas r = Make(rng, 100, 300, 300, 400);
  EXPECT_FALSE(Reconciles(r, 200, 7));
  // The same replicas in a table large enough.
  EXPECT_TRUE(Reconciles(r, Iblt::CellsFor(1000), 7));
}

TEST(Iblt, IdsDependOnTheSaltAndFitTheirBits) {
  EXPECT_NE(Iblt::KeyOf("k", 1), Iblt::KeyOf("k", 2));
  EXPECT_EQ(Iblt::KeyOf("k", 1), Iblt::KeyOf("k", 1));
  for (int i = 0; i < 1000; ++i) {
    EXPECT_LE(Iblt::KeyOf("key" + std::to_string(i), 5), kIdMask);
  }
}

TEST(Iblt, VersionValuesAreNonzeroAndCarryTheirDots) {
  std::mt19937_64 rng(4);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t dots = rng() % 5000;
    const std::uint64_t v = Iblt::ValueOf("k", rng(), dots, rng());
    EXPECT_GT(v, 0u);
    EXPECT_LE(v, std::uint64_t{1} << 39);
    const std::uint64_t w = Iblt::ValueOf("k", rng(), dots + 1 + rng() % 100, rng());
    EXPECT_GT(Iblt::MoreDots(w, v), 0);
    EXPECT_LT(Iblt::MoreDots(v, w), 0);
    EXPECT_EQ(Iblt::MoreDots(v, Iblt::ValueOf("k", rng(), dots, rng())), 0);
  }
  // The digest decides the rest of the value, under the salt.
  EXPECT_NE(Iblt::ValueOf("k", 1, 3, 7), Iblt::ValueOf("k", 2, 3, 7));
  EXPECT_NE(Iblt::ValueOf("k", 1, 3, 7), Iblt::ValueOf("k", 1, 3, 8));
  // Absent on the other side: its value is 0.
  EXPECT_EQ(Iblt::Other(12345, 12345), 0u);
  EXPECT_EQ(Iblt::Other(0, Iblt::kPrime - 77), 77u);
}

TEST(Iblt, EncodingRoundTripsAndRejectsWhatIsNotATable) {
  Iblt t(100, 3);
  for (std::uint32_t x = 1; x < 50; ++x) t.Add(x * 7919, x * 104729);
  const std::string bytes = t.Encode();
  EXPECT_EQ(bytes.size(), t.cells() * Iblt::kCellBytes);
  Iblt u(100, 3);
  ASSERT_TRUE(u.Decode(bytes));
  EXPECT_EQ(u.Encode(), bytes);
  EXPECT_FALSE(u.Decode(bytes.substr(1)));
  EXPECT_FALSE(u.Decode(bytes + "x"));
  std::string big = bytes;
  for (int i = 0; i < 5; ++i) big[static_cast<std::size_t>(i)] = '\xff';  // S >= the prime
  EXPECT_FALSE(u.Decode(big));
  EXPECT_EQ(u.Encode(), bytes);  // unchanged by the refused ones
  EXPECT_GE(Iblt(1, 3).cells(), Iblt::kMinCells);
  EXPECT_EQ(Iblt(100, 3).cells() % Iblt::kHashes, 0u);
}

TEST(Iblt, PeelingATableOfNoiseEndsAndSaysSo) {
  std::mt19937_64 rng(5);
  for (int t = 0; t < 200; ++t) {
    Iblt table(300, rng());
    std::string bytes(table.cells() * Iblt::kCellBytes, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 256);
    // Keep each field a residue so that the table decodes.
    for (std::size_t o = 4; o < bytes.size(); o += 5) bytes[o] = static_cast<char>(rng() % 0xff);
    ASSERT_TRUE(table.Decode(bytes));
    std::vector<Iblt::Entry> found;
    EXPECT_FALSE(table.Peel(&found));
    EXPECT_LE(found.size(), table.cells() * Iblt::kHashes);
  }
}

}  // namespace
}  // namespace kv::repair
