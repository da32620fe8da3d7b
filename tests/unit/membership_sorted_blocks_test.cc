// SortedBlocks against a std::set model: random inserts and erases, checked in order after
// every step, across block splits and block removals.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "membership/sorted_blocks.h"

namespace kv::membership {
namespace {

struct Less {
  bool operator()(std::uint64_t a, std::uint64_t b) const { return a < b; }
};

std::vector<std::uint64_t> Contents(const SortedBlocks<std::uint64_t, Less>& s) {
  std::vector<std::uint64_t> out;
  s.ForEach([&](std::uint64_t v) {
    out.push_back(v);
    return true;
  });
  return out;
}

TEST(SortedBlocks, MatchesASetModel) {
  std::mt19937_64 rng(5);
  SortedBlocks<std::uint64_t, Less> s;
  std::set<std::uint64_t> model;
  // Grow well past several block splits, then shrink to nothing, twice; the key range is small
  // enough that erases hit often.
  for (int round = 0; round < 2; ++round) {
    for (int phase = 0; phase < 2; ++phase) {
      const int insert_percent = phase == 0 ? 80 : 20;
      for (int step = 0; step < 3000; ++step) {
        const std::uint64_t v = rng() % 2000;
        const bool insert = static_cast<int>(rng() % 100) < insert_percent;
        if (insert && model.count(v) == 0) {
          s.Insert(v);
          model.insert(v);
        } else if (!insert && model.count(v) != 0) {
          s.Erase(v);
          model.erase(v);
        }
        ASSERT_EQ(s.size(), model.size());
        ASSERT_EQ(s.empty(), model.empty());
        if (!model.empty()) {
          ASSERT_EQ(s.front(), *model.begin());
        }
        if (step % 97 == 0) {
          ASSERT_EQ(Contents(s), std::vector<std::uint64_t>(model.begin(), model.end()));
        }
      }
      ASSERT_EQ(Contents(s), std::vector<std::uint64_t>(model.begin(), model.end()));
    }
  }
}

TEST(SortedBlocks, ForEachStopsWhenAsked) {
  SortedBlocks<std::uint64_t, Less> s;
  for (std::uint64_t v = 1000; v > 0; --v) s.Insert(v);  // descending: splits at the front
  std::vector<std::uint64_t> seen;
  s.ForEach([&](std::uint64_t v) {
    seen.push_back(v);
    return seen.size() < 300;
  });
  ASSERT_EQ(seen.size(), 300u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
}

}  // namespace
}  // namespace kv::membership
