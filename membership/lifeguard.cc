#include "membership/lifeguard.h"

#include <algorithm>
#include <cmath>

namespace kv::membership::lifeguard {

Duration SuspicionMinTimeout(int suspicion_mult, std::size_t n, Duration probe_interval) {
  const double scale = std::log10(static_cast<double>(std::max<std::size_t>(n, 10)));
  const double us =
      static_cast<double>(suspicion_mult) * scale * static_cast<double>(probe_interval.count());
  return Duration(static_cast<Duration::rep>(std::floor(us)));
}

Duration SuspicionMaxTimeout(int suspicion_max_mult, Duration min) {
  return min * std::max(suspicion_max_mult, 1);
}

int ExpectedConfirmations(int indirect_probes, std::size_t n) {
  const long long others = static_cast<long long>(n) - 2;
  return static_cast<int>(std::max(0LL, std::min<long long>(indirect_probes, others)));
}

Duration SuspicionTimeout(Duration min, Duration max, int expected, int confirmations) {
  if (expected < 1 || max <= min) return min;
  const int c = std::clamp(confirmations, 0, expected);
  const double frac =
      std::log(static_cast<double>(c) + 1) / std::log(static_cast<double>(expected) + 1);
  const double raw =
      static_cast<double>(max.count()) - frac * static_cast<double>((max - min).count());
  const Duration timeout(static_cast<Duration::rep>(std::floor(raw)));
  return std::max(timeout, min);
}

int RetransmitLimit(int retransmit_mult, std::size_t n) {
  const double scale = std::ceil(std::log10(static_cast<double>(n) + 1));
  return std::max(1, retransmit_mult * static_cast<int>(scale));
}

int ApplyHealthDelta(int score, int delta, int awareness_max) {
  return std::clamp(score + delta, 0, std::max(awareness_max, 0));
}

Duration ScaleByHealth(Duration d, int score) { return d * (score + 1); }

Duration PushPullInterval(Duration base, std::size_t n) {
  constexpr std::size_t kThreshold = 32;
  if (n <= kThreshold) return base;
  const double mult =
      std::ceil(std::log2(static_cast<double>(n)) - std::log2(static_cast<double>(kThreshold))) + 1;
  return base * static_cast<int>(mult);
}

}  // namespace kv::membership::lifeguard
