// Topology: the rings a node uses, derived from the members' gossiped states alone, so that
// every node that holds the same view derives the same rings.
//
// Ownership changes only by an explicit movement (Dynamo 4.8.1): a stopped, crashed or cut-off
// member keeps its tokens and stays in the ring (coordinators route around it with hints).
// A movement is driven by one member, which says so in its application state:
//   join          state joining, with tokens                 the driver gains ranges
//   replace       state joining, replaces = D, D's tokens    the driver takes dead D's ranges
//   decommission  state leaving                              the driver's ranges go to others
//   removal       removing = D (driver's state normal)       dead D's ranges go to others
// A member that wants to join while another movement runs gossips state joining with no tokens:
// it is in no ring and drives nothing until its turn.
//
// The ring before the movement holds every member that is neither gone (LEFT, REMOVED, state
// left, no tokens) nor joining; the ring after it drops the leaving driver and D, and adds the
// joining driver. Phases, in the driver's own state (ScyllaDB's write-both / read-new shape):
//   1. reads_new false: writes go to the replicas of both rings, each set to its consistency;
//      reads and versions use the ring before. The driver copies only once every live member
//      answered that it sees this phase (rpc/movement_service.h), so no write can miss it.
//   2. reads_new true: the copy is complete; writes still go to both, reads use the ring after.
//      The driver finishes only once every live member sees this phase.
//   3. finished: the driver is normal (join, replace; D is then removed) or left (decommission),
//      or clears `removing` and removes D. One ring again.
// One movement at a time: if several members drive one (two joins that raced), the one with the
// lowest id is the movement and the others are ignored (a would-be joiner stays out of both
// rings, a would-be leaver or remover changes nothing) until it ends. A driver that finds
// itself ignored withdraws. One exception: a member that another member removes (removenode)
// drives nothing, so that the removal of a decommissioner that died mid-copy supersedes its
// decommission rather than wait for it for ever.
//
// Pure: no I/O. Thread-safe (the result is immutable).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "membership/membership.h"
#include "ring/ring.h"

namespace kv::membership {

enum class MovementKind : std::uint8_t { kJoin, kReplace, kDecommission, kRemove };
const char* Name(MovementKind k);  // "join", "replace", "decommission", "removenode"

struct Movement {
  MovementKind kind = MovementKind::kJoin;
  NodeId driver = 0;
  NodeId subject = 0;  // the member whose ranges move: the driver, or D for replace and removal
  bool reads_new = false;
  bool operator==(const Movement&) const = default;
};
std::string Describe(const Movement& m);  // "join of 00ab..." / "removenode of ... by ..."

struct Topology {
  // The ring reads use and versions are made on: before the movement until its copy is
  // complete, after it from then on. Never null.
  std::shared_ptr<const ring::Ring> read;
  // While a movement runs, the rings before and after it (writes must reach each set at its
  // consistency); both null otherwise.
  std::shared_ptr<const ring::Ring> before, after;
  std::optional<Movement> movement;
  // Members that drive a movement but are ignored while `movement` runs.
  std::vector<NodeId> ignored;
};

// The movement the members' states describe, if any (the lowest driving id wins).
std::optional<Movement> MovementOf(const ClusterView& view, std::vector<NodeId>* ignored = nullptr);
Topology TopologyOf(const ClusterView& view);

// True if `m` no longer holds ranges of its own: LEFT, REMOVED, state left, or no tokens.
bool Gone(const MemberView& m);

}  // namespace kv::membership
