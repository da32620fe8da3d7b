#include "tests/partition/nemesis.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

namespace kv::partition {
namespace {

constexpr NemesisKind kAll[] = {NemesisKind::kHalves, NemesisKind::kIsolate,
                                NemesisKind::kBridge, NemesisKind::kRandom,
                                NemesisKind::kLoss,   NemesisKind::kKill,
                                NemesisKind::kPause,  NemesisKind::kJoin,
                                NemesisKind::kDecommission, NemesisKind::kReplace,
                                NemesisKind::kCrash,  NemesisKind::kSkew};

std::vector<int> Shuffled(std::vector<int> v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.Below(i)]);
  return v;
}

std::vector<int> Range(int nodes) {
  std::vector<int> v(static_cast<std::size_t>(nodes));
  for (int i = 0; i < nodes; ++i) v[static_cast<std::size_t>(i)] = i + 1;
  return v;
}

std::string Ip(int node) { return "127.0.0." + std::to_string(node) + "/32"; }

std::string Group(const std::vector<int>& g) {
  std::vector<int> s = g;
  std::sort(s.begin(), s.end());
  std::string out = "{";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "}";
}

}  // namespace

const char* NemesisName(NemesisKind k) {
  switch (k) {
    case NemesisKind::kHalves: return "halves";
    case NemesisKind::kIsolate: return "isolate";
    case NemesisKind::kBridge: return "bridge";
    case NemesisKind::kRandom: return "random";
    case NemesisKind::kLoss: return "loss";
    case NemesisKind::kKill: return "kill";
    case NemesisKind::kPause: return "pause";
    case NemesisKind::kJoin: return "join";
    case NemesisKind::kDecommission: return "decommission";
    case NemesisKind::kReplace: return "replace";
    case NemesisKind::kCrash: return "crash";
    case NemesisKind::kSkew: return "skew";
  }
  return "?";
}

std::optional<std::vector<NemesisKind>> ParseNemeses(const std::string& list, std::string* error) {
  std::vector<NemesisKind> out;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    bool found = false;
    for (NemesisKind k : kAll) {
      if (name == NemesisName(k)) {
        if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
        found = true;
      }
    }
    if (!found) {
      *error = "unknown nemesis '" + name +
               "' (expected a comma list of halves, isolate, bridge, random, loss, kill, pause, join, "
               "decommission, replace, crash, skew)";
      return std::nullopt;
    }
  }
  if (out.empty()) {
    *error = "no nemesis named";
    return std::nullopt;
  }
  return out;
}

std::string Fault::Describe() const {
  switch (kind) {
    case NemesisKind::kKill:
    case NemesisKind::kCrash:
    case NemesisKind::kPause: return std::string(NemesisName(kind)) + " " + Group(victims);
    case NemesisKind::kSkew:
      return "skew " + std::to_string(victims.empty() ? 0 : victims[0]) + " by " +
             (clock_offset_s > 0 ? "+" : "") + std::to_string(clock_offset_s) + " s";
    case NemesisKind::kJoin: return "join " + std::to_string(newcomer);
    case NemesisKind::kDecommission:
      return "decommission " + std::to_string(victims.empty() ? 0 : victims[0]);
    case NemesisKind::kReplace:
      return "replace " + std::to_string(victims.empty() ? 0 : victims[0]) + " by " +
             std::to_string(newcomer);
    case NemesisKind::kLoss: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "loss %.0f%% on every link", loss * 100);
      return buf;
    }
    default: {
      std::string out;
      for (std::size_t i = 0; i < groups.size(); ++i) out += (i ? " | " : "") + Group(groups[i]);
      return out;
    }
  }
}

std::vector<std::pair<int, int>> CutPairs(const Fault& f, int slots) {
  std::vector<std::pair<int, int>> out;
  if (!f.IsNetwork() || f.kind == NemesisKind::kLoss) return out;
  for (int a = 1; a <= slots; ++a) {
    for (int b = 1; b <= slots; ++b) {
      if (a == b) continue;
      bool together = false;
      for (const auto& g : f.groups) {
        together |= std::count(g.begin(), g.end(), a) && std::count(g.begin(), g.end(), b);
      }
      if (!together) out.emplace_back(a, b);
    }
  }
  return out;
}

std::string IptablesRules(const Fault* f, int slots) {
  std::string out = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";
  if (f != nullptr && f->kind == NemesisKind::kLoss) {
    char p[32];
    std::snprintf(p, sizeof(p), "%.4f", f->loss);
    for (int a = 1; a <= slots; ++a) {
      for (int b = 1; b <= slots; ++b) {
        if (a == b) continue;
        out += "-A INPUT -s " + Ip(a) + " -d " + Ip(b) +
               " -m statistic --mode random --probability " + p + " -j DROP\n";
      }
    }
  } else if (f != nullptr) {
    for (const auto& [a, b] : CutPairs(*f, slots)) {
      out += "-A INPUT -s " + Ip(a) + " -d " + Ip(b) + " -j DROP\n";
    }
  }
  return out + "COMMIT\n";
}

