// The partition suite's history and its checker: pure, no I/O (the driver records and reads).
//
// A history is every client operation of a run, each with its invoke and completion times on
// the run's monotonic clock. The checker compares the acknowledged writes against what the
// cluster holds after the final heal, handoff and repair:
//   - set workload: a key holds a set; a write reads the key, adds one unique element to the
//     union of the siblings it read, and writes the result with the causal context it read.
//     An acknowledged element is safe when it is in the union of the final siblings (a later
//     write's context contained it, so the later value carries it too);
//   - put workload: a blind put (no context) of a unique value; nothing supersedes it, so every
//     acknowledged value must be one of the key's final siblings;
//   - delete workload, on sets too: a removal reads the key, takes one element out of what it
//     read, adds its own unique element and writes with the context it read; a key delete reads
//     the key and deletes it with that context. Every element a removal or delete read and did
//     not write back is what it removes.
// The rules, per element:
//   - lost: its write was acknowledged, it is not in the final state, and no removal of it was
//     acknowledged or of unknown outcome;
//   - undone (a resurrection): an acknowledged removal took it out, yet it is in the final state,
//     and no write that carried it could have been concurrent with the removal. A write W that
//     carried it is concurrent with removal R when R's read did not show W's own element (so R's
//     context did not cover W's dot, and merge keeps W as a sibling beside R: a causal store
//     may do that; bringing back what R saw may not, which is what a lost tombstone does);
//   - present although its write failed for certain (refused before any replica applied it);
//   - a phantom: in the final state, never attempted (corrupt or invented data).
// Failed and unknown writes may otherwise go either way; they are counted.
// Reads during the run are checked too: a read that misses an element whose write was
// acknowledged before the read began, and that no removal could have taken out before the read
// ended, is stale. Sloppy quorums allow them (a read quorum of stand-ins); they are counted by
// the nemesis active when the read began, not failed.
//
// Used by tests/partition/driver.cc and its unit tests; single-threaded.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kv::partition {

enum class Outcome { kOk, kFail, kUnknown };
enum class OpKind { kSetAdd, kPut, kSetRemove, kDeleteKey };

const char* OutcomeName(Outcome o);
const char* OpKindName(OpKind k);

struct Op {
  int client = 0;
  int node = 0;  // the coordinator, 1-based
  OpKind kind = OpKind::kPut;
  std::string key;
  std::string element;  // the unique element (add, remove) or value (put) it writes; delete: none
  double invoke_s = 0, complete_s = 0;  // seconds since the run started
  Outcome outcome = Outcome::kFail;
  std::string error;  // empty when ok
  // Add, remove and delete read the key first (at the default consistency, a quorum):
  bool read = false;           // the read answered, so the write was sent
  std::set<std::string> seen;  // the elements it read (the union of the siblings)
  double read_done_s = 0;
  std::string removed;  // remove: the element it took out

  bool IsSetOp() const { return kind != OpKind::kPut; }
  // The elements this op removes: remove: `removed`; delete: everything it read.
  bool Removes(const std::string& e) const {
    return read && ((kind == OpKind::kSetRemove && removed == e) ||
                    (kind == OpKind::kDeleteKey && seen.count(e)));
  }
  // Whether the value it wrote carries `e`.
  bool Carries(const std::string& e) const {
    if (kind == OpKind::kPut || kind == OpKind::kDeleteKey || !read) return false;
    return e == element || (seen.count(e) && !Removes(e));
  }
};

// A set-workload value: elements separated by single spaces, sorted, no duplicates.
std::string EncodeSet(const std::set<std::string>& elements);
std::set<std::string> DecodeSet(const std::string& value);

// A nemesis period: [start_s, end_s) with its name ("halves", ...) and what it did.
struct Period {
  std::string nemesis;
  std::string detail;
  double start_s = 0, end_s = 0;
};

// The final state, as read at consistency ALL after repair: the siblings of each key.
using FinalState = std::map<std::string, std::vector<std::string>>;

struct Availability {
  std::string during;  // a nemesis name, or "none" for quiet time
  std::uint64_t ops = 0, ok = 0;
};

struct StaleReads {
  std::string during;  // a nemesis name, or "none"
  std::uint64_t reads = 0, stale = 0;
};

struct Findings {
  std::uint64_t attempted = 0, acknowledged = 0, failed = 0, unknown = 0;
  std::uint64_t lost = 0;               // acknowledged, not in the final state
  std::uint64_t failed_present = 0;     // failed, yet in the final state
  std::uint64_t unknown_present = 0;    // unknown outcome, in the final state
  std::uint64_t phantoms = 0;           // in the final state, never attempted
  std::uint64_t undone = 0;             // removed by an acknowledged removal, back in the end
  std::uint64_t removals = 0, removals_acknowledged = 0;  // removes and key deletes
  std::uint64_t unreadable_keys = 0;    // written keys the final read could not read
  std::vector<std::string> lost_examples;     // "key: element", at most 20
  std::vector<std::string> phantom_examples;  // at most 20
  std::vector<std::string> undone_examples;   // at most 20
  std::vector<std::string> failed_present_examples;  // at most 20
  std::vector<Availability> availability;     // per nemesis name, then "none"
  std::vector<StaleReads> stale_reads;        // per nemesis name, then "none"
};

// Checks `history` against `final`. A key of the history missing from `final` counts as
// unreadable, and its acknowledged writes as lost. `periods` attribute each operation to the
// nemesis active at its invocation, for availability.
Findings Check(const std::vector<Op>& history, const FinalState& final,
               const std::vector<Period>& periods);

}  // namespace kv::partition
