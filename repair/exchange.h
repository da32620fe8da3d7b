// The anti-entropy exchange between two replicas of one token range, as pure state machines.
//
// The initiator drives; the responder answers. Both see their own replica through a
// RangeReader. The initiator:
//   1. asks for the root of the responder's RangeTree over the range; equal roots end the
//      exchange with nothing moved;
//   2. descends level by level, asking for the children of the nodes that differ only, while
//      few differ; once many nodes of a level differ, it asks about a sample of them only, to
//      estimate how many keys differ below them all (Poisson: a node whose share of differing
//      children is p holds about -ln(1 - p) differing keys per child);
//   3. reconciles the keys below the differing nodes with one invertible Bloom lookup table
//      (repair/iblt.h) sized for that estimate: the responder sends its table, the initiator
//      subtracts its own and peels the difference into one entry per differing key (its id,
//      and the difference of the two versions' values), in bytes proportional to the
//      difference. When a table does not peel (the estimate was low), another one over the same
//      keys under other cells is asked for, sized for what is left, and the two are peeled
//      together: what one lists is taken out of the other.
//      From each entry and its own version the initiator learns whether the responder lacks the
//      key and which version has more dots (a version that includes the other has more), so no
//      contexts cross: it pushes its record where the responder lacks the key or holds fewer
//      dots (the push's answer says, per record, whether the responder's join still holds more,
//      and those keys are fetched); fetches by id the keys only the responder holds or holds
//      with more dots, and pushes back the join of any fetched record that its own held
//      something more than (concurrent versions). After a table round the roots are
//      compared again, and a new round (its salt follows the new roots) runs while they differ:
//      a table may miss a key whose id or version value collided under its salt.
//   Where nearly every leaf differs (a replica that lost most of its data), or the estimate is
//   too large for a table, it falls back to the full descent:
//   3'. for each differing leaf holding many keys, goes on below the stored tree: both sides hash
//      the leaf's 16 equal token sub-ranges from a scan, and only differing ones are looked at,
//      until a bucket holds few keys (so the cost per difference grows with the log of the data,
//      not with the keys per segment); then asks for the sorted entry hashes (EntryHash(key,
//      version digest)) of each differing bucket and compares them with its own: an entry on one
//      side only is a key that side holds in a version the other lacks;
//   4. offers, for each of its own such keys, the key and its record's causal context. From
//      the context alone the responder tells whether it lacks anything of the initiator's record
//      and returns its own record when it holds something the context lacks (DVV: a record is
//      dominated exactly when its context is contained in the other's), with its entry hash;
//   5. fetches, by entry hash, the records of keys only the responder holds;
//   6. pushes the (merged) records the responder asked for.
// Either way, a key one side holds strictly older moves once, in one direction; concurrent
// versions move both ways once.
//
// A copy (PreferCopy: a new replica of the range pulls it during a ring movement, holding only
// the few keys that writes brought it since the movement began) skips the trees: the initiator
// sends the entry hashes of its own keys and asks for every record of the range but those,
// page by page in token order (kCopy), then offers its own keys as in step 4. The bytes that
// cross are the records' and 8 per key the initiator already held, where the trees would add
// their hashes and the entry hashes of every key. A copier with more than kMaxCopyOwnKeys keys
// in the range runs the ordinary exchange instead. Every request is bounded (the kMax... constants), so memory
// stays bounded whatever the data size; a range that fails midway can be run again from the
// start.
//
// Pure (no I/O beyond the RangeReader); single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "repair/hash_tree.h"
#include "repair/iblt.h"
#include "storage/record.h"
#include "storage/status.h"