std::uint64_t Rng::Next() {
  std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Fault PlanFault(NemesisKind kind, int nodes, Rng& rng, double loss) {
  return PlanFault(kind, Range(nodes), rng, loss);
}

Fault PlanFault(NemesisKind kind, const std::vector<int>& members, Rng& rng, double loss) {
  Fault f;
  f.kind = kind;
  const int nodes = static_cast<int>(members.size());
  std::vector<int> order = Shuffled(members, rng);
  switch (kind) {
    case NemesisKind::kHalves: {
      const int small = nodes / 2;
      f.groups = {std::vector<int>(order.begin(), order.begin() + small),
                  std::vector<int>(order.begin() + small, order.end())};
      break;
    }
    case NemesisKind::kIsolate:
      f.groups = {{order[0]}, std::vector<int>(order.begin() + 1, order.end())};
      break;
    case NemesisKind::kBridge: {
      // order[0] is the bridge; the others split in two sides as even as possible.
      const int bridge = order[0];
      const int rest = nodes - 1;
      std::vector<int> a(order.begin() + 1, order.begin() + 1 + rest / 2);
      std::vector<int> b(order.begin() + 1 + rest / 2, order.end());
      a.push_back(bridge);
      b.push_back(bridge);
      f.groups = {a, b};
      break;
    }
    case NemesisKind::kRandom: {
      const int count = nodes >= 3 ? 2 + static_cast<int>(rng.Below(2)) : 2;
      std::vector<std::vector<int>> groups(count);
      // The first `count` nodes of the shuffle seed one group each, so none is empty.
      for (int i = 0; i < nodes; ++i) {
        groups[i < count ? i : rng.Below(count)].push_back(order[i]);
      }
      f.groups = groups;
      break;
    }
    case NemesisKind::kLoss: f.loss = loss; break;
    case NemesisKind::kKill:
    case NemesisKind::kPause: {
      const int most = std::max(1, (nodes - 1) / 2);
      const int n = 1 + static_cast<int>(rng.Below(most));
      f.victims.assign(order.begin(), order.begin() + n);
      break;
    }
    case NemesisKind::kJoin: break;
    case NemesisKind::kCrash: f.victims = {order[0]}; break;
    case NemesisKind::kSkew: {
      f.victims = {order[0]};
      const auto minutes_s = static_cast<std::int64_t>(60 + rng.Below(541));
      f.clock_offset_s = rng.Below(2) == 0 ? minutes_s : -minutes_s;
      break;
    }
    case NemesisKind::kDecommission:
    case NemesisKind::kReplace: f.victims = {order[0]}; break;
  }
  return f;
}

int SlotsOf(const std::vector<Step>& steps, int nodes) {
  int slots = nodes;
  for (const Step& s : steps) slots = std::max(slots, s.fault.newcomer);
  return slots;
}

std::vector<Step> PlanSchedule(const std::vector<NemesisKind>& kinds, int nodes, double run_s,
                               double quiet_s, double min_fault_s, double max_fault_s,
                               std::uint64_t seed, double loss) {
  std::vector<Step> out;
  Rng rng(seed);
  double t = quiet_s;
  std::vector<int> members = Range(nodes);
  int next_slot = nodes + 1;
  const std::size_t fewest = static_cast<std::size_t>(std::max(3, nodes - 1));
  const std::size_t most = static_cast<std::size_t>(nodes + 1);
  // Kinds are drawn from a shuffled bag, refilled when empty, so every kind named comes up
  // once before any comes up twice.
  std::vector<NemesisKind> bag;
  const bool has_crash = std::count(kinds.begin(), kinds.end(), NemesisKind::kCrash) > 0;
  while (t + min_fault_s <= run_s) {
    if (bag.empty()) {
      bag = kinds;
      for (std::size_t i = bag.size(); i > 1; --i) std::swap(bag[i - 1], bag[rng.Below(i)]);
    }
    NemesisKind kind = bag.back();
    bag.pop_back();
    if (kind == NemesisKind::kJoin && members.size() >= most) kind = NemesisKind::kDecommission;
    if (kind == NemesisKind::kDecommission && members.size() <= fewest) kind = NemesisKind::kJoin;
    Step s;
    s.start_s = t;
    const double len = min_fault_s + (max_fault_s - min_fault_s) * rng.Unit();
    s.end_s = std::min(run_s, t + len);
    s.fault = PlanFault(kind, members, rng, loss);
    // Under crash, every kill loses unsynced writes too: one at a time, as crashes are.
    if (kind == NemesisKind::kKill && has_crash) s.fault.victims.resize(1);
    if (kind == NemesisKind::kJoin || kind == NemesisKind::kReplace) {
      s.fault.newcomer = next_slot++;
      members.push_back(s.fault.newcomer);
    }
    if (kind == NemesisKind::kDecommission || kind == NemesisKind::kReplace) {
      members.erase(std::find(members.begin(), members.end(), s.fault.victims[0]));
    }
    std::sort(members.begin(), members.end());
    s.members_after = members;
    out.push_back(s);
    t = s.end_s + quiet_s;
  }
  return out;
}

}  // namespace kv::partition
