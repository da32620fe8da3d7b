// Lifeguard and dissemination arithmetic, by tables of cases; and the phi accrual detector.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "membership/lifeguard.h"
#include "membership/phi_accrual.h"
#include "membership/rng.h"

namespace kv::membership {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(Lifeguard, SuspicionMinTimeoutScalesWithLogN) {
  struct Case {
    int mult;
    std::size_t n;
    Duration interval;
    Duration want;
  };
  const Case cases[] = {
      {4, 1, seconds(1), seconds(4)},  // clusters below 10 count as 10
      {4, 3, seconds(1), seconds(4)},
      {4, 10, seconds(1), seconds(4)},
      {4, 100, seconds(1), seconds(8)},
      {4, 1000, seconds(1), seconds(12)},
      {5, 100, milliseconds(200), seconds(2)},
      {4, 50, seconds(1), Duration(static_cast<Duration::rep>(4e6 * std::log10(50.0)))},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lifeguard::SuspicionMinTimeout(c.mult, c.n, c.interval), c.want)
        << "mult " << c.mult << " n " << c.n;
  }
}

TEST(Lifeguard, ExpectedConfirmations) {
  struct Case {
    int k;
    std::size_t n;
    int want;
  };
  const Case cases[] = {
      {3, 0, 0}, {3, 1, 0}, {3, 2, 0}, {3, 3, 1}, {3, 4, 2}, {3, 5, 3}, {3, 100, 3}, {0, 100, 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lifeguard::ExpectedConfirmations(c.k, c.n), c.want) << "k " << c.k << " n " << c.n;
  }
}

// memberlist's formula: max - (max - min) * log(C + 1) / log(K + 1), floored at min.
TEST(Lifeguard, SuspicionTimeoutDecaysWithConfirmations) {
  const Duration min = seconds(4);
  const Duration max = seconds(24);
  struct Case {
    int k;
    int c;
    Duration want;
  };
  const Case cases[] = {
      {3, 0, seconds(24)},
      {3, 1, seconds(14)},  // log 2 / log 4 = 1/2
      {3, 2, Duration(static_cast<Duration::rep>(24e6 - 20e6 * std::log(3.0) / std::log(4.0)))},
      {3, 3, seconds(4)},
      {3, 7, seconds(4)},    // more confirmations than expected: still the floor
      {3, -1, seconds(24)},  // nonsense counts clamp
      {1, 0, seconds(24)},
      {1, 1, seconds(4)},
      {0, 0, seconds(4)},  // nobody can confirm: the floor from the start
      {0, 5, seconds(4)},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lifeguard::SuspicionTimeout(min, max, c.k, c.c), c.want)
        << "k " << c.k << " c " << c.c;
  }
  // Monotone: each confirmation shortens it, never below the floor.
  for (int k = 1; k <= 8; ++k) {
    Duration prev = lifeguard::SuspicionTimeout(min, max, k, 0);
    EXPECT_EQ(prev, max);
    for (int c = 1; c <= k; ++c) {
      const Duration t = lifeguard::SuspicionTimeout(min, max, k, c);
      EXPECT_LT(t, prev) << "k " << k << " c " << c;
      EXPECT_GE(t, min);
      prev = t;
    }
    EXPECT_EQ(prev, min);
  }
  // max <= min: no room to decay.
  EXPECT_EQ(lifeguard::SuspicionTimeout(seconds(5), seconds(5), 3, 0), seconds(5));
}

TEST(Lifeguard, SuspicionMaxTimeout) {
  EXPECT_EQ(lifeguard::SuspicionMaxTimeout(6, seconds(4)), seconds(24));
  EXPECT_EQ(lifeguard::SuspicionMaxTimeout(1, seconds(4)), seconds(4));
  EXPECT_EQ(lifeguard::SuspicionMaxTimeout(0, seconds(4)), seconds(4));
}

TEST(Lifeguard, RetransmitLimit) {
  struct Case {
    int mult;
    std::size_t n;
    int want;
  };
  const Case cases[] = {
      {4, 0, 1},  {4, 1, 4},    {4, 2, 4},     {4, 9, 4},      {4, 10, 8},
      {4, 99, 8}, {4, 100, 12}, {3, 1000, 12}, {4, 10000, 20}, {1, 5, 1},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lifeguard::RetransmitLimit(c.mult, c.n), c.want) << "mult " << c.mult << " n " << c.n;
  }
}

TEST(Lifeguard, HealthScoreClampsAndScales) {
  struct Case {
    int score;
    int delta;
    int max;
    int want;
  };
  const Case cases[] = {
      {0, 1, 8, 1}, {0, -1, 8, 0}, {7, 1, 8, 8},  {8, 1, 8, 8}, {8, -1, 8, 7},
      {2, 3, 8, 5}, {5, 9, 8, 8},  {3, -9, 8, 0}, {0, 1, 0, 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lifeguard::ApplyHealthDelta(c.score, c.delta, c.max), c.want)
        << c.score << " + " << c.delta;
  }
  EXPECT_EQ(lifeguard::ScaleByHealth(milliseconds(500), 0), milliseconds(500));
  EXPECT_EQ(lifeguard::ScaleByHealth(milliseconds(500), 1), milliseconds(1000));
  EXPECT_EQ(lifeguard::ScaleByHealth(seconds(1), 8), seconds(9));
}

