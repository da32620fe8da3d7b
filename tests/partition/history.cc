#include "tests/partition/history.h"

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

const char* OpKindName(OpKind k) { return k == OpKind::kSetAdd ? "add" : "put"; }

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

Findings Check(const std::vector<Op>& history, const FinalState& final,
               const std::vector<Period>& periods) {
  Findings f;
  // What the final state holds, per key: set elements (union over siblings) and put values.
  std::map<std::string, std::set<std::string>> present;
  std::set<std::string> written_keys;
  std::map<std::string, OpKind> kind_of_key;
  for (const Op& op : history) {
    written_keys.insert(op.key);
    kind_of_key[op.key] = op.kind;
  }
  for (const auto& [key, siblings] : final) {
    auto& p = present[key];
    const auto k = kind_of_key.find(key);
    const bool is_set = k != kind_of_key.end() && k->second == OpKind::kSetAdd;
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

  std::map<std::string, std::set<std::string>> attempted;
  for (const Op& op : history) {
    ++f.attempted;
    attempted[op.key].insert(op.element);
    const auto k = present.find(op.key);
    const bool there = k != present.end() && k->second.count(op.element);
    switch (op.outcome) {
      case Outcome::kOk:
        ++f.acknowledged;
        if (!there) {
          ++f.lost;
          if (f.lost_examples.size() < 20) f.lost_examples.push_back(op.key + ": " + op.element);
        }
        break;
      case Outcome::kFail:
        ++f.failed;
        if (there) ++f.failed_present;
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
        if (f.phantom_examples.size() < 20) f.phantom_examples.push_back(key + ": " + e);
      }
    }
  }

  // Availability by what was going on when each operation was invoked.
  std::map<std::string, Availability> by;
  std::vector<std::string> order;
  for (const Period& p : periods) {
    if (!by.count(p.nemesis)) order.push_back(p.nemesis);
    by[p.nemesis].during = p.nemesis;
  }
  order.push_back("none");
  by["none"].during = "none";
  for (const Op& op : history) {
    std::string during = "none";
    for (const Period& p : periods) {
      if (op.invoke_s >= p.start_s && op.invoke_s < p.end_s) during = p.nemesis;
    }
    auto& a = by[during];
    ++a.ops;
    if (op.outcome == Outcome::kOk) ++a.ok;
  }
  for (const auto& name : order) f.availability.push_back(by[name]);
  return f;
}

}  // namespace kv::partition
