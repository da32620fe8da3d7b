#include "membership/phi_accrual.h"

#include <algorithm>
#include <cmath>

#include "membership/check.h"

namespace kv::membership {

PhiAccrual::PhiAccrual(std::size_t window) : window_(std::max<std::size_t>(window, 1)) {}

void PhiAccrual::Arrival(Time at) {
  if (has_last_ && at > last_) {
    const Duration::rep interval = (at - last_).count();
    if (ring_.size() < window_) {
      ring_.push_back(interval);
      ++count_;
    } else {
      sum_ -= ring_[next_];
      ring_[next_] = interval;
      next_ = (next_ + 1) % window_;
    }
    sum_ += interval;
  }
  if (!has_last_ || at > last_) last_ = at;
  has_last_ = true;
  KV_MEMBERSHIP_CHECK(sum_ >= 0);
}

Duration PhiAccrual::Mean() const {
  if (count_ == 0) return Duration(0);
  return Duration(sum_ / static_cast<Duration::rep>(count_));
}

double PhiAccrual::Phi(Time now) const {
  if (count_ == 0 || now <= last_) return 0;
  const double mean = static_cast<double>(sum_) / static_cast<double>(count_);
  const double silence = static_cast<double>((now - last_).count());
  return silence / (mean * std::log(10.0));
}

}  // namespace kv::membership
