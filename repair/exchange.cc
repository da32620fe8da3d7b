#include "repair/exchange.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "repair/iblt.h"
#include "storage/codec.h"

namespace kv::repair {
namespace {

bool Inside(const ring::TokenRange& outer, const ring::TokenRange& inner) {
  if (!outer.Contains(inner.begin)) return false;
  if (outer.end == 0) return true;
  return inner.end != 0 && inner.end <= outer.end && inner.end > inner.begin;
}

// (entry hash, key) of every key in `range`, sorted by hash.
Result<std::vector<std::pair<std::uint64_t, std::string>>> Hashed(RangeReader* r,
                                                                  const ring::TokenRange& range) {
  auto entries = r->Entries(range);
  if (!entries.ok()) return entries.status();
  std::vector<std::pair<std::uint64_t, std::string>> out;
  out.reserve(entries->size());
  for (auto& e : entries.value()) out.emplace_back(EntryHash(e.key, e.digest), std::move(e.key));
  std::sort(out.begin(), out.end());
  return out;
}

// The XOR of entry hashes in each of the kSplitWays parts of `r`.
Result<std::vector<std::uint64_t>> SplitHashes(RangeReader* reader, const ring::TokenRange& r) {
  auto entries = reader->Entries(r);
  if (!entries.ok()) return entries.status();
  std::vector<std::uint64_t> out(kSplitWays, 0);
  const std::uint64_t width = r.end - r.begin;  // end 0: 2^64 - begin, mod 2^64
  const std::uint64_t step = width / kSplitWays;
  for (const auto& e : entries.value()) {
    const ring::Token t = ring::TokenOf(e.key);
    std::size_t part = static_cast<std::size_t>((t - r.begin) / step);
    if (part >= kSplitWays) part = kSplitWays - 1;  // the remainder goes to the last part
    out[part] ^= EntryHash(e.key, e.digest);
  }
  return out;
}

// The token range below node `node` of `level` of a RangeTree over `span`'s leaves: leaves
// [node * 16^level, (node + 1) * 16^level), clipped to the range.
ring::TokenRange NodeTokens(const HashTree& shape, const ring::TokenRange& range,
                            const SegmentSpan& span, std::size_t level, std::uint64_t node) {
  const std::size_t width = std::size_t{1} << (4 * level);  // RangeTree::kFanout == 16
  const std::size_t first = static_cast<std::size_t>(node) * width;
  const std::size_t last = std::min(first + width, span.count()) - 1;
  return {ClipSegment(shape, span.first + first, range).begin,
          ClipSegment(shape, span.first + last, range).end};
}

std::uint64_t Mix(std::uint64_t x, std::uint64_t seed) {
  return XXH3_64bits_withSeed(&x, sizeof x, seed);
}

bool Splittable(const ring::TokenRange& r) {
  return static_cast<std::uint64_t>(r.end - r.begin) >= kSplitWays * 2;
}

}  // namespace

ring::TokenRange SplitPart(const ring::TokenRange& r, std::size_t i) {
  const std::uint64_t step = (r.end - r.begin) / kSplitWays;
  const ring::Token b = r.begin + step * i;
  const ring::Token e = i + 1 == kSplitWays ? r.end : r.begin + step * (i + 1);
  return {b, e};
}

Initiator::Initiator(RangeReader* local, int tree_bits, ring::TokenRange range, bool dry_run,
                     double scan_per_difference)
    : local_(local),
      shape_(tree_bits),
      range_(range),
      dry_run_(dry_run),
      scan_per_difference_(scan_per_difference) {}

Request Initiator::Fail(Status s) {
  status_ = std::move(s);
  phase_ = Phase::kDone;
  return Request{};
}

Request Initiator::Finish() {
  // Through a table, the differing segments are those of the differing keys found.
  used_table_ = used_table_ || via_table_;
  if (used_table_) stats_.leaves_differing = table_segments_.size();
  // A table can hide a difference (ids or version values that collide under this exchange's
  // salt): compare the roots again, and go on with a new salt (it follows the roots) while they
  // differ, for a bounded number of rounds.
  if (via_table_ && !dry_run_ && ++rounds_ < kMaxRounds) {
    ++stats_.rounds;
    NewRound();
    return Next(nullptr);
  }
  return Fail(Status::Ok());
}

void Initiator::NewRound() {
  phase_ = Phase::kStart;
  mine_.reset();
  level_ = 0;
  asked_.clear();
  pending_.clear();
  differing_nodes_.clear();
  their_root_ = 0;
  union_level_ = 0;
  union_.clear();
  sampling_ = false;
  scale_ = 1;
  salt_ = 0;
  cell_salt_ = 0;
  cells_ = 0;
  estimate_ = 0;
  attempts_ = 0;
  tables_.clear();
  found_.clear();
  theirs_items_.clear();
  fetching_items_.clear();
  via_table_ = false;
  check_pushes_ = false;
  pushing_.clear();
  to_split_.clear();
  to_compare_.clear();
  asked_ranges_.clear();
  to_offer_.clear();
  offered_.clear();
  theirs_only_.clear();
  to_push_.clear();
}

Request Initiator::AskChildren() {
  Request r;
  r.kind = Request::Kind::kChildren;
  r.level = level_;
  const std::size_t n = std::min(pending_.size(), kMaxNodesPerRequest);
  r.nodes.assign(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
  asked_ = r.nodes;
  phase_ = Phase::kChildren;
  return r;
}

void Initiator::AddBucket(const ring::TokenRange& r) {
  // Count my keys in it; dense buckets are split first (their keys are scanned again then).
  std::size_t mine = 0;
  auto entries = local_->Entries(r);
  if (entries.ok()) mine = entries->size();
  if (mine > kDenseBucket && Splittable(r)) {
    to_split_.push_back(r);
  } else {
    to_compare_.push_back(r);
  }
}

Request Initiator::AskWork() {
  if (!to_split_.empty()) {
    Request r;
    r.kind = Request::Kind::kSplit;
    const std::size_t n = std::min(to_split_.size(), kMaxLeavesPerRequest);
    r.ranges.assign(to_split_.end() - static_cast<std::ptrdiff_t>(n), to_split_.end());
    to_split_.resize(to_split_.size() - n);
    asked_ranges_ = r.ranges;
    phase_ = Phase::kSplit;
    return r;
  }
  return AskEntries();
}

Request Initiator::AskEntries() {
  if (to_compare_.empty()) return Offer();
  Request r;
  r.kind = Request::Kind::kEntries;
  const std::size_t n = std::min(to_compare_.size(), kMaxLeavesPerRequest);
  r.ranges.assign(to_compare_.end() - static_cast<std::ptrdiff_t>(n), to_compare_.end());
  to_compare_.resize(to_compare_.size() - n);
  asked_ranges_ = r.ranges;
  phase_ = Phase::kEntries;
  return r;
}

Request Initiator::Offer() {
  if (to_offer_.empty()) {
    if (!dry_run_) return Fetch();
    // Entries they hold that matched none of my keys are keys only they hold.
    for (const auto& l : theirs_only_) stats_.keys_differing += l.second.size();
    stats_.keys_differing += theirs_items_.size();
    return Finish();
  }
  Request r;
  r.kind = Request::Kind::kOffer;
  r.dry_run = dry_run_;
  const std::size_t n = std::min(to_offer_.size(), kMaxKeysPerRequest);
  for (std::size_t i = 0; i < n; ++i) {
    Result<storage::Record> rec = local_->Get(to_offer_[i]);
    if (!rec.ok()) return Fail(rec.status());
    r.keys.push_back(to_offer_[i]);
    r.contexts.push_back(rec->context());
  }
  to_offer_.erase(to_offer_.begin(), to_offer_.begin() + static_cast<std::ptrdiff_t>(n));
  offered_ = r.keys;
  phase_ = Phase::kOffer;
  return r;
}

Request Initiator::Fetch() {
  // Drop leaves whose every wanted entry turned out to belong to an offered key.
  std::erase_if(theirs_only_, [](const auto& l) { return l.second.empty(); });
  if (theirs_only_.empty()) return theirs_items_.empty() ? Push() : FetchItems();
  Request r;
  r.kind = Request::Kind::kFetch;
  std::size_t keys = 0;
  while (!theirs_only_.empty() && r.ranges.size() < kMaxLeavesPerRequest &&
         keys < kMaxKeysPerRequest) {
    auto& [bucket, hashes] = theirs_only_.back();
    r.ranges.push_back(bucket);
    keys += hashes.size();
    r.wanted.push_back(std::move(hashes));
    theirs_only_.pop_back();
  }
  phase_ = Phase::kFetch;
  return r;
}

Request Initiator::Push() {
  if (to_push_.empty()) return theirs_items_.empty() ? Finish() : FetchItems();
  Request r;
  r.kind = Request::Kind::kPush;
  const std::size_t most = std::min(to_push_.size(), kMaxKeysPerRequest);
  std::size_t n = 0, batch_bytes = 0;
  // Bounded in bytes too (large values), but never empty.
  while (n < most) {
    Result<storage::Record> rec = local_->Get(to_push_[n]);
    if (!rec.ok()) return Fail(rec.status());
    const std::size_t size = storage::EncodeRecord(rec.value()).size() + to_push_[n].size();
    // A record that would take the batch past the bound goes in the next one (alone if need
    // be), so no message is larger than the bound or one record.
    if (n > 0 && batch_bytes + size > kMaxPushBytes) break;
    stats_.bytes_pushed += size;
    batch_bytes += size;
    ++stats_.records_pushed;
    r.records.emplace_back(to_push_[n], std::move(rec.value()));
    ++n;
  }
  pushing_.assign(to_push_.begin(), to_push_.begin() + static_cast<std::ptrdiff_t>(n));
  to_push_.erase(to_push_.begin(), to_push_.begin() + static_cast<std::ptrdiff_t>(n));
  phase_ = Phase::kPush;
  return r;
}

void Initiator::Pulled(const std::string& key, const storage::Record& theirs) {
  ++stats_.records_pulled;
  stats_.bytes_pulled += key.size() + storage::EncodeRecord(theirs).size();
}

Request Initiator::AskEstimate(std::size_t level, std::vector<std::uint64_t> nodes) {
  Request r;
  r.kind = Request::Kind::kChildren;
  r.level = level;
  r.nodes = std::move(nodes);
  asked_ = r.nodes;
  level_ = level;
  phase_ = Phase::kEstimate;
  return r;
}

Request Initiator::Sample(const std::vector<std::uint64_t>& nodes, std::size_t level) {
  // A deterministic sample (the salt follows both roots), by a partial Fisher-Yates shuffle.
  std::vector<std::uint64_t> pool = nodes;
  const std::size_t n = std::min(pool.size(), kSampleNodes);
  std::uint64_t x = salt_;
  for (std::size_t i = 0; i < n; ++i) {
    x = Mix(x, i);
    std::swap(pool[i], pool[i + static_cast<std::size_t>(x % (pool.size() - i))]);
  }
  pool.resize(n);
  scale_ *= static_cast<double>(nodes.size()) / static_cast<double>(n);
  sampling_ = true;
  return AskEstimate(level, std::move(pool));
}

Request Initiator::Estimated(std::size_t children, double share_differing) {
  // Every child differs: the difference is too dense to estimate (a replica that lost most of
  // its data), and key lists cost less than a table would.
  if (share_differing >= 1) return Fallback();
  const double keys = scale_ * static_cast<double>(children) * -std::log1p(-share_differing);
  const double items = std::ceil(keys);  // one table entry per differing key
  if (items > static_cast<double>(kMaxSketchCells) || union_.size() > kMaxSketchNodes) {
    return Fallback();
  }
  // Both sides scan every key below the union to build their tables. Where that is many keys
  // for each differing one (the differences are spread thin over a large range), narrow the
  // union by one exact level first: more tree hashes on the wire, much less to scan.
  if (union_level_ > 0 && union_.size() <= kMaxNodesPerRequest) {
    const std::size_t probe = std::min(union_.size(), kSampleNodes);
    std::size_t probed_keys = 0;
    for (std::size_t i = 0; i < probe; ++i) {
      auto entries = local_->Entries(NodeTokens(shape_, range_, span_, union_level_, union_[i]));
      if (!entries.ok()) return Fail(entries.status());
      probed_keys += entries->size();
    }
    const double union_keys = static_cast<double>(probed_keys) *
                              static_cast<double>(union_.size()) / static_cast<double>(probe);
    // ... unless the level's hashes would cost more than twice the table itself.
    const double narrowing_bytes = static_cast<double>(union_.size() * RangeTree::kFanout * 8);
    const double table_bytes =
        static_cast<double>(Iblt::CellsFor(static_cast<std::size_t>(items)) * Iblt::kCellBytes);
    if (union_keys > scan_per_difference_ * std::max(keys, 1.0) &&
        narrowing_bytes <= 2 * table_bytes) {
      sampling_ = false;
      scale_ = 1;
      ++stats_.unions_narrowed;
      return AskEstimate(union_level_, union_);
    }
  }
  estimate_ = items;
  cells_ = Iblt::CellsFor(static_cast<std::size_t>(items));
  cell_salt_ = salt_;
  if (cells_ > kMaxSketchCells) return Fallback();
  return AskSketch();
}

Request Initiator::AskSketch() {
  Request r;
  r.kind = Request::Kind::kSketch;
  r.level = union_level_;
  r.nodes = union_;
  r.salt = salt_;
  r.cell_salt = cell_salt_;
  r.cells = cells_;
  phase_ = Phase::kSketch;
  return r;
}

Request Initiator::Fallback() {
  ++stats_.sketch_fallbacks;
  sampling_ = false;
  if (union_level_ == 0) {
    stats_.leaves_differing = union_.size();
    for (std::uint64_t leaf : union_) AddBucket(ClipSegment(shape_, span_.first + leaf, range_));
    return AskWork();
  }
  level_ = union_level_;
  pending_ = union_;
  return AskChildren();
}

Status Initiator::ScanUnion(const std::function<void(const KeyDigest&)>& fn) {
  for (std::uint64_t node : union_) {
    auto entries = local_->Entries(NodeTokens(shape_, range_, span_, union_level_, node));
    if (!entries.ok()) return entries.status();
    for (const auto& e : entries.value()) fn(e);
  }
  return Status::Ok();
}

Request Initiator::FetchItems() {
  // Pushes after this are of records joined with what came back: their answers are not checked.
  check_pushes_ = false;
  std::sort(theirs_items_.begin(), theirs_items_.end());
  theirs_items_.erase(std::unique(theirs_items_.begin(), theirs_items_.end()),
                      theirs_items_.end());
  Request r;
  r.kind = Request::Kind::kFetchItems;
  r.level = union_level_;
  r.nodes = union_;
  r.salt = salt_;
  const std::size_t n = std::min(theirs_items_.size(), kMaxItemsPerFetch);
  r.items.assign(theirs_items_.end() - static_cast<std::ptrdiff_t>(n), theirs_items_.end());
  theirs_items_.resize(theirs_items_.size() - n);
  fetching_items_ = r.items;
  phase_ = Phase::kFetch;
  return r;
}

Request Initiator::Reconcile(std::vector<Iblt::Entry> found) {
  stats_.keys_differing += found.size();
  if (found.empty()) return Finish();
  std::sort(found.begin(), found.end(),
            [](const Iblt::Entry& a, const Iblt::Entry& b) { return a.key < b.key; });
  // My keys among the differing ids, with their version values.
  struct Mine {
    std::uint32_t id;
    std::uint64_t value;
    std::string key;
  };
  std::vector<Mine> mine;
  if (Status s = ScanUnion([&](const KeyDigest& e) {
        const std::uint32_t id = Iblt::KeyOf(e.key, salt_);
        auto it = std::lower_bound(found.begin(), found.end(), id,
                                   [](const Iblt::Entry& a, std::uint32_t k) { return a.key < k; });
        if (it != found.end() && it->key == id) {
          mine.push_back({id, Iblt::ValueOf(e.key, e.digest, e.dots, salt_), e.key});
          table_segments_.insert(shape_.SegmentOf(ring::TokenOf(e.key)));
        }
      });
      !s.ok()) {
    return Fail(s);
  }
  if (dry_run_) return Finish();
  std::sort(mine.begin(), mine.end(), [](const Mine& a, const Mine& b) { return a.id < b.id; });
  check_pushes_ = true;
  std::size_t m = 0;
  for (const Iblt::Entry& f : found) {
    while (m < mine.size() && mine[m].id < f.key) ++m;
    std::size_t end = m;
    while (end < mine.size() && mine[end].id == f.key) ++end;
    if (end == m) {  // a key only they hold
      theirs_items_.push_back(f.key);
      continue;
    }
    if (end - m > 1) {
      // Two of my keys share the id (one of them differs, the others were in the table on both
      // sides alike): each goes over, and the answers say which to fetch.
      for (std::size_t i = m; i < end; ++i) to_push_.push_back(mine[i].key);
      m = end;
      continue;
    }
    const std::uint64_t theirs = Iblt::Other(mine[m].value, f.difference);
    // Absent there, or with more dots here: mine goes over, and its answer says whether their
    // join still holds something mine lacked. Fewer dots here: theirs comes back (and the join
    // goes over if mine held something theirs lacked). As many: concurrent versions, both ways.
    const int more = theirs == 0 ? 1 : Iblt::MoreDots(mine[m].value, theirs);
    if (more >= 0) to_push_.push_back(mine[m].key);
    if (more <= 0) theirs_items_.push_back(f.key);
    m = end;
  }
  return Push();
}

Request Initiator::AskCopy() {
  Request r;
  r.kind = Request::Kind::kCopy;
  r.from = copy_from_;
  auto first = std::lower_bound(copy_own_.begin(), copy_own_.end(),
                                std::make_pair(copy_from_, std::uint64_t{0}));
  for (auto it = first; it != copy_own_.end(); ++it) r.except.push_back(it->second);
  std::sort(r.except.begin(), r.except.end());
  phase_ = Phase::kCopy;
  return r;
}

Request Initiator::Next(const Reply* reply) {
  switch (phase_) {
    case Phase::kStart: {
      if (copy_ && !dry_run_ && rounds_ == 0) {
        // My own keys in the range, counted no further than the bound.
        std::vector<std::string> keys;
        Status st = local_->Scan(range_, [&](ring::Token t, std::string_view key,
                                            std::string_view value) {
          if (keys.size() == kMaxCopyOwnKeys) {
            keys.emplace_back();  // one past the bound: too many
            return false;
          }
          copy_own_.emplace_back(t, EntryHash(key, storage::VersionDigest(value)));
          keys.emplace_back(key);
          return true;
        });
        if (!st.ok()) return Fail(st);
        if (keys.size() <= kMaxCopyOwnKeys) {
          to_offer_ = std::move(keys);
          std::sort(copy_own_.begin(), copy_own_.end());
          copy_from_ = range_.begin;
          return AskCopy();
        }
        copy_own_.clear();
      }
      auto leaves = local_->Leaves(range_);
      if (!leaves.ok()) return Fail(leaves.status());
      span_ = SpanOf(shape_, range_);
      if (leaves->size() != span_.count()) {
        return Fail(Status::Corruption("range reader returned the wrong number of leaves"));
      }
      mine_.emplace(std::move(leaves.value()));
      phase_ = Phase::kRoot;
      Request r;
      r.kind = Request::Kind::kRoot;
      return r;
    }
    case Phase::kRoot: {
      if (reply == nullptr || reply->hashes.size() != 1 || reply->depth != mine_->depth()) {
        return Fail(Status::InvalidArgument("peer's tree does not match this range"));
      }
      stats_.nodes_compared += 1;
      if (reply->hashes[0] == mine_->root()) return Finish();
      their_root_ = reply->hashes[0];
      // A salt of its own for every pair of trees: a collision of table items never repeats.
      salt_ = Mix(mine_->root() ^ Mix(their_root_, 1), 0);
      level_ = mine_->depth() - 1;
      if (level_ == 0) {  // a one-leaf tree: the root is the leaf
        stats_.leaves_differing = 1;
        AddBucket(ClipSegment(shape_, span_.first, range_));
        return AskWork();
      }
      union_level_ = level_;
      union_ = {0};
      return AskEstimate(level_, union_);
    }
    case Phase::kEstimate: {
      std::size_t expected = 0;
      for (std::uint64_t p : asked_) {
        auto [b, e] = mine_->Children(level_, p);
        expected += e - b;
      }
      if (reply == nullptr || reply->hashes.size() != expected || expected == 0) {
        return Fail(Status::InvalidArgument("peer's tree does not match this range"));
      }
      stats_.nodes_compared += expected;
      const auto& below = mine_->level(level_ - 1);
      std::vector<std::uint64_t> differing;
      std::size_t i = 0;
      for (std::uint64_t p : asked_) {
        auto [b, e] = mine_->Children(level_, p);
        for (std::size_t c = b; c < e; ++c, ++i) {
          if (reply->hashes[i] != below[c]) differing.push_back(c);
        }
      }
      const std::size_t child_level = level_ - 1;
      const double share = static_cast<double>(differing.size()) / static_cast<double>(expected);
      if (sampling_) {
        if (share < 0.5 || child_level == 0 || differing.empty()) return Estimated(expected, share);
        return Sample(differing, child_level);  // still dense: look one level further down
      }
      // Exact so far: these are all the differing nodes of child_level.
      if (differing.empty()) return Finish();  // (the parents' hashes came from these children)
      union_level_ = child_level;
      union_ = differing;
      if (child_level == 0) return Estimated(expected, share);
      if (differing.size() <= kSampleNodes) return AskEstimate(child_level, union_);
      return Sample(union_, child_level);
    }
    case Phase::kSketch: {
      Iblt theirs(cells_, cell_salt_);
      if (reply == nullptr || !theirs.Decode(reply->sketch)) {
        return Fail(Status::InvalidArgument("peer's table has the wrong size"));
      }
      stats_.sketch_cells += theirs.cells();
      ++stats_.sketches;
      Iblt diff(cells_, cell_salt_);
      if (Status s = ScanUnion([&](const KeyDigest& e) {
            diff.Add(Iblt::KeyOf(e.key, salt_), Iblt::ValueOf(e.key, e.digest, e.dots, salt_));
          });
          !s.ok()) {
        return Fail(s);
      }
      diff.Subtract(theirs);
      for (const Iblt::Entry& e : found_) diff.Remove(e);  // listed by the tables before
      tables_.push_back(std::move(diff));
      if (!Iblt::PeelTogether(tables_, &found_)) {
        // Too small for the difference (the estimate was low): another table, over the same
        // keys under other cells, for what is left; the tables are peeled together.
        if (++attempts_ < kMaxSketchAttempts) {
          const double left =
              std::max(estimate_ - static_cast<double>(found_.size()),
                       static_cast<double>(tables_.back().NonzeroCells()) * 5 / 6);
          cells_ = std::min(Iblt::CellsFor(static_cast<std::size_t>(std::ceil(left * 1.25))),
                            kMaxSketchCells);
          estimate_ = static_cast<double>(found_.size()) + left;
          cell_salt_ = Mix(salt_, static_cast<std::uint64_t>(attempts_));
          return AskSketch();
        }
        return Fallback();
      }
      via_table_ = true;
      return Reconcile(std::move(found_));
    }
    case Phase::kChildren: {
      // The children of each asked parent, in order.
      std::size_t expected = 0;
      for (std::uint64_t p : asked_) {
        auto [b, e] = mine_->Children(level_, p);
        expected += e - b;
      }
      if (reply == nullptr || reply->hashes.size() != expected) {
        return Fail(Status::InvalidArgument("peer's tree does not match this range"));
      }
      stats_.nodes_compared += expected;
      const auto& below = mine_->level(level_ - 1);
      std::size_t i = 0;
      for (std::uint64_t p : asked_) {
        auto [b, e] = mine_->Children(level_, p);
        for (std::size_t c = b; c < e; ++c, ++i) {
          if (reply->hashes[i] != below[c]) differing_nodes_.push_back(c);
        }
      }
      if (!pending_.empty()) return AskChildren();
      --level_;
      if (level_ == 0) {
        stats_.leaves_differing = differing_nodes_.size();
        for (std::uint64_t leaf : differing_nodes_) {
          AddBucket(ClipSegment(shape_, span_.first + leaf, range_));
        }
        differing_nodes_.clear();
        return AskWork();
      }
      pending_ = std::move(differing_nodes_);
      differing_nodes_.clear();
      if (pending_.empty()) return Finish();
      return AskChildren();
    }
    case Phase::kSplit: {
      if (reply == nullptr || reply->hashes.size() != asked_ranges_.size() * kSplitWays) {
        return Fail(Status::InvalidArgument("peer answered the wrong number of parts"));
      }
      stats_.buckets_split += asked_ranges_.size();
      stats_.nodes_compared += reply->hashes.size();
      for (std::size_t i = 0; i < asked_ranges_.size(); ++i) {
        auto mine = SplitHashes(local_, asked_ranges_[i]);
        if (!mine.ok()) return Fail(mine.status());
        for (std::size_t p = 0; p < kSplitWays; ++p) {
          if ((*mine)[p] != reply->hashes[i * kSplitWays + p]) {
            AddBucket(SplitPart(asked_ranges_[i], p));
          }
        }
      }
      return AskWork();
    }
    case Phase::kEntries: {
      if (reply == nullptr || reply->entries.size() != asked_ranges_.size()) {
        return Fail(Status::InvalidArgument("peer answered the wrong number of leaves"));
      }
      for (std::size_t i = 0; i < asked_ranges_.size(); ++i) {
        auto mine = Hashed(local_, asked_ranges_[i]);
        if (!mine.ok()) return Fail(mine.status());
        const auto& theirs = reply->entries[i];
        if (!std::is_sorted(theirs.begin(), theirs.end())) {
          return Fail(Status::InvalidArgument("peer's entry hashes are not sorted"));
        }
        stats_.keys_compared += theirs.size();
        std::vector<std::uint64_t> only_theirs;
        std::size_t a = 0, b = 0;
        while (a < mine->size() || b < theirs.size()) {
          if (b == theirs.size() || (a < mine->size() && (*mine)[a].first < theirs[b])) {
            to_offer_.push_back((*mine)[a].second);
            ++stats_.keys_differing;
            ++a;
          } else if (a == mine->size() || theirs[b] < (*mine)[a].first) {
            only_theirs.push_back(theirs[b]);
            ++b;
          } else {
            ++a;
            ++b;
          }
        }
        if (!only_theirs.empty())
          theirs_only_.emplace_back(asked_ranges_[i], std::move(only_theirs));
      }
      return AskWork();
    }
    case Phase::kOffer: {
      // The peer answers a prefix of the offers (at least one): its answers stop at a byte
      // bound, and the rest are offered again.
      if (reply == nullptr || reply->offers.empty() || reply->offers.size() > offered_.size()) {
        return Fail(Status::InvalidArgument("peer answered the wrong number of offers"));
      }
      to_offer_.insert(to_offer_.begin(),
                       offered_.begin() + static_cast<std::ptrdiff_t>(reply->offers.size()),
                       offered_.end());
      for (std::size_t i = 0; i < reply->offers.size(); ++i) {
        const OfferAnswer& a = reply->offers[i];
        if (!a.record.empty() && !dry_run_) {
          Pulled(offered_[i], a.record);
          if (auto m = local_->Merge(offered_[i], a.record); !m.ok()) return Fail(m.status());
        }
        if (a.need) to_push_.push_back(offered_[i]);
        if (a.entry != 0) {
          // Their version of this key is not a key only they hold.
          for (auto& [bucket, hashes] : theirs_only_) std::erase(hashes, a.entry);
        }
      }
      return Offer();
    }
    case Phase::kFetch: {
      if (reply == nullptr) return Fail(Status::InvalidArgument("no reply to a fetch"));
      for (const auto& [key, rec] : reply->records) {
        if (!range_.Contains(ring::TokenOf(key))) {
          return Fail(Status::InvalidArgument("peer sent a key outside the range"));
        }
        Pulled(key, rec);
        if (via_table_) table_segments_.insert(shape_.SegmentOf(ring::TokenOf(key)));
        if (reply->truncated) {
          const std::uint32_t item = Iblt::KeyOf(key, salt_);
          auto [b, e] = std::equal_range(fetching_items_.begin(), fetching_items_.end(), item);
          fetching_items_.erase(b, e);
        }
        if (!via_table_) ++stats_.keys_differing;  // (through a table, counted when peeled)
        auto merged = local_->Merge(key, rec);
        if (!merged.ok()) return Fail(merged.status());
        // Mine held something theirs lacked (concurrent versions): the join goes back.
        if (via_table_ && merged.value() != rec) to_push_.push_back(key);
      }
      // A reply cut short: the items it did not serve go again (unless it served none of them,
      // when they changed on the peer meanwhile and are left to the next repair).
      if (reply->truncated && !reply->records.empty()) {
        theirs_items_.insert(theirs_items_.end(), fetching_items_.begin(), fetching_items_.end());
        std::sort(theirs_items_.begin(), theirs_items_.end());
      }
      fetching_items_.clear();
      return Fetch();
    }
    case Phase::kCopy: {
      if (reply == nullptr) return Fail(Status::InvalidArgument("no reply to a copy"));
      const ring::TokenRange rest{copy_from_, range_.end};
      ring::Token last = copy_from_;
      for (const auto& [key, rec] : reply->records) {
        const ring::Token t = ring::TokenOf(key);
        if (!rest.Contains(t) || t < last) {
          return Fail(Status::InvalidArgument("peer's copy sent a key outside the range or out of "
                                              "token order"));
        }
        last = t;
      }
      // The whole page in one write. Keys of mine among them are offered afterwards, which
      // settles their versions.
      if (Status s = local_->MergeAll(reply->records); !s.ok()) return Fail(s);
      for (const auto& [key, rec] : reply->records) {
        Pulled(key, rec);
        ++stats_.keys_differing;
      }
      ++stats_.copy_pages;
      if (reply->more) {
        const bool past_end = range_.end != 0 && reply->resume >= range_.end;
        // (An honest page that goes on holds records: an empty one could page for ever.)
        if (reply->records.empty() || reply->resume <= copy_from_ || reply->resume <= last ||
            past_end) {
          return Fail(Status::InvalidArgument("peer's copy page does not move forward"));
        }
        copy_from_ = reply->resume;
        return AskCopy();
      }
      return Offer();
    }
    case Phase::kPush:
      if (reply == nullptr) return Fail(Status::InvalidArgument("no reply to a push"));
      if (check_pushes_) {
        // Keys whose joined record there holds more than mine: fetched afterwards. (A peer that
        // does not say is taken to hold nothing more.)
        for (std::size_t i = 0; i < pushing_.size() && i < reply->holds_more.size(); ++i) {
          if (reply->holds_more[i]) theirs_items_.push_back(Iblt::KeyOf(pushing_[i], salt_));
        }
      }
      pushing_.clear();
      return Push();
    case Phase::kDone:
      return Request{};
  }
  return Request{};
}

Responder::Responder(RangeReader* local, int tree_bits, ring::TokenRange range,
                     std::size_t max_entries)
    : local_(local), max_entries_(max_entries), shape_(tree_bits), range_(range) {}

Status Responder::EnsureTree() {
  if (tree_) return Status::Ok();
  auto leaves = local_->Leaves(range_);
  if (!leaves.ok()) return leaves.status();
  if (leaves->empty()) return Status::Corruption("no leaves for the range");
  span_ = SpanOf(shape_, range_);
  tree_.emplace(std::move(leaves.value()));
  return Status::Ok();
}

Status Responder::CheckNodes(const Request& request) const {
  if (request.level >= tree_->depth() || request.nodes.size() > kMaxSketchNodes) {
    return Status::InvalidArgument("table request out of bounds");
  }
  const std::size_t size = tree_->level(request.level).size();
  for (std::uint64_t n : request.nodes) {
    if (n >= size) return Status::InvalidArgument("tree node out of bounds");
  }
  return Status::Ok();
}

Status Responder::ScanNodes(std::size_t level, const std::vector<std::uint64_t>& nodes,
                            const std::function<void(const KeyDigest&)>& fn) {
  for (std::uint64_t node : nodes) {
    auto entries = local_->Entries(NodeTokens(shape_, range_, span_, level, node));
    if (!entries.ok()) return entries.status();
    for (const auto& e : entries.value()) fn(e);
  }
  return Status::Ok();
}

Status Responder::Answer(const Request& request, Reply* reply) {
  switch (request.kind) {
    case Request::Kind::kRoot: {
      // Each round of an exchange starts here, after the last round's pushes: a fresh tree.
      tree_.reset();
      if (Status s = EnsureTree(); !s.ok()) return s;
      reply->depth = tree_->depth();
      reply->hashes.push_back(tree_->root());
      return Status::Ok();
    }
    case Request::Kind::kChildren: {
      if (Status s = EnsureTree(); !s.ok()) return s;
      if (request.level == 0 || request.level >= tree_->depth() ||
          request.nodes.size() > kMaxNodesPerRequest) {
        return Status::InvalidArgument("tree request out of bounds");
      }
      const auto& parents = tree_->level(request.level);
      const auto& below = tree_->level(request.level - 1);
      for (std::uint64_t p : request.nodes) {
        if (p >= parents.size()) return Status::InvalidArgument("tree node out of bounds");
        auto [b, e] = tree_->Children(request.level, p);
        reply->hashes.insert(reply->hashes.end(), below.begin() + static_cast<std::ptrdiff_t>(b),
                             below.begin() + static_cast<std::ptrdiff_t>(e));
      }
      return Status::Ok();
    }
    case Request::Kind::kSplit:
      if (request.ranges.size() > kMaxLeavesPerRequest) {
        return Status::InvalidArgument("too many ranges in one request");
      }
      for (const auto& r : request.ranges) {
        if (!Inside(range_, r) || !Splittable(r)) {
          return Status::InvalidArgument("split range outside the range or too narrow");
        }
        auto parts = SplitHashes(local_, r);
        if (!parts.ok()) return parts.status();
        reply->hashes.insert(reply->hashes.end(), parts->begin(), parts->end());
      }
      return Status::Ok();
    case Request::Kind::kEntries: {
      std::size_t total_entries = 0;
      if (request.ranges.size() > kMaxLeavesPerRequest) {
        return Status::InvalidArgument("too many leaves in one request");
      }
      for (const auto& r : request.ranges) {
        if (!Inside(range_, r)) return Status::InvalidArgument("leaf outside the range");
        auto hashed = Hashed(local_, r);
        if (!hashed.ok()) return hashed.status();
        total_entries += hashed->size();
        if (total_entries > max_entries_) {
          return Status::InvalidArgument("an entries reply would carry more than " +
                                         std::to_string(max_entries_) +
                                         " entry hashes: ask for fewer or smaller ranges");
        }
        std::vector<std::uint64_t> hashes;
        hashes.reserve(hashed->size());
        for (const auto& [h, k] : hashed.value()) hashes.push_back(h);
        reply->entries.push_back(std::move(hashes));
      }
      return Status::Ok();
    }
    case Request::Kind::kSketch: {
      if (Status s = EnsureTree(); !s.ok()) return s;
      if (Status s = CheckNodes(request); !s.ok()) return s;
      if (request.cells == 0 || request.cells > kMaxSketchCells) {
        return Status::InvalidArgument("table size out of bounds");
      }
      Iblt table(request.cells, request.cell_salt);
      if (Status s = ScanNodes(request.level, request.nodes,
                               [&](const KeyDigest& e) {
                                 table.Add(Iblt::KeyOf(e.key, request.salt),
                                           Iblt::ValueOf(e.key, e.digest, e.dots, request.salt));
                               });
          !s.ok()) {
        return s;
      }
      reply->sketch = table.Encode();
      return Status::Ok();
    }
    case Request::Kind::kFetchItems: {
      if (Status s = EnsureTree(); !s.ok()) return s;
      if (Status s = CheckNodes(request); !s.ok()) return s;
      if (request.items.size() > kMaxItemsPerFetch) {
        return Status::InvalidArgument("too many items in one fetch");
      }
      std::vector<std::uint32_t> want = request.items;
      std::sort(want.begin(), want.end());
      std::vector<std::string> keys;
      if (Status s = ScanNodes(request.level, request.nodes,
                               [&](const KeyDigest& e) {
                                 // Ids are 28 bits: two keys may share one, so the reply is
                                 // bounded apart.
                                 if (keys.size() < 2 * kMaxItemsPerFetch &&
                                     std::binary_search(want.begin(), want.end(),
                                                        Iblt::KeyOf(e.key, request.salt))) {
                                   keys.push_back(e.key);
                                 }
                               });
          !s.ok()) {
        return s;
      }
      std::size_t bytes = 0;
      for (const auto& k : keys) {
        auto rec = local_->Get(k);
        if (!rec.ok()) return rec.status();
        const std::size_t size = k.size() + storage::EncodeRecord(rec.value()).size();
        // As a push: never past the bound, except by a record alone.
        if (!reply->records.empty() && bytes + size > kMaxPushBytes) {
          reply->truncated = true;
          break;
        }
        bytes += size;
        reply->records.emplace_back(k, std::move(rec.value()));
      }
      return Status::Ok();
    }
    case Request::Kind::kOffer:
      if (request.keys.size() > kMaxKeysPerRequest ||
          request.contexts.size() != request.keys.size()) {
        return Status::InvalidArgument("bad offer");
      }
      for (const std::string& k : request.keys) {
        if (!range_.Contains(ring::TokenOf(k)))
          return Status::InvalidArgument("key outside the range");
      }
      {
        std::size_t bytes = 0;
        for (std::size_t i = 0; i < request.keys.size(); ++i) {
          const std::string& k = request.keys[i];
          auto rec = local_->Get(k);
          if (!rec.ok()) return rec.status();
          OfferAnswer a;
          const storage::CausalContext& mine = rec->context();
          // DVV: one record holds nothing the other lacks exactly when its context is included.
          a.need = !mine.Includes(request.contexts[i]);
          const bool send = !request.dry_run && !request.contexts[i].Includes(mine);
          if (!rec->empty()) {
            const std::string encoded = storage::EncodeRecord(rec.value());
            // Answers stop once their records reach kMaxPushBytes (the first always goes): the
            // initiator offers the keys left unanswered again.
            if (send && i > 0 && bytes + k.size() + encoded.size() > kMaxPushBytes) break;
            if (send) bytes += k.size() + encoded.size();
            a.entry = EntryHash(k, storage::VersionDigest(encoded));
          }
          if (send) a.record = std::move(rec.value());
          reply->offers.push_back(std::move(a));
        }
      }
      return Status::Ok();
    case Request::Kind::kFetch: {
      if (request.ranges.size() > kMaxLeavesPerRequest ||
          request.wanted.size() != request.ranges.size()) {
        return Status::InvalidArgument("bad fetch");
      }
      std::size_t total = 0;
      for (const auto& w : request.wanted) total += w.size();
      if (total > kMaxKeysPerRequest + kMaxLeavesPerRequest * 64) {
        return Status::InvalidArgument("too many keys in one fetch");
      }
      for (std::size_t i = 0; i < request.ranges.size(); ++i) {
        if (!Inside(range_, request.ranges[i]))
          return Status::InvalidArgument("leaf outside the range");
        auto hashed = Hashed(local_, request.ranges[i]);
        if (!hashed.ok()) return hashed.status();
        const auto& want = request.wanted[i];
        for (const auto& [h, k] : hashed.value()) {
          if (std::find(want.begin(), want.end(), h) == want.end()) continue;
          auto rec = local_->Get(k);
          if (!rec.ok()) return rec.status();
          reply->records.emplace_back(k, std::move(rec.value()));
        }
      }
      return Status::Ok();
    }
    case Request::Kind::kPush:
      if (request.records.size() > kMaxKeysPerRequest) {
        return Status::InvalidArgument("too many records in one request");
      }
      for (const auto& [k, rec] : request.records) {
        if (!range_.Contains(ring::TokenOf(k)))
          return Status::InvalidArgument("key outside the range");
        auto merged = local_->Merge(k, rec);
        if (!merged.ok()) return merged.status();
        reply->holds_more.push_back(merged.value() != rec);
      }
      return Status::Ok();
    case Request::Kind::kPurge:
      if (request.keys.size() > kMaxKeysPerRequest ||
          request.digests.size() != request.keys.size()) {
        return Status::InvalidArgument("bad purge");
      }
      for (std::size_t i = 0; i < request.keys.size(); ++i) {
        if (!range_.Contains(ring::TokenOf(request.keys[i]))) {
          return Status::InvalidArgument("key outside the range");
        }
        auto purged = local_->PurgeIfUnchanged(request.keys[i], request.digests[i]);
        if (!purged.ok()) return purged.status();
        reply->purged += purged.value() ? 1 : 0;
      }
      return Status::Ok();
    case Request::Kind::kCopy: {
      if (request.except.size() > kMaxCopyOwnKeys) {
        return Status::InvalidArgument("too many entry hashes in one copy request");
      }
      if (!range_.Contains(request.from) && request.from != range_.begin) {
        return Status::InvalidArgument("copy starts outside the range");
      }
      std::vector<std::uint64_t> except = request.except;
      std::sort(except.begin(), except.end());
      std::size_t bytes = 0;
      bool full = false;
      ring::Token last = 0;
      Status bad;
      Status st = local_->Scan(
          ring::TokenRange{request.from, range_.end},
          [&](ring::Token t, std::string_view key, std::string_view value) {
            // A full page ends at the next token, so a resumed copy misses no key of the last.
            if (full && t != last) {
              reply->more = true;
              reply->resume = t;
              return false;
            }
            last = t;
            if (std::binary_search(except.begin(), except.end(),
                                   EntryHash(key, storage::VersionDigest(value)))) {
              return true;
            }
            auto rec = storage::DecodeRecord(value);
            if (!rec.ok()) {
              bad = rec.status();
              return false;
            }
            bytes += key.size() + value.size();
            reply->records.emplace_back(std::string(key), std::move(rec.value()));
            full = bytes >= kMaxCopyBytes || reply->records.size() >= kMaxCopyRecords;
            return true;
          });
      if (!st.ok()) return st;
      return bad;
    }
    case Request::Kind::kDone:
      return Status::Ok();
  }
  return Status::InvalidArgument("unknown request");
}

}  // namespace kv::repair
