// Zipfian key choice for `kvtool bench`. Pure; thread-compatible.
#pragma once

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

namespace kv::tools {

// Zipfian ranks in [0, n) with skew theta, by the method of Gray et al., "Quickly generating
// billion-record synthetic databases" (SIGMOD 1994): rank 0 is the most popular. The ranks are
// then scattered over the key space (a hash), so that the hot keys do not sit side by side.
class Zipfian {
 public:
  Zipfian(std::uint64_t n, double theta) : n_(n), theta_(theta) {
    for (std::uint64_t i = 1; i <= n; ++i) zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
    half_pow_theta_ = 1.0 + std::pow(0.5, theta);
  }

  template <typename Rng>
  std::uint64_t Next(Rng& rng) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const double uz = u * zetan_;
    std::uint64_t rank = 0;
    if (uz < 1.0) {
      rank = 0;
    } else if (uz < half_pow_theta_) {
      rank = 1;
    } else {
      rank = static_cast<std::uint64_t>(static_cast<double>(n_) *
                                        std::pow(eta_ * u - eta_ + 1.0, alpha_));
    }
    return std::min(rank, n_ - 1);
  }

  // Where rank r lives in [0, n): a fixed scattering (not a permutation; collisions only shift
  // some popularity between keys).
  std::uint64_t Scatter(std::uint64_t r) const { return XXH3_64bits(&r, sizeof r) % n_; }

 private:
  std::uint64_t n_;
  double theta_;
  double zetan_ = 0, alpha_ = 0, eta_ = 0, half_pow_theta_ = 0;
};

}  // namespace kv::tools