namespace kv::repair {

struct KeyDigest {
  std::string key;
  std::uint64_t digest = 0;
  std::uint64_t dots = 0;  // storage::ContextDots of the record
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
  // The stored record of `key` (empty when absent).
  virtual Result<storage::Record> Get(const std::string& key) = 0;
  // Joins `record` into the stored one; returns the join.
  virtual Result<storage::Record> Merge(const std::string& key, const storage::Record& record) = 0;
  // Joins each record into the stored one, in one write where the store can (a copy's page).
  virtual Status MergeAll(const std::vector<std::pair<std::string, storage::Record>>& records) = 0;
  // Tombstone GC: keys in `range` whose records hold only tombstones written at or before
  // `cutoff_s`, with their version digests.
  virtual Result<std::vector<KeyDigest>> PurgeCandidates(const ring::TokenRange& range,
                                                         std::uint64_t cutoff_s) = 0;
  // Removes the key if its record still has `digest` and holds only tombstones.
  virtual Result<bool> PurgeIfUnchanged(const std::string& key, std::uint64_t digest) = 0;
  // Deletes every record in `range` (a new replica's leftovers, before a ring movement copies
  // the range to it: rpc/movement_runner.h). Returns how many keys it deleted.
  virtual Result<std::uint64_t> DropRange(const ring::TokenRange& range) = 0;
  // Every record in `range` as stored (storage::EncodeRecord), in token order, until `fn`
  // returns false.
  virtual Status Scan(const ring::TokenRange& range,
                      const std::function<bool(ring::Token token, std::string_view key,
                                               std::string_view encoded_record)>& fn) = 0;
};

inline constexpr std::size_t kMaxNodesPerRequest = 4096;  // parents per children request
inline constexpr std::size_t kMaxLeavesPerRequest = 64;
inline constexpr std::size_t kMaxKeysPerRequest = 256;
inline constexpr std::size_t kSplitWays = 16;
// A push, an offer's answers and a fetch reply by table item hold at most this many bytes of
// records, or one record alone (answers then cover a prefix of the offered keys, and the rest
// are offered again).
inline constexpr std::size_t kMaxPushBytes = std::size_t{4} << 20;
// A differing bucket with more of the initiator's keys than this is split before its entries
// are compared.
inline constexpr std::size_t kDenseBucket = 24;
// Estimating a large difference: differing nodes asked about per level.
inline constexpr std::size_t kSampleNodes = 16;
// Bounds of one table request: the nodes whose keys it covers, and its cells.
inline constexpr std::size_t kMaxSketchNodes = 4096;
inline constexpr std::size_t kMaxSketchCells = std::size_t{1} << 17;
inline constexpr int kMaxSketchAttempts = 3;
// An exchange that went through a table compares the roots again afterwards and runs again (with
// a new salt) while they differ, at most this many rounds in all.
inline constexpr int kMaxRounds = 3;
// Items asked for in one fetch by table item; the reply stops at kMaxPushBytes of records and
// says so (each such fetch costs the responder a scan of the union).
inline constexpr std::size_t kMaxItemsPerFetch = 4096;
// A copy: the most keys of its own a copier may hold in the range (each goes over as an entry
// hash in every page request), and the most records in one page (a page also stops at
// kMaxCopyBytes, and never between two keys of one token).
inline constexpr std::size_t kMaxCopyOwnKeys = 4096;
inline constexpr std::size_t kMaxCopyRecords = 16384;
// An entries reply carries at most this many entry hashes (8 MiB); a request for more is
// refused rather than answered without bound. The initiator asks for the entries of buckets
// it split to a few of its own keys, so only a replica holding a million keys in one bucket
// that the other lacks entirely could reach it (a copy, not this exchange, serves that case).
inline constexpr std::size_t kMaxEntriesPerReply = std::size_t{1} << 20;
// A copy page holds at most this many bytes of records (or one record alone): small enough
// that the source's scan for one page is short beside the client requests it serves.
inline constexpr std::size_t kMaxCopyBytes = std::size_t{32} << 10;

// A table is built over a union of differing nodes holding at most about this many keys per
// differing key; a larger union is first narrowed by an exact level of the tree, as long as that
// level's hashes cost at most twice the table.
inline constexpr double kScanPerDifference = 1024;

// Part `i` of `r` cut into kSplitWays equal token ranges. REQUIRES: r does not wrap and is at
// least kSplitWays tokens wide.
ring::TokenRange SplitPart(const ring::TokenRange& r, std::size_t i);

// What the initiator asks of the responder next.
struct Request {
  enum class Kind {
    kRoot,
    kChildren,
    kSplit,
    kEntries,
    kSketch,
    kOffer,
    kFetch,
    kFetchItems,
    kPush,
    kPurge,
    kCopy,
    kDone
  };
  Kind kind = Kind::kDone;
  // kChildren: the children (at level - 1) of these nodes of `level`. kSketch and kFetchItems:
  // the keys below these nodes of `level`.
  std::size_t level = 0;
  std::vector<std::uint64_t> nodes;
  // kSketch: an Iblt of `cells` cells under `cell_salt` of every key (Iblt::KeyOf,
  // Iblt::ValueOf under `salt`).
  // kFetchItems: the records of the keys whose Iblt::KeyOf under `salt` is one of `items`.
  std::uint64_t salt = 0;
  std::uint64_t cell_salt = 0;
  std::size_t cells = 0;
  std::vector<std::uint32_t> items;
  // kSplit: the XOR of the entry hashes in each of the kSplitWays equal parts of each of these
  // sub-ranges. kEntries: the sorted entry hashes of each of these sub-ranges. kFetch: these
  // sub-ranges, with the entry hashes wanted from each (`wanted`, parallel to `ranges`).
  std::vector<ring::TokenRange> ranges;
  std::vector<std::vector<std::uint64_t>> wanted;
  // kOffer: these keys with the initiator's causal context of each (parallel); with
  // `dry_run`, the answers carry no records.
  std::vector<std::string> keys;
  std::vector<storage::CausalContext> contexts;
  bool dry_run = false;
  // kPush: these records.
  std::vector<std::pair<std::string, storage::Record>> records;
  // kPurge: these keys (in `keys`), each to be removed if its digest is still this one.
  std::vector<std::uint64_t> digests;
  // kCopy: every record of the range from token `from` on, but those whose entry hash is in
  // `except` (sorted).
  ring::Token from = 0;
  std::vector<std::uint64_t> except;
};

struct OfferAnswer {
  bool need = false;        // the responder lacks something of the initiator's record
  storage::Record record;   // the responder's, when it holds what the context lacks; else empty
  std::uint64_t entry = 0;  // the responder's entry hash for the key; 0 when it holds none
};

struct Reply {
  std::size_t depth = 0;              // kRoot: the responder's tree depth
  std::vector<std::uint64_t> hashes;  // kRoot: {root}; kChildren: every child; kSplit: 16 per range
  std::vector<std::vector<std::uint64_t>> entries;  // kEntries: sorted entry hashes per range
  std::string sketch;                               // kSketch: Iblt::Encode
  std::vector<OfferAnswer> offers;                  // kOffer, per key
  std::vector<std::pair<std::string, storage::Record>> records;  // kFetch, kFetchItems, kCopy
  bool truncated = false;    // kFetchItems: more records matched than fit in the reply
  // kCopy: the page ended before the range did; the next one starts at token `resume`.
  bool more = false;
  ring::Token resume = 0;
  // kPush, per record: the responder's join holds something the pushed record lacks.
  std::vector<bool> holds_more;
  std::uint64_t purged = 0;  // kPurge
};

struct ExchangeStats {
  std::uint64_t nodes_compared = 0;    // tree node hashes that came over
  std::uint64_t leaves_differing = 0;  // segments that differed
  std::uint64_t buckets_split = 0;     // differing buckets split below the stored tree
  std::uint64_t keys_compared = 0;     // entry hashes received
  std::uint64_t sketch_cells = 0;      // table cells received
  std::uint64_t sketches = 0;          // tables received
  std::uint64_t rounds = 0;            // rounds after the first: roots compared again after a table
  std::uint64_t sketch_fallbacks = 0;  // estimates that went to the full descent instead
  std::uint64_t unions_narrowed = 0;   // exact levels descended to scan less
  std::uint64_t keys_differing = 0;
  std::uint64_t records_pulled = 0, records_pushed = 0;
  std::uint64_t bytes_pulled = 0, bytes_pushed = 0;  // records' bytes: key and encoded record
  std::uint64_t copy_pages = 0;                      // pages of a copy (0: no copy was made)
};

class Initiator {
 public:
  // `tree_bits`: both sides' HashTree segment bits (they must agree).
  // `dry_run`: find the differences, move nothing.
  // `scan_per_difference`: see kScanPerDifference (tests lower it to reach the narrowing with
  // little data).
  Initiator(RangeReader* local, int tree_bits, ring::TokenRange range, bool dry_run = false,
            double scan_per_difference = kScanPerDifference);

