// PhiAccrual: the phi accrual suspicion level of one peer (Hayashibara et al., 2004).
//
// Fed with the times at which acks from the peer arrived, it answers "how unlikely is it that
// the peer is still alive, given how long it has been silent?" as phi = -log10(P(silence this
// long)). Inter-arrival times are modelled as exponential, as Cassandra does: acks arrive only
// when this node happens to probe the peer, which is closer to a Poisson process than to a
// regular heartbeat. Then phi = -log10(1 - CDF(t)) = t / (mean * ln 10). A phi of 1 means a 10%
// chance of a false alarm, 2 means 1%, and so on. Only a reading for `kvtool status`: SWIM, not
// phi, decides liveness.
//
// Size: every node keeps one per peer it has probed, so a simulated 10,000-node cluster holds
// millions of them. The object is 32 bytes; the sample window is allocated at the first sample,
// as 32-bit floats of microseconds: exact up to 2^24 us (16.7 s) and within 6e-8 relative beyond,
// far finer than probe scheduling. A window of 100 exponential samples gives the mean to about
// +-10% (1/sqrt(100)).
//
// Invariants: at most `window` samples are kept (the oldest go first); every sample is > 0;
// sum_ is the exact sum of the kept samples as stored. Value type (move-only),
// thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "membership/membership.h"

namespace kv::membership {

class PhiAccrual {
 public:
  static constexpr std::size_t kDefaultWindow = 100;
  static constexpr std::size_t kMaxWindow = 65535;

  // `window` is clamped to [1, kMaxWindow].
  explicit PhiAccrual(std::size_t window = kDefaultWindow);

  // An ack from the peer arrived at `at`. Times must not go backwards; an arrival at the same
  // time as the previous one adds no sample.
  void Arrival(Time at);

  // The suspicion level at `now`: 0 without at least one inter-arrival sample.
  double Phi(Time now) const;

  // Mean inter-arrival time of the kept samples (0 without samples).
  Duration Mean() const;
  std::size_t samples() const { return count_; }
  // Whether any arrival was seen.
  bool heard() const { return has_last_; }

 private:
  Time last_{0};
  std::int64_t sum_ = 0;
  std::unique_ptr<float[]> ring_;  // `window_` slots from the first sample; wraps once full
  std::uint16_t window_;
  std::uint16_t count_ = 0;  // samples kept
  std::uint16_t next_ = 0;   // where the next sample goes once full
  bool has_last_ = false;
};

}  // namespace kv::membership
