// Replica planning for the coordinator: which nodes a request for a key goes to, and how many
// answers it needs. Pure functions of the ring, the failure detector's verdicts and the
// settings; no I/O. Thread-safe.
//
// Sloppy quorum (Dynamo): the owners of a key are the first n nodes of its preference list.
// Owners the failure detector reports DOWN are skipped, and with hinted handoff on, the next
// nodes of the clockwise walk that are not DOWN stand in for them, one each, holding the write
// as a hint for the owner they replace.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ring/ring.h"

namespace kv::rpc {

enum class Consistency : std::uint8_t { kDefault, kOne, kQuorum, kAll };
const char* Name(Consistency c);                        // "default", "one", "quorum", "all"
bool ParseConsistency(std::string_view s, Consistency* out);  // one|quorum|all

struct ReplicationSettings {
  int n = 3;  // replicas per key
  int r = 2;  // replies a read waits for at the default consistency
  int w = 2;  // acknowledgements a write waits for at the default consistency
  bool hinted_handoff = true;
};

// One node a request goes to. `hint_for` != 0: a stand-in holding the write as a hint for that
// owner (and, for reads, answering from that hint as well as its own data).
struct ReplicaTarget {
  std::uint64_t node = 0;
  std::uint64_t hint_for = 0;
  bool operator==(const ReplicaTarget&) const = default;
};

struct ReplicaPlan {
  int owners = 0;                     // min(n, ring size): the replicas the key should have
  std::vector<std::uint64_t> down;    // owners skipped because they are DOWN
  std::vector<ReplicaTarget> targets; // live owners in preference order, then stand-ins
  // DOWN owners no stand-in could be found for (the ring has too few live nodes): with hinted
  // handoff on, the coordinator keeps their hints itself (these count toward no consistency).
  std::vector<std::uint64_t> uncovered;
  // The number of answers needed at `c` (one: 1, quorum: owners/2+1, all: owners, default: the
  // setting), never more than `owners`.
  int Required(Consistency c, int default_count) const;
  // Whether an answer from `t` counts at `c`: a stand-in's hint counts except at `all`, which
  // means every owner itself.
  static bool Counts(const ReplicaTarget& t, Consistency c) { return t.hint_for == 0 || c != Consistency::kAll; }
  // How many targets' answers could count at `c`.
  int Reachable(Consistency c) const;
};

ReplicaPlan PlanReplicas(const ring::Ring& ring, std::string_view key, int n, bool hinted_handoff,
                         const std::function<bool(std::uint64_t)>& is_down);

// A write's plan over one ring, or over the rings before and after a movement
// (membership/topology.h): each ring's plan is a set that must reach its own consistency, and a
// node in both counts for both (ScyllaDB's rule; Cassandra's W + pending count instead fails
// writes when a pending node dies).
struct WritePlan {
  struct Target {
    ReplicaTarget target;
    std::uint8_t sets = 0;  // bit i: the answer counts toward sets[i]
  };
  std::vector<ReplicaPlan> sets;   // sets[0] is the ring reads use
  std::vector<Target> targets;     // the union of the sets' targets, in order of first appearance
  std::vector<std::uint64_t> uncovered;  // the union of the sets' uncovered owners
};

// `rings[0]` is the ring reads use (its live owners make versions); at most 8 rings.
WritePlan PlanWrite(const std::vector<const ring::Ring*>& rings, std::string_view key, int n,
                    bool hinted_handoff, const std::function<bool(std::uint64_t)>& is_down);

}  // namespace kv::rpc
