#include "repair/hash_tree.h"

#include <xxhash.h>

#include <algorithm>

#include "storage/codec.h"
#include "storage/status.h"

namespace kv::repair {

std::uint64_t EntryHash(std::string_view key, std::uint64_t version_digest) {
  // Seeded with the digest: the same as hashing key ‖ digest, without a copy.
  return XXH3_64bits_withSeed(key.data(), key.size(), version_digest);
}

HashTree::HashTree(int bits) : bits_(bits), leaves_(std::size_t{1} << bits, 0) {
  KV_CHECK(bits >= 1 && bits <= 24);
}

ring::TokenRange HashTree::SegmentRange(std::size_t s) const {
  const int shift = 64 - bits_;
  const ring::Token begin = static_cast<ring::Token>(s) << shift;
  const ring::Token end = s + 1 == leaves_.size() ? 0 : static_cast<ring::Token>(s + 1) << shift;
  return {begin, end};
}

void HashTree::Update(ring::Token t, std::string_view key, std::optional<std::uint64_t> before,
                      std::optional<std::uint64_t> after) {
  if (before == after) return;
  std::uint64_t& leaf = leaves_[SegmentOf(t)];
  if (before) leaf ^= EntryHash(key, *before);
  if (after) leaf ^= EntryHash(key, *after);
}

void HashTree::Clear() { std::fill(leaves_.begin(), leaves_.end(), 0); }

std::string HashTree::Encode() const {
  std::string out;
  out.reserve(1 + leaves_.size() * 8);
  out.push_back(static_cast<char>(bits_));
  for (std::uint64_t l : leaves_) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(l >> (8 * i)));
  }
  return out;
}

bool HashTree::Decode(std::string_view bytes) {
  if (bytes.size() != 1 + leaves_.size() * 8 || bytes[0] != static_cast<char>(bits_)) return false;
  for (std::size_t s = 0; s < leaves_.size(); ++s) {
    std::uint64_t l = 0;
    for (int i = 0; i < 8; ++i) {
      l |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[1 + s * 8 + i])) << (8 * i);
    }
    leaves_[s] = l;
  }
  return true;
}

SegmentSpan SpanOf(const HashTree& tree, const ring::TokenRange& range) {
  KV_CHECK(range.end == 0 || range.end > range.begin);
  SegmentSpan span;
  span.first = tree.SegmentOf(range.begin);
  span.last = range.end == 0 ? tree.segments() - 1 : tree.SegmentOf(range.end - 1);
  span.first_partial = tree.SegmentRange(span.first).begin != range.begin;
  span.last_partial = tree.SegmentRange(span.last).end != range.end;
  return span;
}

ring::TokenRange ClipSegment(const HashTree& tree, std::size_t s, const ring::TokenRange& range) {
  ring::TokenRange seg = tree.SegmentRange(s);
  ring::TokenRange out;
  out.begin = std::max(seg.begin, range.begin);
  // An end of 0 is the top of the space: the larger of any two ends.
  if (seg.end == 0) {
    out.end = range.end;
  } else if (range.end == 0) {
    out.end = seg.end;
  } else {
    out.end = std::min(seg.end, range.end);
  }
  return out;
}

RangeTree::RangeTree(std::vector<std::uint64_t> leaves) {
  KV_CHECK(!leaves.empty());
  levels_.push_back(std::move(leaves));
  while (levels_.back().size() > 1) {
    const auto& below = levels_.back();
    std::vector<std::uint64_t> up((below.size() + kFanout - 1) / kFanout);
    for (std::size_t i = 0; i < up.size(); ++i) {
      const std::size_t b = i * kFanout;
      const std::size_t e = std::min(below.size(), b + kFanout);
      // Little-endian bytes, so that every architecture computes the same inner hashes.
      unsigned char buf[kFanout * 8];
      std::size_t n = 0;
      for (std::size_t j = b; j < e; ++j) {
        for (int k = 0; k < 8; ++k) buf[n++] = static_cast<unsigned char>(below[j] >> (8 * k));
      }
      up[i] = XXH3_64bits(buf, n);
    }
    levels_.push_back(std::move(up));
  }
}

