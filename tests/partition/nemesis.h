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
//   kill     SIGKILL 1..floor((M-1)/2) of the M members, restarted at the heal
//   pause    SIGSTOP 1..floor((M-1)/2) members, SIGCONT at the heal
//   crash    SIGKILL one member, as a power loss: its writes since its last log sync are lost
//            (every node then runs with kvd --testing-lose-unsynced-on-kill, so kill loses
//            them too, and kills one member only); restarted at the heal. One at a time: a
//            write acknowledged by W=2 of 3 replicas is then always held by another
//   skew     one member restarted with its clock 1 to 10 minutes ahead or behind
//            (kvd --testing-clock-offset-s), restarted with the right time at the heal
//
// and the ring movements, which change who the members are (never more than one at a time, and
// never overlapping another fault):
//
//   join          a new node (a slot never used before, empty data) joins through the members
//   decommission  a member copies its ranges away and leaves (kvtool decommission)
//   replace       a member is killed; a new node takes its place with --replace
//
// The cluster starts with N members in slots 1..N; every join and replace brings a new slot
// (N+1, N+2, ...), so no address is ever reused by another node. The planner keeps between
// max(3, N-1) and N+1 members: a join drawn at the top becomes a decommission and the other
// way round. Faults only ever name current members.
//
// Used by tests/partition/driver.cc and its unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kv::partition {

enum class NemesisKind {
  kHalves, kIsolate, kBridge, kRandom, kLoss, kKill, kPause, kJoin, kDecommission, kReplace,
  kCrash, kSkew
};

const char* NemesisName(NemesisKind k);
// "halves,kill" -> kinds; nullopt (and `error` set) on an unknown or empty name.
std::optional<std::vector<NemesisKind>> ParseNemeses(const std::string& list, std::string* error);

struct Fault {
  NemesisKind kind = NemesisKind::kHalves;
  // Partitions: two nodes can talk iff some group holds both (a bridge node is in both).
  std::vector<std::vector<int>> groups;
  // kill, pause, crash, skew; the node that leaves (decommission) or dies (replace)
  std::vector<int> victims;
  int newcomer = 0;          // join, replace: the new node's slot
  double loss = 0;           // loss: probability that a packet is dropped
  std::int64_t clock_offset_s = 0;  // skew: how far the victim's clock is off

  bool IsMovement() const {
    return kind == NemesisKind::kJoin || kind == NemesisKind::kDecommission ||
           kind == NemesisKind::kReplace;
  }
  bool IsNetwork() const {
    return kind != NemesisKind::kKill && kind != NemesisKind::kPause &&
           kind != NemesisKind::kCrash && kind != NemesisKind::kSkew && !IsMovement();
  }
  // "{1,4} | {2,3,5}", "kill {3}", "loss 30%", "join 6", "decommission 2", "replace 3 by 7",
  // "crash {2}", "skew 4 by -300 s".
  std::string Describe() const;
};

// The ordered pairs (from, to) of distinct slots 1..slots whose packets a network fault drops
// entirely. A slot in no group (not a member) is cut from every other.
std::vector<std::pair<int, int>> CutPairs(const Fault& f, int slots);

// iptables-restore input for the filter table: the fault's rules over slots 1..slots, or none
// at all (healed) when `f` is null. Replaces the whole table when applied.
std::string IptablesRules(const Fault* f, int slots);

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

// A fault among `members` (slots). Movements: the victim is drawn from the members, and
// `newcomer` is the caller's to fill.
Fault PlanFault(NemesisKind kind, const std::vector<int>& members, Rng& rng, double loss = 0.3);
// The same among members 1..nodes.
Fault PlanFault(NemesisKind kind, int nodes, Rng& rng, double loss = 0.3);

struct Step {
  double start_s = 0, end_s = 0;  // applied at start_s, healed at end_s
  Fault fault;
  std::vector<int> members_after;  // sorted slots of the members once the step is done
};

// Slots a schedule needs: `nodes` plus one per join and replace in it.
int SlotsOf(const std::vector<Step>& steps, int nodes);

// Alternates quiet time and faults over [0, run_s): a quiet `quiet_s`, then a fault of a kind
// drawn from `kinds` (each kind once before any twice) lasting `min_fault_s`..`max_fault_s`, and so on; the last fault heals by
// run_s.
std::vector<Step> PlanSchedule(const std::vector<NemesisKind>& kinds, int nodes, double run_s,
                               double quiet_s, double min_fault_s, double max_fault_s,
                               std::uint64_t seed, double loss = 0.3);

}  // namespace kv::partition
