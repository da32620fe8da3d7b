// Lifeguard and dissemination arithmetic: the pure formulas behind SWIM's timers.
//
// Kept apart from the state machine so they can be checked against tables of cases
// (tests/unit/membership_lifeguard_test.cc). `n` is always the number of members this node
// knows that are not removed, itself included. Pure functions, thread-safe.
//
// References: Lifeguard (Dadgar et al., 2018) and memberlist's suspicion.go / awareness.go /
// util.go, whose shapes these follow.
#pragma once

#include <cstddef>

#include "membership/membership.h"

namespace kv::membership::lifeguard {

// The floor of a suspicion timeout: suspicion_mult * log10(max(n, 10)) * probe_interval.
// Grows slowly with the cluster because news takes about log(n) rounds to spread.
Duration SuspicionMinTimeout(int suspicion_mult, std::size_t n, Duration probe_interval);

// Where a suspicion timeout starts before anyone confirms it: suspicion_max_mult * min.
Duration SuspicionMaxTimeout(int suspicion_max_mult, Duration min);

// How many independent confirmations a suspicion expects before it reaches its floor:
// min(indirect_probes, n - 2) (neither this node nor the suspect can confirm), at least 0.
int ExpectedConfirmations(int indirect_probes, std::size_t n);

// The suspicion timeout after `confirmations` distinct other members agreed:
//   max(min, max - (max - min) * log(C + 1) / log(K + 1))
// It starts at `max` and reaches `min` at K confirmations. With K < 1 nobody can confirm, and
// the timeout is `min` from the start. Rounded down to whole microseconds.
Duration SuspicionTimeout(Duration min, Duration max, int expected, int confirmations);

// How many times one update is piggybacked: retransmit_mult * ceil(log10(n + 1)), at least 1.
int RetransmitLimit(int retransmit_mult, std::size_t n);

// A local health score moved by `delta`, clamped to [0, awareness_max].
int ApplyHealthDelta(int score, int delta, int awareness_max);

// This node's probe interval or timeout stretched by its own health: d * (score + 1).
Duration ScaleByHealth(Duration d, int score);

// Push-pull interval for a cluster of n: the configured one up to 32 members, then stretched by
// ceil(log2(n) - log2(32)) + 1 so full-state exchanges do not grow quadratically (memberlist's
// pushPullScale).
Duration PushPullInterval(Duration base, std::size_t n);

}  // namespace kv::membership::lifeguard
