#include "membership/phi_accrual.h"

#include <algorithm>
#include <cmath>

#include "membership/check.h"

namespace kv::membership {

PhiAccrual::PhiAccrual(std::size_t window)
    : window_(static_cast<std::uint16_t>(std::clamp<std::size_t>(window, 1, kMaxWindow))) {}

void PhiAccrual::Arrival(Time at) {
  if (has_last_ && at > last_) {
    const float sample = static_cast<float>((at - last_).count());
    // Summed as stored, so that evicting a sample subtracts exactly what was added.
    const auto stored = static_cast<std::int64_t>(sample);
    if (!ring_) ring_ = std::make_unique<float[]>(window_);
    if (count_ < window_) {
      ring_[count_++] = sample;
    } else {
      sum_ -= static_cast<std::int64_t>(ring_[next_]);
      ring_[next_] = sample;
      next_ = static_cast<std::uint16_t>((next_ + 1) % window_);
    }
    sum_ += stored;
  }
  if (!has_last_ || at > last_) last_ = at;
  has_last_ = true;
  KV_MEMBERSHIP_CHECK(sum_ >= 0);
}

Duration PhiAccrual::Mean() const {
  if (count_ == 0) return Duration(0);
  return Duration(sum_ / static_cast<std::int64_t>(count_));
}

double PhiAccrual::Phi(Time now) const {
  if (count_ == 0 || now <= last_) return 0;
  const double mean = static_cast<double>(sum_) / static_cast<double>(count_);
  const double silence = static_cast<double>((now - last_).count());
  return silence / (mean * std::log(10.0));
}

}  // namespace kv::membership