  // Copy rather than compare when this replica holds at most kMaxCopyOwnKeys keys of the range
  // (see the top of this file). For the movement runner, on a range's new replica; call before
  // the first Next. Ignored on a dry run.
  void PreferCopy() { copy_ = true; }

  // The next request, given the reply to the previous one (none for the first call). Returns a
  // kDone request when finished; `status()` tells how it ended.
  Request Next(const Reply* reply);
  const Status& status() const { return status_; }
  const ExchangeStats& stats() const { return stats_; }
  // How many keys differed: held on one side only, or in different versions.
  std::uint64_t differing() const { return stats_.keys_differing; }

 private:
  Request Fail(Status s);
  Request AskChildren();
  Request AskEstimate(std::size_t level, std::vector<std::uint64_t> nodes);
  Request Sample(const std::vector<std::uint64_t>& nodes, std::size_t level);
  Request Estimated(std::size_t children, double share_differing);
  Request AskSketch();
  Request Fallback();
  Request FetchItems();
  Request Reconcile(std::vector<Iblt::Entry> found);
  Status ScanUnion(const std::function<void(const KeyDigest&)>& fn);
  Request AskEntries();
  Request AskWork();  // the next split or entries request, else the offers
  Request Offer();
  Request Fetch();
  Request Push();
  Request Finish();
  Request AskCopy();
  void NewRound();  // forgets all but the stats
  void Pulled(const std::string& key, const storage::Record& theirs);

