// Iblt (repair/iblt.h) against a set model: the difference of two tables lists exactly the
// items each side lacks, across sizes, at the table sizes CellsFor gives; a table too small
// says so; the encoding round-trips and rejects the wrong size.
#include "repair/iblt.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace kv::repair {
namespace {

struct Sets {
  std::vector<std::uint32_t> common, only_a, only_b;
};

Sets MakeSets(std::mt19937_64& rng, std::size_t common, std::size_t a, std::size_t b) {
  std::set<std::uint32_t> used;
  auto fresh = [&] {
    std::uint32_t x;
    do x = static_cast<std::uint32_t>(rng());
    while (!used.insert(x).second);
    return x;
  };
  Sets s;
  for (std::size_t i = 0; i < common; ++i) s.common.push_back(fresh());
  for (std::size_t i = 0; i < a; ++i) s.only_a.push_back(fresh());
  for (std::size_t i = 0; i < b; ++i) s.only_b.push_back(fresh());
  return s;
}

// Peels table(a) - table(b); true when it lists exactly only_a and only_b.
bool Reconciles(const Sets& s, std::size_t cells, std::uint64_t salt) {
  Iblt ta(cells, salt), tb(cells, salt);
  for (auto x : s.common) {
    ta.Add(x);
    tb.Add(x);
  }
  for (auto x : s.only_a) ta.Add(x);
  for (auto x : s.only_b) tb.Add(x);
  // Across the wire, as the exchange does.
  Iblt received(cells, salt);
  EXPECT_TRUE(received.Decode(tb.Encode()));
  ta.Subtract(received);
  std::vector<std::uint32_t> mine, theirs;
  const bool ok = ta.Peel(&mine, &theirs);
  std::sort(mine.begin(), mine.end());
  std::sort(theirs.begin(), theirs.end());
  auto a = s.only_a, b = s.only_b;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (ok) {
    EXPECT_EQ(mine, a);
    EXPECT_EQ(theirs, b);
  }
  return ok && mine == a && theirs == b;
}

TEST(Iblt, ListsExactlyTheDifferenceAtTheSizesCellsForGives) {
  std::mt19937_64 rng(1);
  for (std::size_t d : {0, 1, 2, 5, 10, 30, 100, 300, 1000, 3000}) {
    int failures = 0;
    const int trials = d >= 1000 ? 20 : 100;
    for (int t = 0; t < trials; ++t) {
      const std::size_t a = d == 0 ? 0 : rng() % (d + 1);
      Sets s = MakeSets(rng, 2000, a, d - a);
      failures += !Reconciles(s, Iblt::CellsFor(d), rng());
    }
    // The exchange retries a failed table at twice the size; failures must be rare.
    EXPECT_LE(failures, trials / 20) << d << " differing items";
  }
}

TEST(Iblt, ATableTooSmallSaysSo) {
  std::mt19937_64 rng(2);
  Sets s = MakeSets(rng, 100, 500, 500);
  EXPECT_FALSE(Reconciles(s, 200, 7));
  // The same sets in a table large enough.
  EXPECT_TRUE(Reconciles(s, Iblt::CellsFor(1000), 7));
}

TEST(Iblt, ItemsDependOnTheSalt) {
  EXPECT_NE(Iblt::ItemOf(42, 1), Iblt::ItemOf(42, 2));
  EXPECT_EQ(Iblt::ItemOf(42, 1), Iblt::ItemOf(42, 1));
}

TEST(Iblt, EncodingRoundTripsAndRejectsTheWrongSize) {
  Iblt t(100, 3);
  for (std::uint32_t x = 1; x < 50; ++x) t.Add(x * 7919);
  const std::string bytes = t.Encode();
  EXPECT_EQ(bytes.size(), t.cells() * Iblt::kCellBytes);
  Iblt u(100, 3);
  ASSERT_TRUE(u.Decode(bytes));
  EXPECT_EQ(u.Encode(), bytes);
  EXPECT_FALSE(u.Decode(bytes.substr(1)));
  EXPECT_FALSE(u.Decode(bytes + "x"));
  EXPECT_EQ(u.Encode(), bytes);  // unchanged by the refused ones
  EXPECT_GE(Iblt(1, 3).cells(), Iblt::kMinCells);
  EXPECT_EQ(Iblt(100, 3).cells() % Iblt::kHashes, 0u);
}

}  // namespace
}  // namespace kv::repair