std::pair<std::size_t, std::size_t> RangeTree::Children(std::size_t k, std::size_t i) const {
  KV_CHECK(k >= 1 && k < levels_.size());
  const std::size_t b = i * kFanout;
  return {b, std::min(levels_[k - 1].size(), b + kFanout)};
}

void LiveTree::OnChange(std::string_view key, std::optional<std::uint64_t> before,
                        std::optional<std::uint64_t> after) {
  const ring::Token t = ring::TokenOf(key);
  std::lock_guard<std::mutex> lock(mu_);
  tree_.Update(t, key, before, after);
  if (rebuilding_) since_.Update(t, key, before, after);
}

bool LiveTree::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

void LiveTree::BeginRebuild() {
  std::lock_guard<std::mutex> lock(mu_);
  since_.Clear();
  rebuilding_ = true;
}

void LiveTree::AbandonRebuild() {
  std::lock_guard<std::mutex> lock(mu_);
  rebuilding_ = false;
}

std::size_t LiveTree::FinishRebuild(const HashTree& built) {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t differ = 0;
  for (std::size_t s = 0; s < tree_.segments(); ++s) {
    const std::uint64_t leaf = built.Leaf(s) ^ since_.Leaf(s);
    differ += ready_ && leaf != tree_.Leaf(s);
    tree_.SetLeaf(s, leaf);
  }
  rebuilding_ = false;
  ready_ = true;
  return differ;
}

HashTree LiveTree::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tree_;
}

std::vector<std::uint64_t> LiveTree::Leaves(std::size_t first, std::size_t last) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::uint64_t> out;
  out.reserve(last - first + 1);
  for (std::size_t s = first; s <= last; ++s) out.push_back(tree_.Leaf(s));
  return out;
}

void LiveTree::Reset(const HashTree& tree) {
  std::lock_guard<std::mutex> lock(mu_);
  tree_ = tree;
  ready_ = true;
}

Result<HashTree> BuildFromScan(storage::Engine& engine, int bits) {
  HashTree tree(bits);
  Status s = engine.Scan(ring::TokenRange{}, [&](ring::Token t, std::string_view key,
                                                 std::string_view value) {
    tree.Update(t, key, std::nullopt, storage::VersionDigest(value));
    return true;
  });
  if (!s.ok()) return s;
  return tree;
}

Result<std::size_t> RebuildLive(storage::LocalStore& store, storage::Engine& engine,
                                LiveTree& live, const std::atomic<bool>* cancel,
                                const std::function<void(std::uint64_t)>& progress) {
  // With writes paused, so that no write falls between the snapshot and the start of the
  // changes kept aside (a write's engine commit and its OnChange happen under the store's
  // pause lock, shared).
  std::unique_ptr<storage::Engine::DataSnapshot> snapshot;
  store.WithWritesPaused([&] {
    snapshot = engine.TakeSnapshot();
    live.BeginRebuild();
  });
  HashTree built(live.bits());
  std::uint64_t scanned = 0;
  Status s = snapshot->Scan(ring::TokenRange{}, [&](ring::Token t, std::string_view key,
                                                    std::string_view value) {
    built.Update(t, key, std::nullopt, storage::VersionDigest(value));
    if (progress && ++scanned % 1024 == 0) progress(scanned);
    return cancel == nullptr || !cancel->load(std::memory_order_relaxed);
  });
  snapshot.reset();
  if (s.ok() && cancel != nullptr && cancel->load()) s = Status::Unavailable("rebuild cancelled");
  if (!s.ok()) {
    live.AbandonRebuild();
    return s;
  }
  return live.FinishRebuild(built);
}

Result<bool> TakePersistedTree(storage::Engine& engine, LiveTree& live) {
  std::string bytes;
  Status s = engine.GetMeta("hash_tree", &bytes);
  if (s.IsNotFound() || (s.ok() && bytes.empty())) return false;
  if (!s.ok()) return s;
  HashTree tree(live.bits());
  const bool fits = tree.Decode(bytes);
  if (Status c = engine.PutMeta("hash_tree", ""); !c.ok()) return c;  // consumed, synced
  if (!fits) return false;
  live.Reset(tree);
  return true;
}

Status PersistTree(storage::Engine& engine, const LiveTree& live) {
  if (!live.ready()) return Status::Ok();
  return engine.PutMeta("hash_tree", live.Snapshot().Encode());
}

}  // namespace kv::repair
