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
// Invariants: at most `window` samples are kept (the oldest go first); every sample is > 0;
// sum_ is their sum. Value type, thread-compatible.
#pragma once

#include <cstddef>
#include <vector>

#include "membership/membership.h"

namespace kv::membership {

class PhiAccrual {
 public:
  static constexpr std::size_t kDefaultWindow = 100;

  explicit PhiAccrual(std::size_t window = kDefaultWindow);

  // An ack from the peer arrived at `at`. Times must not go backwards; an arrival at the same
  // time as the previous one adds no sample.
  void Arrival(Time at);

  // The suspicion level at `now`: 0 without at least one inter-arrival sample.
  double Phi(Time now) const;

  // Mean inter-arrival time of the kept samples (0 without samples).
  Duration Mean() const;
  std::size_t samples() const { return count_; }

 private:
  std::size_t window_;
  std::vector<Duration::rep> ring_;  // inter-arrival times; grows to `window_`, then wraps
  std::size_t next_ = 0;             // where the next sample goes once full
  std::size_t count_ = 0;            // == ring_.size()
  Duration::rep sum_ = 0;
  bool has_last_ = false;
  Time last_{0};
};

}  // namespace kv::membership
