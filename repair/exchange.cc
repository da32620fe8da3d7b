#include "repair/exchange.h"

#include <algorithm>

#include "storage/codec.h"

namespace kv::repair {
namespace {

// Token order, then key bytes: the order Entries() returns.
bool Before(const KeyDigest& a, const KeyDigest& b) {
  const ring::Token ta = ring::TokenOf(a.key), tb = ring::TokenOf(b.key);
  return ta != tb ? ta < tb : a.key < b.key;
}

bool Inside(const ring::TokenRange& outer, const ring::TokenRange& inner) {
  if (!outer.Contains(inner.begin)) return false;
  if (outer.end == 0) return true;
  return inner.end != 0 && inner.end <= outer.end && inner.end > inner.begin;
}

}  // namespace

Initiator::Initiator(RangeReader* local, int tree_bits, ring::TokenRange range, bool dry_run)
    : local_(local), shape_(tree_bits), range_(range), dry_run_(dry_run) {}

Request Initiator::Fail(Status s) {
  status_ = std::move(s);
  phase_ = Phase::kDone;
  return Request{};
}

Request Initiator::AskNodes() {
  Request r;
  r.kind = Request::Kind::kNodes;
  r.level = level_;
  const std::size_t n = std::min(pending_.size(), kMaxNodesPerRequest);
  r.nodes.assign(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
  asked_ = r.nodes;
  phase_ = Phase::kNodes;
  return r;
}

Request Initiator::AskEntries() {
  if (leaves_.empty()) return dry_run_ ? Fail(Status::Ok()) : AskRecords();
  Request r;
  r.kind = Request::Kind::kEntries;
  const std::size_t n = std::min(leaves_.size(), kMaxLeavesPerRequest);
  leaves_asked_.assign(leaves_.begin(), leaves_.begin() + static_cast<std::ptrdiff_t>(n));
  leaves_.erase(leaves_.begin(), leaves_.begin() + static_cast<std::ptrdiff_t>(n));
  for (std::uint64_t leaf : leaves_asked_) {
    r.ranges.push_back(ClipSegment(shape_, span_.first + leaf, range_));
  }
  phase_ = Phase::kEntries;
  return r;
}

Request Initiator::AskRecords() {
  if (to_pull_.empty()) return Push();
  Request r;
  r.kind = Request::Kind::kRecords;
  const std::size_t n = std::min(to_pull_.size(), kMaxKeysPerRequest);
  r.keys.assign(to_pull_.begin(), to_pull_.begin() + static_cast<std::ptrdiff_t>(n));
  to_pull_.erase(to_pull_.begin(), to_pull_.begin() + static_cast<std::ptrdiff_t>(n));
  pulled_ = r.keys;
  phase_ = Phase::kRecords;
  return r;
}

Request Initiator::Push() {
  if (to_push_.empty()) return Fail(Status::Ok());
  Request r;
  r.kind = Request::Kind::kPush;
  const std::size_t n = std::min(to_push_.size(), kMaxKeysPerRequest);
  for (std::size_t i = 0; i < n; ++i) {
    Result<storage::Record> rec = local_->Get(to_push_[i]);
    if (!rec.ok()) return Fail(rec.status());
    stats_.bytes_pushed += storage::EncodeRecord(rec.value()).size();
    ++stats_.records_pushed;
    r.records.emplace_back(to_push_[i], std::move(rec.value()));
  }
  to_push_.erase(to_push_.begin(), to_push_.begin() + static_cast<std::ptrdiff_t>(n));
  phase_ = Phase::kPush;
  return r;
}

void Initiator::CompareEntries(const std::vector<KeyDigest>& mine,
                               const std::vector<KeyDigest>& theirs) {
  std::size_t i = 0, j = 0;
  while (i < mine.size() || j < theirs.size()) {
    if (j == theirs.size() || (i < mine.size() && Before(mine[i], theirs[j]))) {
      to_push_.push_back(mine[i].key);  // only here
      differing_.push_back(mine[i].key);
      ++i;
    } else if (i == mine.size() || Before(theirs[j], mine[i])) {
      to_pull_.push_back(theirs[j].key);  // only there
      differing_.push_back(theirs[j].key);
      ++j;
    } else {
      if (mine[i].digest != theirs[j].digest) {
        to_pull_.push_back(theirs[j].key);  // pushed back after the merge if they lack some
        differing_.push_back(theirs[j].key);
      }
      ++i;
      ++j;
    }
  }
}

Request Initiator::Next(const Reply* reply) {
  switch (phase_) {
    case Phase::kStart: {
      auto leaves = local_->Leaves(range_);
      if (!leaves.ok()) return Fail(leaves.status());
      span_ = SpanOf(shape_, range_);
      if (leaves->size() != span_.count()) {
        return Fail(Status::Corruption("range reader returned the wrong number of leaves"));
      }
      mine_.emplace(std::move(leaves.value()));
      level_ = mine_->depth() - 1;
      pending_ = {0};
      return AskNodes();
    }
    case Phase::kNodes: {
      if (reply == nullptr || reply->hashes.size() != asked_.size() ||
          reply->depth != mine_->depth()) {
        return Fail(Status::InvalidArgument("peer's tree does not match this range"));
      }
      stats_.nodes_compared += asked_.size();
      const auto& mine = mine_->level(level_);
      for (std::size_t i = 0; i < asked_.size(); ++i) {
        if (reply->hashes[i] != mine[asked_[i]]) differing_nodes_.push_back(asked_[i]);
      }
      if (!pending_.empty()) return AskNodes();
      if (level_ == 0) {
        leaves_ = std::move(differing_nodes_);
        differing_nodes_.clear();
        stats_.leaves_differing = leaves_.size();
        return AskEntries();
      }
      for (std::uint64_t n : differing_nodes_) {
        auto [b, e] = mine_->Children(level_, n);
        for (std::size_t c = b; c < e; ++c) pending_.push_back(c);
      }
      differing_nodes_.clear();
      --level_;
      if (pending_.empty()) return Fail(Status::Ok());  // the roots matched: nothing differs
      return AskNodes();
    }
    case Phase::kEntries: {
      if (reply == nullptr || reply->entries.size() != leaves_asked_.size()) {
        return Fail(Status::InvalidArgument("peer answered the wrong number of leaves"));
      }
      for (std::size_t i = 0; i < leaves_asked_.size(); ++i) {
        auto mine = local_->Entries(ClipSegment(shape_, span_.first + leaves_asked_[i], range_));
        if (!mine.ok()) return Fail(mine.status());
        stats_.keys_compared += reply->entries[i].size();
        CompareEntries(mine.value(), reply->entries[i]);
      }
      stats_.keys_differing = differing_.size();
      if (!leaves_.empty()) return AskEntries();
      if (dry_run_) return Fail(Status::Ok());
      return AskRecords();
    }
    case Phase::kRecords: {
      if (reply == nullptr || reply->records.size() != pulled_.size()) {
        return Fail(Status::InvalidArgument("peer answered the wrong number of records"));
      }
      for (std::size_t i = 0; i < pulled_.size(); ++i) {
        const storage::Record& theirs = reply->records[i];
        Result<storage::Record> mine = local_->Get(pulled_[i]);
        if (!mine.ok()) return Fail(mine.status());
        ++stats_.records_pulled;
        stats_.bytes_pulled += storage::EncodeRecord(theirs).size();
        const storage::Record merged = storage::Record::Merge(mine.value(), theirs);
        if (!(merged == mine.value())) {
          if (Status s = local_->Merge(pulled_[i], theirs); !s.ok()) return Fail(s);
        }
        if (!(merged == theirs)) to_push_.push_back(pulled_[i]);
      }
      return AskRecords();
    }
    case Phase::kPush:
      return Push();
    case Phase::kDone:
      return Request{};
  }
  return Request{};
}

Responder::Responder(RangeReader* local, int tree_bits, ring::TokenRange range)
    : local_(local), shape_(tree_bits), range_(range) {}

Status Responder::Answer(const Request& request, Reply* reply) {
  switch (request.kind) {
    case Request::Kind::kNodes: {
      if (!tree_) {
        auto leaves = local_->Leaves(range_);
        if (!leaves.ok()) return leaves.status();
        if (leaves->empty()) return Status::Corruption("no leaves for the range");
        tree_.emplace(std::move(leaves.value()));
      }
      if (request.level >= tree_->depth() || request.nodes.size() > kMaxNodesPerRequest) {
        return Status::InvalidArgument("tree request out of bounds");
      }
      const auto& level = tree_->level(request.level);
      for (std::uint64_t n : request.nodes) {
        if (n >= level.size()) return Status::InvalidArgument("tree node out of bounds");
        reply->hashes.push_back(level[n]);
      }
      reply->depth = tree_->depth();
      return Status::Ok();
    }
    case Request::Kind::kEntries:
      if (request.ranges.size() > kMaxLeavesPerRequest) {
        return Status::InvalidArgument("too many leaves in one request");
      }
      for (const auto& r : request.ranges) {
        if (!Inside(range_, r)) return Status::InvalidArgument("leaf outside the range");
        auto e = local_->Entries(r);
        if (!e.ok()) return e.status();
        reply->entries.push_back(std::move(e.value()));
      }
      return Status::Ok();
    case Request::Kind::kRecords:
      if (request.keys.size() > kMaxKeysPerRequest) {
        return Status::InvalidArgument("too many keys in one request");
      }
      for (const auto& k : request.keys) {
        if (!range_.Contains(ring::TokenOf(k))) return Status::InvalidArgument("key outside the range");
        auto rec = local_->Get(k);
        if (!rec.ok()) return rec.status();
        reply->records.push_back(std::move(rec.value()));
      }
      return Status::Ok();
    case Request::Kind::kPush:
      if (request.records.size() > kMaxKeysPerRequest) {
        return Status::InvalidArgument("too many records in one request");
      }
      for (const auto& [k, rec] : request.records) {
        if (!range_.Contains(ring::TokenOf(k))) return Status::InvalidArgument("key outside the range");
        if (Status s = local_->Merge(k, rec); !s.ok()) return s;
      }
      return Status::Ok();
    case Request::Kind::kDone:
      return Status::Ok();
  }
  return Status::InvalidArgument("unknown request");
}

}  // namespace kv::repair
