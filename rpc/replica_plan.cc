#include "rpc/replica_plan.h"

#include <algorithm>

namespace kv::rpc {

const char* Name(Consistency c) {
  switch (c) {
    case Consistency::kDefault:
      return "default";
    case Consistency::kOne:
      return "one";
    case Consistency::kQuorum:
      return "quorum";
    case Consistency::kAll:
      return "all";
  }
  return "?";
}

bool ParseConsistency(std::string_view s, Consistency* out) {
  if (s == "one") {
    *out = Consistency::kOne;
  } else if (s == "quorum") {
    *out = Consistency::kQuorum;
  } else if (s == "all") {
    *out = Consistency::kAll;
  } else {
    return false;
  }
  return true;
}

int ReplicaPlan::Required(Consistency c, int default_count) const {
  int need = default_count;
  switch (c) {
    case Consistency::kDefault:
      break;
    case Consistency::kOne:
      need = 1;
      break;
    case Consistency::kQuorum:
      need = owners / 2 + 1;
      break;
    case Consistency::kAll:
      need = owners;
      break;
  }
  return std::max(1, std::min(need, owners));
}

int ReplicaPlan::Reachable(Consistency c) const {
  return static_cast<int>(std::count_if(targets.begin(), targets.end(),
                                        [c](const ReplicaTarget& t) { return Counts(t, c); }));
}

ReplicaPlan PlanReplicas(const ring::Ring& ring, std::string_view key, int n, bool hinted_handoff,
                         const std::function<bool(std::uint64_t)>& is_down) {
  ReplicaPlan plan;
  if (n <= 0 || ring.size() == 0) return plan;
  const std::vector<std::uint64_t> owners = ring.PreferenceList(key, static_cast<std::size_t>(n));
  plan.owners = static_cast<int>(owners.size());
  for (std::uint64_t id : owners) {
    if (is_down(id)) {
      plan.down.push_back(id);
    } else {
      plan.targets.push_back({id, 0});
    }
  }
  if (!hinted_handoff || plan.down.empty()) return plan;
  // Stand-ins: the rest of the walk, in order, skipping owners and DOWN nodes.
  const std::vector<std::uint64_t> walk = ring.PreferenceList(key, ring.size());
  std::size_t next_down = 0;
  for (std::uint64_t id : walk) {
    if (next_down == plan.down.size()) break;
    if (std::find(owners.begin(), owners.end(), id) != owners.end() || is_down(id)) continue;
    plan.targets.push_back({id, plan.down[next_down++]});
  }
  plan.uncovered.assign(plan.down.begin() + static_cast<std::ptrdiff_t>(next_down), plan.down.end());
  return plan;
}

WritePlan PlanWrite(const std::vector<const ring::Ring*>& rings, std::string_view key, int n,
                    bool hinted_handoff, const std::function<bool(std::uint64_t)>& is_down) {
  WritePlan plan;
  for (std::size_t i = 0; i < rings.size() && i < 8; ++i) {
    plan.sets.push_back(PlanReplicas(*rings[i], key, n, hinted_handoff, is_down));
    const auto bit = static_cast<std::uint8_t>(1u << i);
    for (const ReplicaTarget& t : plan.sets.back().targets) {
      auto it = std::find_if(plan.targets.begin(), plan.targets.end(),
                             [&](const WritePlan::Target& x) { return x.target == t; });
      if (it == plan.targets.end()) {
        plan.targets.push_back({t, bit});
      } else {
        it->sets |= bit;
      }
    }
    for (std::uint64_t id : plan.sets.back().uncovered) {
      if (std::find(plan.uncovered.begin(), plan.uncovered.end(), id) == plan.uncovered.end()) {
        plan.uncovered.push_back(id);
      }
    }
  }
  return plan;
}

}  // namespace kv::rpc
