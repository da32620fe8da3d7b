#include "rpc/pacer.h"

#include <algorithm>

namespace kv::rpc {

std::int64_t PacerState::Account(std::int64_t now_ns, std::uint64_t bytes) {
  if (rate == 0) return 0;
  if (!started) {
    started = true;
    tokens = static_cast<double>(burst);
    last_ns = now_ns;
  }
  if (now_ns > last_ns) {
    tokens = std::min(static_cast<double>(burst),
                      tokens + static_cast<double>(now_ns - last_ns) * 1e-9 * static_cast<double>(rate));
    last_ns = now_ns;
  }
  tokens -= static_cast<double>(bytes);
  if (tokens >= 0) return 0;
  return static_cast<std::int64_t>(-tokens / static_cast<double>(rate) * 1e9) + 1;
}

kj::Promise<void> Pacer::Account(std::uint64_t bytes) {
  const std::int64_t now_ns = (timer_.now() - kj::origin<kj::TimePoint>()) / kj::NANOSECONDS;
  const std::int64_t wait_ns = state_.Account(now_ns, bytes);
  if (wait_ns <= 0) return kj::READY_NOW;
  return timer_.afterDelay(wait_ns * kj::NANOSECONDS);
}

}  // namespace kv::rpc
