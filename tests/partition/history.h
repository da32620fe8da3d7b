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
//     acknowledged value must be one of the key's final siblings.
// Failed and unknown writes may go either way; they are counted, and so are those that made it.
// An element or value in the final state that no client ever attempted is a phantom (corrupt
// or invented data) and fails the run as a loss does.
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
enum class OpKind { kSetAdd, kPut };

const char* OutcomeName(Outcome o);
const char* OpKindName(OpKind k);

struct Op {
  int client = 0;
  int node = 0;  // the coordinator, 1-based
  OpKind kind = OpKind::kPut;
  std::string key;
  std::string element;  // the unique element (set) or value (put) this op writes
  double invoke_s = 0, complete_s = 0;  // seconds since the run started
  Outcome outcome = Outcome::kFail;
  std::string error;  // empty when ok
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

struct Findings {
  std::uint64_t attempted = 0, acknowledged = 0, failed = 0, unknown = 0;
  std::uint64_t lost = 0;               // acknowledged, not in the final state
  std::uint64_t failed_present = 0;     // failed, yet in the final state
  std::uint64_t unknown_present = 0;    // unknown outcome, in the final state
  std::uint64_t phantoms = 0;           // in the final state, never attempted
  std::uint64_t unreadable_keys = 0;    // written keys the final read could not read
  std::vector<std::string> lost_examples;     // "key: element", at most 20
  std::vector<std::string> phantom_examples;  // at most 20
  std::vector<Availability> availability;     // per nemesis name, then "none"
};

// Checks `history` against `final`. A key of the history missing from `final` counts as
// unreadable, and its acknowledged writes as lost. `periods` attribute each operation to the
// nemesis active at its invocation, for availability.
Findings Check(const std::vector<Op>& history, const FinalState& final,
               const std::vector<Period>& periods);

}  // namespace kv::partition
