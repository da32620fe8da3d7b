// The anti-entropy exchange between two replicas of one token range, as pure state machines.
//
// The initiator drives; the responder answers. Both see their own replica through a
// RangeReader. The initiator:
//   1. asks for the root of the responder's RangeTree over the range and compares it with its
//      own; equal roots end the exchange with nothing moved;
//   2. descends level by level, asking only for the children of nodes that differ;
//   3. for the differing leaves, asks for the responder's (key, version digest) list of the
//      leaf's part of the range, and compares it with its own;
//   4. for keys whose digests differ or that only the responder holds, pulls the responder's
//      records and merges them in; then pushes, for keys whose merge the responder lacks (it
//      held less, or nothing), the merged record. A key one side holds strictly older moves
//      once, in one direction.
// Every request is bounded (kMaxNodesPerRequest, kMaxKeysPerRequest), so memory stays bounded
// whatever the data size; a range that fails midway can be run again from the start.
//
// Pure (no I/O beyond the RangeReader); single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "repair/hash_tree.h"
#include "storage/record.h"
#include "storage/status.h"

namespace kv::repair {

struct KeyDigest {
  std::string key;
  std::uint64_t digest = 0;
  bool operator==(const KeyDigest&) const = default;
};

// One replica's data, as the exchange needs it.
class RangeReader {
 public:
  virtual ~RangeReader() = default;
  // The leaf hashes of the segments `range` touches (SpanOf), edge segments clipped to it.
  virtual Result<std::vector<std::uint64_t>> Leaves(const ring::TokenRange& range) = 0;
  // Every key in `range` with its version digest, in token order.
  virtual Result<std::vector<KeyDigest>> Entries(const ring::TokenRange& range) = 0;
  // The stored record of each key (empty when absent).
  virtual Result<storage::Record> Get(const std::string& key) = 0;
  // Joins `record` into the stored one.
  virtual Status Merge(const std::string& key, const storage::Record& record) = 0;
};

inline constexpr std::size_t kMaxNodesPerRequest = 4096;
inline constexpr std::size_t kMaxKeysPerRequest = 256;
inline constexpr std::size_t kMaxLeavesPerRequest = 64;

// What the initiator asks of the responder next.
struct Request {
  enum class Kind { kNodes, kEntries, kRecords, kPush, kDone };
  Kind kind = Kind::kDone;
  // kNodes: hashes of these nodes of level `level` of the responder's RangeTree (the root is
  // the single node of the top level; level 0 is the leaves).
  std::size_t level = 0;
  std::vector<std::uint64_t> nodes;
  // kEntries: these sub-ranges (each one leaf's part of the range).
  std::vector<ring::TokenRange> ranges;
  // kRecords: these keys. kPush: these records.
  std::vector<std::string> keys;
  std::vector<std::pair<std::string, storage::Record>> records;
};

struct Reply {
  std::vector<std::uint64_t> hashes;  // kNodes, in request order
  std::size_t depth = 0;              // kNodes: the responder's tree depth
  std::vector<std::vector<KeyDigest>> entries;  // kEntries, per requested range
  std::vector<storage::Record> records;         // kRecords, per requested key
};

struct ExchangeStats {
  std::uint64_t nodes_compared = 0;    // tree nodes whose hashes came over
  std::uint64_t leaves_differing = 0;  // segments whose key lists were compared
  std::uint64_t keys_compared = 0;     // entries received
  std::uint64_t keys_differing = 0;
  std::uint64_t records_pulled = 0, records_pushed = 0;
  std::uint64_t bytes_pulled = 0, bytes_pushed = 0;  // encoded record bytes
};

class Initiator {
 public:
  // `tree_bits`: both sides' HashTree segment bits (they must agree).
  // `dry_run`: find the differences, move nothing.
  Initiator(RangeReader* local, int tree_bits, ring::TokenRange range, bool dry_run = false);

  // The next request, given the reply to the previous one (none for the first call). Returns a
  // kDone request when finished; `status()` tells how it ended.
  Request Next(const Reply* reply);
  const Status& status() const { return status_; }
  const ExchangeStats& stats() const { return stats_; }
  // The keys that differed (dry runs report them).
  const std::vector<std::string>& differing_keys() const { return differing_; }

 private:
  Request Fail(Status s);
  Request AskNodes();
  Request AskEntries();
  Request AskRecords();
  Request Push();

  void CompareEntries(const std::vector<KeyDigest>& mine, const std::vector<KeyDigest>& theirs);

  enum class Phase { kStart, kNodes, kEntries, kRecords, kPush, kDone };
  RangeReader* const local_;
  HashTree shape_;  // segment arithmetic only
  const ring::TokenRange range_;
  const bool dry_run_;
  Phase phase_ = Phase::kStart;
  Status status_;
  ExchangeStats stats_;
  std::optional<RangeTree> mine_;
  SegmentSpan span_;
  std::size_t level_ = 0;                // the level being compared
  std::vector<std::uint64_t> asked_;     // the nodes of level_ last asked for
  std::vector<std::uint64_t> pending_;   // nodes of level_ still to ask for
  std::vector<std::uint64_t> differing_nodes_;  // nodes of level_ found differing so far
  std::vector<std::uint64_t> leaves_;    // differing leaves still to compare
  std::vector<std::uint64_t> leaves_asked_;
  std::vector<std::string> to_pull_;
  std::vector<std::string> pulled_;      // the keys of the last kRecords request
  std::vector<std::string> to_push_;
  std::vector<std::string> differing_;
};

// Answers an Initiator's requests from one replica. Keeps the RangeTree of the range between
// requests of one session.
class Responder {
 public:
  Responder(RangeReader* local, int tree_bits, ring::TokenRange range);
  // Fills `reply`; an error ends the session.
  Status Answer(const Request& request, Reply* reply);

 private:
  RangeReader* const local_;
  HashTree shape_;
  const ring::TokenRange range_;
  std::optional<RangeTree> tree_;
};

}  // namespace kv::repair
