#include "membership/topology.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace kv::membership {
namespace {

std::string Hex(NodeId id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, id);
  return buf;
}

bool Drives(const MemberView& m) {
  if (Gone(m)) return false;
  return m.app.state == NodeState::kJoining || m.app.state == NodeState::kLeaving ||
         (m.app.removing != 0 && m.app.state == NodeState::kNormal);
}

}  // namespace

const char* Name(MovementKind k) {
  switch (k) {
    case MovementKind::kJoin:
      return "join";
    case MovementKind::kReplace:
      return "replace";
    case MovementKind::kDecommission:
      return "decommission";
    case MovementKind::kRemove:
      return "removenode";
  }
  return "?";
}

std::string Describe(const Movement& m) {
  std::string s = std::string(Name(m.kind)) + " of " + Hex(m.subject);
  if (m.subject != m.driver) s += " by " + Hex(m.driver);
  s += m.reads_new ? " (copied, finishing)" : " (copying)";
  return s;
}

bool Gone(const MemberView& m) {
  return m.liveness == Liveness::kLeft || m.liveness == Liveness::kRemoved ||
         m.app.state == NodeState::kLeft || m.app.tokens.empty();
}

std::optional<Movement> MovementOf(const ClusterView& view, std::vector<NodeId>* ignored) {
  // A member that some member removes drives nothing any more: a decommissioner that died
  // mid-copy, superseded by the removal of it.
  std::vector<NodeId> removed;
  for (const MemberView& m : view.members) {
    if (Drives(m) && m.app.state == NodeState::kNormal) removed.push_back(m.app.removing);
  }
  std::optional<Movement> found;
  for (const MemberView& m : view.members) {  // sorted by id: the first driver wins
    if (!Drives(m)) continue;
    if (m.app.removing == 0 &&
        std::find(removed.begin(), removed.end(), m.id) != removed.end()) {
      continue;
    }
    if (found) {
      if (ignored != nullptr) ignored->push_back(m.id);
      continue;
    }
    Movement mv;
    mv.driver = m.id;
    mv.subject = m.id;
    mv.reads_new = m.app.reads_new;
    if (m.app.state == NodeState::kJoining) {
      mv.kind = m.app.replaces != 0 ? MovementKind::kReplace : MovementKind::kJoin;
      if (m.app.replaces != 0) mv.subject = m.app.replaces;
    } else if (m.app.state == NodeState::kLeaving) {
      mv.kind = MovementKind::kDecommission;
    } else {
      mv.kind = MovementKind::kRemove;
      mv.subject = m.app.removing;
    }
    found = mv;
  }
  return found;
}

Topology TopologyOf(const ClusterView& view) {
  Topology t;
  t.movement = MovementOf(view, &t.ignored);
  std::vector<ring::RingNode> before, after;
  for (const MemberView& m : view.members) {
    if (Gone(m)) continue;
    const ring::RingNode node{m.id, m.app.tokens, m.app.rack};
    const bool joining = m.app.state == NodeState::kJoining;
    if (!joining) before.push_back(node);
    if (!t.movement) continue;
    const Movement& mv = *t.movement;
    if (joining && m.id != mv.driver) continue;  // waits for its turn
    if (m.id == mv.subject && mv.kind != MovementKind::kJoin) continue;  // its ranges move away
    after.push_back(node);
  }
  auto old_ring = ring::Ring::Build(std::move(before));
  if (!t.movement) {
    t.read = std::move(old_ring);
    return t;
  }
  t.before = old_ring;
  t.after = ring::Ring::Build(std::move(after));
  t.read = t.movement->reads_new ? t.after : t.before;
  return t;
}

}  // namespace kv::membership
