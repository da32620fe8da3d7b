// The partition suite's nemeses, planned from a seed: pure, no I/O (the driver applies them).
//
// Nodes are numbered 1..N and live at 127.0.0.i inside the suite's network namespace. A
// network fault is a set of iptables rules on the namespace's INPUT chain (loopback traffic
// passes OUTPUT then INPUT), given as iptables-restore input so that a fault is applied, and
// healed, in one atomic step. Clients connect from addresses outside 127.0.0.1..N, so faults
// cut only node-to-node links, as in Jepsen where clients sit on the control node.
//
//   halves   two sides, sizes floor(N/2) and the rest
//   isolate  one node alone
//   bridge   two sides that share one node, which talks to both
//   random   each node in one of 2 or 3 random groups (at least two non-empty)
//   loss     every node-to-node link drops a share of its packets (statistic match)
//   kill     SIGKILL 1..floor((N-1)/2) nodes, restarted at the heal
//   pause    SIGSTOP 1..floor((N-1)/2) nodes, SIGCONT at the heal
//
// Used by tests/partition/driver.cc and its unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kv::partition {

enum class NemesisKind { kHalves, kIsolate, kBridge, kRandom, kLoss, kKill, kPause };

const char* NemesisName(NemesisKind k);
// "halves,kill" -> kinds; nullopt (and `error` set) on an unknown or empty name.
std::optional<std::vector<NemesisKind>> ParseNemeses(const std::string& list, std::string* error);

struct Fault {
  NemesisKind kind = NemesisKind::kHalves;
  // Partitions: two nodes can talk iff some group holds both (a bridge node is in both).
  std::vector<std::vector<int>> groups;
  std::vector<int> victims;  // kill, pause
  double loss = 0;           // loss: probability that a packet is dropped

  bool IsNetwork() const { return kind != NemesisKind::kKill && kind != NemesisKind::kPause; }
  // "{1,4} | {2,3,5}", "kill {3}", "loss 30%".
  std::string Describe() const;
};

// The ordered pairs (from, to) of distinct nodes whose packets a network fault drops entirely.
std::vector<std::pair<int, int>> CutPairs(const Fault& f, int nodes);

// iptables-restore input for the filter table: the fault's rules, or none at all (healed)
// when `f` is null. Replaces the whole table when applied.
std::string IptablesRules(const Fault* f, int nodes);

// A small deterministic generator (SplitMix64), so a seed replays the same plan everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t Next();
  // Uniform in [0, n); n > 0.
  std::uint64_t Below(std::uint64_t n) { return Next() % n; }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t s_;
};

Fault PlanFault(NemesisKind kind, int nodes, Rng& rng, double loss = 0.3);

struct Step {
  double start_s = 0, end_s = 0;  // applied at start_s, healed at end_s
  Fault fault;
};

// Alternates quiet time and faults over [0, run_s): a quiet `quiet_s`, then a fault of a kind
// drawn from `kinds` (each kind once before any twice) lasting `min_fault_s`..`max_fault_s`, and so on; the last fault heals by
// run_s.
std::vector<Step> PlanSchedule(const std::vector<NemesisKind>& kinds, int nodes, double run_s,
                               double quiet_s, double min_fault_s, double max_fault_s,
                               std::uint64_t seed, double loss = 0.3);

}  // namespace kv::partition
