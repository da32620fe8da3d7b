// CausalContext against a model: a std::set of dots.
#include "storage/causal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace kv::storage {
namespace {

TEST(CausalContext, AddCompactsContiguousDots) {
  CausalContext c;
  c.Add({7, 2});
  EXPECT_TRUE(c.Contains({7, 2}));
  EXPECT_FALSE(c.Contains({7, 1}));
  EXPECT_EQ(c.cloud().size(), 1u);
  c.Add({7, 1});
  EXPECT_TRUE(c.cloud().empty());
  EXPECT_EQ(c.vv().at(7), 2u);
  EXPECT_EQ(c.MaxCounter(7), 2u);
  EXPECT_EQ(c.MaxCounter(8), 0u);
}

TEST(CausalContext, MaxCounterSeesTheCloud) {
  CausalContext c;
  c.Add({5, 1});
  c.Add({5, 9});
  c.Add({6, 3});
  EXPECT_EQ(c.MaxCounter(5), 9u);
  EXPECT_EQ(c.MaxCounter(6), 3u);
  EXPECT_EQ(c.MaxCounter(4), 0u);
  c.Add({UINT64_MAX, 4});
  EXPECT_EQ(c.MaxCounter(UINT64_MAX), 4u);
}

// Random adds and joins agree with plain sets of dots; equal sets give equal contexts.
TEST(CausalContext, MatchesSetModel) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 300; ++round) {
    CausalContext a, b;
    std::set<Dot> ma, mb;
    for (int i = 0; i < 40; ++i) {
      Dot d{1 + rng() % 3, 1 + rng() % 12};
      if (rng() % 2) {
        a.Add(d);
        ma.insert(d);
      } else {
        b.Add(d);
        mb.insert(d);
      }
    }
    CausalContext j = a;
    j.Join(b);
    std::set<Dot> mj = ma;
    mj.insert(mb.begin(), mb.end());
    for (NodeId n = 1; n <= 3; ++n) {
      for (std::uint64_t c = 1; c <= 13; ++c) {
        ASSERT_EQ(j.Contains({n, c}), mj.count({n, c}) == 1) << "seed round " << round;
        ASSERT_EQ(a.Contains({n, c}), ma.count({n, c}) == 1);
      }
    }
    // Canonical: building the same set in another order yields an equal value.
    CausalContext k;
    for (auto it = mj.rbegin(); it != mj.rend(); ++it) k.Add(*it);
    ASSERT_EQ(j, k);
  }
}

TEST(CausalContext, FromPartsRejectsNonCanonical) {
  CausalContext c;
  EXPECT_FALSE(CausalContext::FromParts({{1, 0}}, {}, &c));        // zero counter
  EXPECT_FALSE(CausalContext::FromParts({{1, 3}}, {{1, 2}}, &c));  // covered dot
  EXPECT_FALSE(CausalContext::FromParts({{1, 3}}, {{1, 4}}, &c));  // adjacent dot
  EXPECT_FALSE(CausalContext::FromParts({}, {{1, 1}}, &c));        // adjacent to empty
  EXPECT_TRUE(CausalContext::FromParts({{1, 3}}, {{1, 5}, {2, 7}}, &c));
  EXPECT_TRUE(c.Contains({2, 7}));
}

}  // namespace
}  // namespace kv::storage

namespace kv::storage {
namespace {

TEST(CausalContext, IncludesMatchesSetInclusion) {
  std::mt19937_64 rng(5);
  for (int round = 0; round < 2000; ++round) {
    std::set<Dot> sa, sb;
    CausalContext a, b;
    for (int i = 0; i < 12; ++i) {
      Dot d{1 + rng() % 3, 1 + rng() % 8};
      sa.insert(d);
      a.Add(d);
      if (rng() % 3 != 0) {  // b mostly a subset of a, sometimes not
        sb.insert(d);
        b.Add(d);
      }
    }
    if (rng() % 4 == 0) {
      Dot d{1 + rng() % 3, 1 + rng() % 10};
      sb.insert(d);
      b.Add(d);
    }
    const bool subset = std::includes(sa.begin(), sa.end(), sb.begin(), sb.end());
    EXPECT_EQ(a.Includes(b), subset) << round;
    EXPECT_TRUE(a.Includes(a));
    EXPECT_TRUE(a.Includes(CausalContext()));
  }
}

}  // namespace
}  // namespace kv::storage
