#include "tests/partition/history.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace kv::partition {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kFail: return "fail";
    case Outcome::kUnknown: return "unknown";
  }
  return "?";
}

const char* OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kSetAdd: return "add";
    case OpKind::kPut: return "put";
    case OpKind::kSetRemove: return "remove";
    case OpKind::kDeleteKey: return "delete";
  }
  return "?";
}

std::string EncodeSet(const std::set<std::string>& elements) {
  std::string out;
  for (const auto& e : elements) {
    if (!out.empty()) out += ' ';
    out += e;
  }
  return out;
}

std::set<std::string> DecodeSet(const std::string& value) {
  std::set<std::string> out;
  std::istringstream in(value);
  for (std::string e; in >> e;) out.insert(e);
  return out;
}

namespace {

// The nemesis active at `t`, or "none".
std::string During(double t, const std::vector<Period>& periods) {
  std::string during = "none";
  for (const Period& p : periods) {
    if (t >= p.start_s && t < p.end_s) during = p.nemesis;
  }
  return during;
}

std::vector<std::string> Order(const std::vector<Period>& periods) {
  std::vector<std::string> order;
  for (const Period& p : periods) {
    if (std::find(order.begin(), order.end(), p.nemesis) == order.end()) order.push_back(p.nemesis);
  }
  order.push_back("none");
  return order;
}

void Example(std::vector<std::string>* out, std::string text) {
  if (out->size() < 20) out->push_back(std::move(text));
}

}  // namespace

Findings Check(const std::vector<Op>& history, const FinalState& final,
               const std::vector<Period>& periods) {
  Findings f;
  // What the final state holds, per key: set elements (union over siblings) and put values.
  std::map<std::string, std::set<std::string>> present;
  std::set<std::string> written_keys;
  std::map<std::string, bool> is_set_key;
  std::map<std::string, std::vector<const Op*>> ops_of_key;
  for (const Op& op : history) {
    written_keys.insert(op.key);
    is_set_key[op.key] = op.IsSetOp();
    ops_of_key[op.key].push_back(&op);
  }
  for (const auto& [key, siblings] : final) {
    auto& p = present[key];
    const auto k = is_set_key.find(key);
    const bool is_set = k != is_set_key.end() && k->second;
    for (const auto& s : siblings) {
      if (is_set) {
        for (const auto& e : DecodeSet(s)) p.insert(e);
      } else {
        p.insert(s);
      }
    }
  }
  for (const auto& key : written_keys) {
    if (!final.count(key)) ++f.unreadable_keys;
  }
  auto is_present = [&](const std::string& key, const std::string& e) {
    const auto k = present.find(key);
    return k != present.end() && k->second.count(e) > 0;
  };
  // Whether some op on `key` that may have been applied (not failed for certain) removes `e`.
  auto maybe_removed = [&](const std::string& key, const std::string& e) {
    for (const Op* d : ops_of_key[key]) {
      if (d->outcome != Outcome::kFail && d->Removes(e)) return true;
    }
    return false;
  };

  std::map<std::string, std::set<std::string>> attempted;
  for (const Op& op : history) {
    ++f.attempted;
    if (op.kind == OpKind::kSetRemove || op.kind == OpKind::kDeleteKey) {
      ++f.removals;
      if (op.outcome == Outcome::kOk) ++f.removals_acknowledged;
    }
    if (!op.element.empty()) attempted[op.key].insert(op.element);
    const bool there = !op.element.empty() && is_present(op.key, op.element);
    switch (op.outcome) {
      case Outcome::kOk:
        ++f.acknowledged;
        if (!op.element.empty() && !there && !maybe_removed(op.key, op.element)) {
          ++f.lost;
          Example(&f.lost_examples, op.key + ": " + op.element);
        }
        break;
      case Outcome::kFail:
        ++f.failed;
        if (there) {
          ++f.failed_present;
          Example(&f.failed_present_examples, op.key + ": " + op.element + " (" + op.error + ")");
        }
        break;
      case Outcome::kUnknown:
        ++f.unknown;
        if (there) ++f.unknown_present;
        break;
    }
  }
  for (const auto& [key, elements] : present) {
    const auto a = attempted.find(key);
    for (const auto& e : elements) {
      if (a == attempted.end() || !a->second.count(e)) {
        ++f.phantoms;
        Example(&f.phantom_examples, key + ": " + e);
      }
    }
  }

  // Resurrections: what an acknowledged removal took out, back without a concurrent writer.
  for (const Op& r : history) {
    if (r.outcome != Outcome::kOk || !r.read ||
        (r.kind != OpKind::kSetRemove && r.kind != OpKind::kDeleteKey)) {
      continue;
    }
    for (const auto& e : r.seen) {
      if (!r.Removes(e) || !is_present(r.key, e)) continue;
      bool explained = false;
      for (const Op* w : ops_of_key[r.key]) {
        if (w != &r && w->outcome != Outcome::kFail && w->Carries(e) && !r.seen.count(w->element)) {
          explained = true;
          break;
        }
      }
      if (!explained) {
        ++f.undone;
        char at[32];
        std::snprintf(at, sizeof(at), "%.1f", r.invoke_s);
        Example(&f.undone_examples, r.key + ": " + e + " removed by " + OpKindName(r.kind) +
                                        " " + (r.element.empty() ? "" : r.element + " ") + "at " +
                                        at + " s");
      }
    }
  }

  // Availability and stale reads, by what was going on when each operation was invoked.
  const auto order = Order(periods);
  std::map<std::string, Availability> by;
  std::map<std::string, StaleReads> stale_by;
  for (const auto& name : order) {
    by[name].during = name;
    stale_by[name].during = name;
  }
  for (const Op& op : history) {
    const std::string during = During(op.invoke_s, periods);
    auto& a = by[during];
    ++a.ops;
    if (op.outcome == Outcome::kOk) ++a.ok;
    if (!op.read) continue;
    auto& st = stale_by[during];
    ++st.reads;
    for (const Op* w : ops_of_key[op.key]) {
      if (w->outcome != Outcome::kOk || w->element.empty() || w->complete_s >= op.invoke_s ||
          op.seen.count(w->element)) {
        continue;
      }
      // Missing: stale unless a removal may have taken it out before the read ended.
      bool removed = false;
      for (const Op* d : ops_of_key[op.key]) {
        if (d != &op && d->outcome != Outcome::kFail && d->Removes(w->element) &&
            d->invoke_s < op.read_done_s) {
          removed = true;
          break;
        }
      }
      if (!removed) {
        ++st.stale;
        break;
      }
    }
  }
  for (const auto& name : order) {
    f.availability.push_back(by[name]);
    f.stale_reads.push_back(stale_by[name]);
  }
  return f;
}

}  // namespace kv::partition
