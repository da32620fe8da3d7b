// Pacer: holds a bulk transfer (a repair, a ring movement's copy) to a byte rate step by step,
// so that it comes as a steady trickle of short bursts (a page each) rather than as a whole
// range at full speed followed by a pause. A bucket of `burst` bytes refills at `rate` bytes a
// second; a step that overdraws it waits until the debt is repaid.
//
// The arithmetic is a pure function of the time given (PacerState, for tests and simulation);
// Pacer applies it with a kj::Timer. Lives on one thread (the RPC thread).
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>

namespace kv::rpc {

// What repair and movement copies may send at once before the rate holds them: two copy pages
// (repair/exchange.h, kMaxCopyBytes).
inline constexpr std::uint64_t kPacerBurstBytes = std::uint64_t{64} << 10;

struct PacerState {
  std::uint64_t rate = 0;   // bytes per second; 0: unlimited
  std::uint64_t burst = 0;  // bytes the bucket holds when full
  double tokens = 0;        // bytes that may go now without waiting (negative: owed)
  std::int64_t last_ns = 0; // when `tokens` was last brought up to date
  bool started = false;

  // Accounts `bytes` moved at `now_ns` (any monotonic clock in nanoseconds): how many
  // nanoseconds the next step must wait (0: none).
  std::int64_t Account(std::int64_t now_ns, std::uint64_t bytes);
};

class Pacer {
 public:
  Pacer(kj::Timer& timer, std::uint64_t rate_bytes_per_s, std::uint64_t burst_bytes)
      : timer_(timer) {
    state_.rate = rate_bytes_per_s;
    state_.burst = burst_bytes;
  }
  // Accounts `bytes` just moved; resolves when the next step may go.
  kj::Promise<void> Account(std::uint64_t bytes);
  std::uint64_t rate() const { return state_.rate; }

 private:
  kj::Timer& timer_;
  PacerState state_;
};

}  // namespace kv::rpc
