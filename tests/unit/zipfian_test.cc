// tools/zipfian.h: ranks follow a Zipf law with skew 0.99, stay in range, and scatter.
#include "tools/zipfian.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace kv::tools {
namespace {

TEST(Zipfian, RanksFollowZipfAndStayInRange) {
  const std::uint64_t n = 1000;
  Zipfian z(n, 0.99);
  std::mt19937_64 rng(3);
  std::vector<std::uint64_t> count(n, 0);
  const int samples = 200000;
  for (int i = 0; i < samples; ++i) {
    const std::uint64_t r = z.Next(rng);
    ASSERT_LT(r, n);
    ++count[r];
  }
  // P(rank 0) = 1 / zeta(1000, 0.99) ~ 0.134; P(rank 1) ~ half of it; the top tenth of the
  // ranks draws most samples (a uniform choice would give them a tenth).
  EXPECT_NEAR(count[0] / double(samples), 0.134, 0.015);
  EXPECT_NEAR(count[1] / double(count[0]), 0.5, 0.06);
  std::uint64_t top = 0;
  for (std::uint64_t r = 0; r < n / 10; ++r) top += count[r];
  EXPECT_GT(top / double(samples), 0.6);
  // Scattering keeps keys in range and spreads the hottest ranks apart.
  std::vector<std::uint64_t> hot;
  for (std::uint64_t r = 0; r < 5; ++r) {
    hot.push_back(z.Scatter(r));
    EXPECT_LT(hot.back(), n);
  }
  std::sort(hot.begin(), hot.end());
  EXPECT_GT(hot.back() - hot.front(), 5u);
}

}  // namespace
}  // namespace kv::tools