  enum class Phase {
    kStart,
    kRoot,
    kChildren,
    kEstimate,
    kSketch,
    kSplit,
    kEntries,
    kOffer,
    kFetch,
    kPush,
    kCopy,
    kDone
  };
  RangeReader* const local_;
  HashTree shape_;  // segment arithmetic only
  const ring::TokenRange range_;
  const bool dry_run_;
  const double scan_per_difference_;
  bool copy_ = false;
  ring::Token copy_from_ = 0;                                   // where the next page starts
  std::vector<std::pair<ring::Token, std::uint64_t>> copy_own_;  // my keys: token, entry hash
  Phase phase_ = Phase::kStart;
  Status status_;
  ExchangeStats stats_;
  std::optional<RangeTree> mine_;
  SegmentSpan span_;
  std::size_t level_ = 0;                       // the level of the nodes asked about
  std::vector<std::uint64_t> asked_;            // parents whose children were last asked for
  std::vector<std::uint64_t> pending_;          // parents still to ask about
  std::vector<std::uint64_t> differing_nodes_;  // children found differing at this level
  // Estimating (Phase::kEstimate): the differing nodes of union_level_, known exactly, that the
  // table will cover; while sampling, each node last asked about stands for scale_ of them.
  std::uint64_t their_root_ = 0;
  std::size_t union_level_ = 0;
  std::vector<std::uint64_t> union_;
  bool sampling_ = false;
  double scale_ = 1;
  std::uint64_t salt_ = 0;       // of table ids and version values, for the round
  std::uint64_t cell_salt_ = 0;  // of the cells of the table asked for
  std::size_t cells_ = 0;
  double estimate_ = 0;  // differing keys
  int attempts_ = 0;
  std::vector<Iblt> tables_;        // differences received so far, peeled together
  std::vector<Iblt::Entry> found_;  // what they listed
  std::vector<std::uint32_t> theirs_items_;    // ids of keys to fetch from the responder
  std::vector<std::uint32_t> fetching_items_;  // the ids of the fetch under way, sorted
  bool check_pushes_ = false;                  // push answers name keys to fetch
  std::vector<std::string> pushing_;           // the keys of the push under way
  bool via_table_ = false;                     // a table listed the differences (this round)
  bool used_table_ = false;                    // ... in some round
  int rounds_ = 0;
  std::set<std::size_t> table_segments_;       // segments of the differing keys it found
  // Differing buckets (sub-ranges of the range) to split, and to compare entry by entry.
  void AddBucket(const ring::TokenRange& r);
  std::vector<ring::TokenRange> to_split_;
  std::vector<ring::TokenRange> to_compare_;
  std::vector<ring::TokenRange> asked_ranges_;
  // Keys of mine whose entries the responder lacks; and per leaf, entry hashes only they hold.
  std::vector<std::string> to_offer_;
  std::vector<std::string> offered_;
  std::vector<std::pair<ring::TokenRange, std::vector<std::uint64_t>>> theirs_only_;
  std::vector<std::string> to_push_;
};

// Answers an Initiator's requests from one replica. Keeps the RangeTree of the range between
// requests of one session, from one root request to the next.
class Responder {
 public:
  // `max_entries`: the most entry hashes one entries reply may carry (kMaxEntriesPerReply).
  Responder(RangeReader* local, int tree_bits, ring::TokenRange range,
            std::size_t max_entries = kMaxEntriesPerReply);
  // Fills `reply`; an error ends the session.
  Status Answer(const Request& request, Reply* reply);

 private:
  Status EnsureTree();
  // Calls `fn` for every key below `nodes` of `level` (REQUIRES: EnsureTree, nodes checked).
  Status ScanNodes(std::size_t level, const std::vector<std::uint64_t>& nodes,
                   const std::function<void(const KeyDigest&)>& fn);
  Status CheckNodes(const Request& request) const;

  RangeReader* const local_;
  const std::size_t max_entries_;
  HashTree shape_;
  const ring::TokenRange range_;
  SegmentSpan span_;
  std::optional<RangeTree> tree_;
};

}  // namespace kv::repair
