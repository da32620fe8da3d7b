#include "repair/store_reader.h"

#include <algorithm>

#include "storage/codec.h"

namespace kv::repair {

Result<std::vector<std::uint64_t>> StoreReader::Leaves(const ring::TokenRange& range) {
  if (!tree_->ready()) {
    return Status::Unavailable(
        "this node's hash tree is still being built from its data (it started without a clean "
        "stop); repair of its ranges waits for it");
  }
  HashTree shape(tree_->bits());
  const SegmentSpan span = SpanOf(shape, range);
  std::vector<std::uint64_t> leaves = tree_->Leaves(span.first, span.last);
  for (std::size_t s : {span.first, span.last}) {
    if (!span.Partial(s)) continue;
    std::uint64_t leaf = 0;
    Status st = engine_->Scan(ClipSegment(shape, s, range),
                              [&](ring::Token, std::string_view key, std::string_view value) {
                                leaf ^= EntryHash(key, storage::VersionDigest(value));
                                return true;
                              });
    if (!st.ok()) return st;
    leaves[s - span.first] = leaf;
  }
  return leaves;
}

Result<std::vector<KeyDigest>> StoreReader::Entries(const ring::TokenRange& range) {
  std::vector<KeyDigest> out;
  Status st = engine_->Scan(range, [&](ring::Token, std::string_view key, std::string_view value) {
    out.push_back(KeyDigest{std::string(key), storage::VersionDigest(value),
                            storage::ContextDots(value)});
    return true;
  });
  if (!st.ok()) return st;
  return out;
}

Result<storage::Record> StoreReader::Get(const std::string& key) { return store_->Read(key); }

Result<storage::Record> StoreReader::Merge(const std::string& key, const storage::Record& record) {
  return store_->Merge(key, record);
}

Status StoreReader::MergeAll(const std::vector<std::pair<std::string, storage::Record>>& records) {
  // A copy's page (up to kMaxCopyRecords) goes to the store in small batches: a batch holds the
  // lock of every stripe it touches (one or two, as a page is a slice of the ring: LocalStore's
  // stripes), so client writes to that slice wait for at most one batch, not for the whole
  // page. Merges are idempotent, so a page applied in part (an error, a crash) is simply copied
  // again.
  std::vector<storage::WriteOp> ops;
  std::vector<storage::WriteOp*> ptrs;
  for (std::size_t first = 0; first < records.size(); first += kMergeBatch) {
    const std::size_t n = std::min(kMergeBatch, records.size() - first);
    ops.assign(n, storage::WriteOp{});
    ptrs.clear();
    for (std::size_t i = 0; i < n; ++i) {
      ops[i].kind = storage::WriteOp::Kind::kMerge;
      ops[i].key = records[first + i].first;
      ops[i].remote = records[first + i].second;
      ptrs.push_back(&ops[i]);
    }
    store_->ApplyBatch(ptrs);
    for (const auto& op : ops) {
      if (!op.status.ok()) return op.status;
    }
  }
  return Status::Ok();
}

Result<std::vector<KeyDigest>> StoreReader::PurgeCandidates(const ring::TokenRange& range,
                                                            std::uint64_t cutoff_s) {
  std::vector<KeyDigest> out;
  Status bad;
  Status st = engine_->Scan(range, [&](ring::Token, std::string_view key, std::string_view value) {
    auto rec = storage::DecodeRecord(value);
    if (!rec.ok()) {
      bad = rec.status();
      return false;
    }
    if (rec->OnlyTombstonesBefore(cutoff_s)) {
      out.push_back(KeyDigest{std::string(key), storage::VersionDigest(value)});
    }
    return true;
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  return out;
}

Result<bool> StoreReader::PurgeIfUnchanged(const std::string& key, std::uint64_t digest) {
  return store_->PurgeIfUnchanged(key, digest);
}

Result<std::uint64_t> StoreReader::DropRange(const ring::TokenRange& range) {
  auto dropped = store_->DropRange(range);
  if (!dropped.ok()) return dropped.status();
  return dropped->keys;
}

Status StoreReader::Scan(
    const ring::TokenRange& range,
    const std::function<bool(ring::Token, std::string_view, std::string_view)>& fn) {
  return engine_->Scan(range, fn);
}

}  // namespace kv::repair
