// PacerState (rpc/pacer.h): the byte bucket that paces repair and movement copies step by step.
#include "rpc/pacer.h"

#include <gtest/gtest.h>

namespace kv::rpc {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

TEST(Pacer, UnlimitedNeverWaits) {
  PacerState p;
  EXPECT_EQ(p.Account(0, std::uint64_t{1} << 40), 0);
  EXPECT_EQ(p.Account(1, std::uint64_t{1} << 40), 0);
}

TEST(Pacer, ABurstGoesAtOnceAndWhatFollowsWaitsForTheRate) {
  PacerState p{.rate = 1000, .burst = 500};
  EXPECT_EQ(p.Account(0, 300), 0);
  EXPECT_EQ(p.Account(0, 200), 0);  // the burst is spent
  // 250 bytes more at the same instant: a quarter of a second at 1,000 bytes a second.
  const std::int64_t wait = p.Account(0, 250);
  EXPECT_NEAR(static_cast<double>(wait), 0.25 * kSecond, 1e3);
  // Stepping as told, a long transfer keeps to the rate: 100 steps of 100 bytes take 10 s.
  std::int64_t now = wait;
  for (int i = 0; i < 100; ++i) now += p.Account(now, 100);
  EXPECT_NEAR(static_cast<double>(now), 10.25 * kSecond, 0.01 * kSecond);
}

TEST(Pacer, IdleTimeRefillsOnlyUpToTheBurst) {
  PacerState p{.rate = 1000, .burst = 500};
  EXPECT_EQ(p.Account(0, 500), 0);
  // An hour idle earns 500 bytes, not 3.6 million: the next large step still waits.
  EXPECT_EQ(p.Account(3600 * kSecond, 500), 0);
  EXPECT_NEAR(static_cast<double>(p.Account(3600 * kSecond, 1000)), 1.0 * kSecond, 1e3);
}

TEST(Pacer, ALargeStepWaitsInProportion) {
  PacerState p{.rate = std::uint64_t{4} << 20, .burst = std::uint64_t{64} << 10};
  // A 4 MiB step after the burst is owed for about a second.
  EXPECT_NEAR(static_cast<double>(p.Account(0, (std::uint64_t{4} << 20) + (64 << 10))),
              1.0 * kSecond, 1e3);
}

}  // namespace
}  // namespace kv::rpc