TEST(Lifeguard, PushPullIntervalStretchesAbove32) {
  struct Case {
    std::size_t n;
    int mult;
  };
  const Case cases[] = {{1, 1},  {32, 1},  {33, 2},   {64, 2},
                        {65, 3}, {128, 3}, {1000, 6}, {10000, 10}};
  for (const Case& c : cases) {
    EXPECT_EQ(lifeguard::PushPullInterval(seconds(30), c.n), seconds(30) * c.mult) << "n " << c.n;
  }
}

TEST(PhiAccrual, ZeroWithoutData) {
  PhiAccrual phi;
  EXPECT_EQ(phi.Phi(seconds(100)), 0);
  phi.Arrival(seconds(1));
  EXPECT_EQ(phi.Phi(seconds(100)), 0);  // one arrival is no interval yet
  EXPECT_EQ(phi.samples(), 0u);
}

// Exponential model: phi(t) = t / (mean * ln 10).
TEST(PhiAccrual, GrowsLinearlyWithSilence) {
  PhiAccrual phi;
  for (int i = 0; i <= 10; ++i) phi.Arrival(seconds(i));
  EXPECT_EQ(phi.samples(), 10u);
  EXPECT_EQ(phi.Mean(), seconds(1));
  EXPECT_EQ(phi.Phi(seconds(10)), 0);
  EXPECT_NEAR(phi.Phi(seconds(11)), 1 / std::log(10.0), 1e-9);
  EXPECT_NEAR(phi.Phi(seconds(13)), 3 / std::log(10.0), 1e-9);
  // P(silence >= 10 * ln 10 mean) = 1e-10: phi 10.
  EXPECT_NEAR(phi.Phi(seconds(10) + Duration(static_cast<Duration::rep>(10e6 * std::log(10.0)))),
              10, 1e-6);
}

TEST(PhiAccrual, WindowKeepsTheNewestSamples) {
  PhiAccrual phi(4);
  Time t{0};
  phi.Arrival(t);
  for (int i = 0; i < 10; ++i) phi.Arrival(t += seconds(10));  // old regime: every 10 s
  for (int i = 0; i < 4; ++i) phi.Arrival(t += seconds(1));    // new regime: every second
  EXPECT_EQ(phi.samples(), 4u);
  EXPECT_EQ(phi.Mean(), seconds(1));
  // Duplicate and out-of-order arrivals add nothing.
  phi.Arrival(t);
  phi.Arrival(t - seconds(5));
  EXPECT_EQ(phi.samples(), 4u);
  EXPECT_EQ(phi.Mean(), seconds(1));
}

// Samples are kept as 32-bit floats of microseconds: exact below 2^24 us (16.7 s), and within
// 6e-8 relative above, as between probes of one peer in a 10,000-node cluster (about 10^4 s).
// Evicting a sample takes away exactly what adding it put in, however long the run.
TEST(PhiAccrual, LongIntervalsKeepTheirPrecision) {
  PhiAccrual phi(8);
  Time t{0};
  phi.Arrival(t);
  const Duration odd(16'777'217);  // 2^24 + 1 us: the first interval a float cannot hold
  for (int i = 0; i < 8; ++i) phi.Arrival(t += odd);
  EXPECT_LE(std::abs((phi.Mean() - odd).count()), 1);
  const Duration hours(std::chrono::hours(3) + Duration(123'457));
  for (int i = 0; i < 1000; ++i) phi.Arrival(t += hours);  // wraps the window 125 times
  EXPECT_EQ(phi.samples(), 8u);
  EXPECT_NEAR(static_cast<double>(phi.Mean().count()), static_cast<double>(hours.count()),
              hours.count() * 1e-7);
  EXPECT_NEAR(phi.Phi(t + hours), 1 / std::log(10.0), 1e-6);
  // Back to one-second intervals: once the window is refilled, the old regime is gone exactly.
  for (int i = 0; i < 8; ++i) phi.Arrival(t += seconds(1));
  EXPECT_EQ(phi.Mean(), seconds(1));
}

TEST(Rng, ReplaysFromSeedAndIsUnbiasedEnough) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const auto x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
  }
  EXPECT_TRUE(differs);
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 30000; ++i) ++counts[a.Uniform(3)];
  for (int k : counts) EXPECT_NEAR(k, 10000, 500);
  std::vector<int> v = {1, 2, 3, 4, 5, 6, 7, 8};
  a.Shuffle(v);
  std::vector<int> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
}

}  // namespace
}  // namespace kv::membership
