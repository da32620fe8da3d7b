// repair/hash_tree.h: the incremental tree against one rebuilt from the data, segment and range
// arithmetic against brute force, and range trees.
#include "repair/hash_tree.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <random>
#include <thread>

#include "storage/codec.h"
#include "storage/rocksdb_engine.h"
#include "tests/unit/temp_dir.h"

namespace kv::repair {
namespace {

// Each a directory of its own: kv_tree_XXXXXX.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("kv_tree") {}
};

TEST(HashTree, IncrementalEqualsRebuiltAfterRandomWritesDeletesAndMerges) {
  TempDir dir;
  auto engine = storage::RocksDbEngine::Open(dir.path(), storage::RocksDbOptions());
  ASSERT_TRUE(engine.ok());
  storage::LocalStore store(engine.value().get(), 1, storage::Limits());
  LiveTree live(10);
  store.SetListener(&live);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 3000; ++i) {
    const std::string key = "k" + std::to_string(rng() % 300);
    switch (rng() % 5) {
      case 0: {
        bool had = false;
        ASSERT_TRUE(store.DeleteSeen(key, &had).ok());
        break;
      }
      case 1: {  // a record from another replica
        storage::Record remote;
        const bool tombstone = rng() % 4 == 0;
        remote.Write(2 + rng() % 3, {}, tombstone, tombstone ? "" : "r" + std::to_string(i));
        ASSERT_TRUE(store.Merge(key, remote).ok());
        break;
      }
      case 2: {  // a batch of several ops, some on the same key
        std::vector<storage::WriteOp> ops(4);
        for (auto& op : ops) {
          op.kind = storage::WriteOp::Kind::kPut;
          op.key = "k" + std::to_string(rng() % 300);
          op.value = "b" + std::to_string(i);
        }
        ops[1].key = ops[0].key;
        std::vector<storage::WriteOp*> ptrs;
        for (auto& op : ops) ptrs.push_back(&op);
        store.ApplyBatch(ptrs);
        break;
      }
      default:
        ASSERT_TRUE(store.Write(key, {}, false, "v" + std::to_string(i)).ok());
    }
  }
  auto rebuilt = BuildFromScan(*engine.value(), 10);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_TRUE(live.Snapshot() == rebuilt.value());
  // And the tree is not trivially equal: it changes with one more write.
  ASSERT_TRUE(store.Write("k1", {}, false, "more").ok());
  EXPECT_FALSE(live.Snapshot() == rebuilt.value());
}

TEST(HashTree, LeavesAreASetHashIndependentOfOrder) {
  HashTree a(8), b(8);
  std::vector<std::pair<std::string, std::uint64_t>> entries;
  for (int i = 0; i < 200; ++i) entries.push_back({"key" + std::to_string(i), 1000u + i});
  for (const auto& [k, d] : entries) a.Update(ring::TokenOf(k), k, std::nullopt, d);
  std::shuffle(entries.begin(), entries.end(), std::mt19937(3));
  for (const auto& [k, d] : entries) b.Update(ring::TokenOf(k), k, std::nullopt, d);
  EXPECT_TRUE(a == b);
  // A changed version shows in exactly its own leaf.
  const std::string& k = entries[0].first;
  b.Update(ring::TokenOf(k), k, entries[0].second, 7);
  int differing = 0;
  for (std::size_t s = 0; s < a.segments(); ++s) differing += a.Leaf(s) != b.Leaf(s);
  EXPECT_EQ(differing, 1);
  EXPECT_NE(a.Leaf(a.SegmentOf(ring::TokenOf(k))), b.Leaf(b.SegmentOf(ring::TokenOf(k))));
  // Persistence round trip; foreign bytes are refused.
  HashTree c(8);
  ASSERT_TRUE(c.Decode(b.Encode()));
  EXPECT_TRUE(c == b);
  EXPECT_FALSE(c.Decode(HashTree(9).Encode()));
  EXPECT_FALSE(c.Decode("garbage"));
  EXPECT_TRUE(c == b);
}

TEST(HashTree, SpansAndClipsMatchBruteForce) {
  HashTree tree(6);
  std::mt19937_64 rng(11);
  for (int round = 0; round < 2000; ++round) {
    ring::Token a = rng(), b = rng();
    if (round % 7 == 0) a = tree.SegmentRange(rng() % 64).begin;  // aligned edges too
    if (a > b) std::swap(a, b);
    ring::TokenRange r{a, round % 5 == 0 ? 0 : b};
    if (r.end != 0 && r.end <= r.begin) continue;
    const SegmentSpan span = SpanOf(tree, r);
    for (std::size_t s = 0; s < tree.segments(); ++s) {
      const ring::TokenRange seg = tree.SegmentRange(s);
      const ring::Token seg_last = seg.end == 0 ? ~ring::Token{0} : seg.end - 1;
      const bool overlaps = r.Contains(seg.begin) || r.Contains(seg_last) ||
                            (seg.begin <= r.begin && r.begin <= seg_last);
      EXPECT_EQ(overlaps, s >= span.first && s <= span.last) << round << " seg " << s;
      if (!overlaps) continue;
      const ring::TokenRange clip = ClipSegment(tree, s, r);
      // Three probes: the clip's edges and one inside are in both the segment and the range.
      EXPECT_TRUE(r.Contains(clip.begin) && seg.begin <= clip.begin);
      const bool partial = !(r.Contains(seg.begin) && r.Contains(seg_last));
      EXPECT_EQ(partial, span.Partial(s)) << round << " seg " << s;
    }
  }
}

TEST(RangeTree, LevelsAndChildren) {
  std::vector<std::uint64_t> leaves(300);
  for (std::size_t i = 0; i < leaves.size(); ++i) leaves[i] = i * 77;
  RangeTree t(leaves);
  EXPECT_EQ(t.depth(), 4u);  // 300 -> 19 -> 2 -> 1
  EXPECT_EQ(t.level(1).size(), 19u);
  EXPECT_EQ(t.Children(1, 18), (std::pair<std::size_t, std::size_t>{288, 300}));
  leaves[299] ^= 1;
  RangeTree u(leaves);
  EXPECT_NE(t.root(), u.root());
  EXPECT_EQ(t.level(1)[0], u.level(1)[0]);
  EXPECT_NE(t.level(1)[18], u.level(1)[18]);
  EXPECT_EQ(RangeTree({5}).depth(), 1u);
}

}  // namespace
}  // namespace kv::repair

namespace kv::repair {
namespace {

TEST(HashTree, RebuildFindsAndRepairsDrift) {
  TempDir dir;
  auto engine = storage::RocksDbEngine::Open(dir.path(), storage::RocksDbOptions());
  ASSERT_TRUE(engine.ok());
  storage::LocalStore store(engine.value().get(), 1, storage::Limits());
  LiveTree live(8);
  store.SetListener(&live);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store.Write("k" + std::to_string(i), {}, false, "v").ok());
  EXPECT_EQ(RebuildLive(store, *engine.value(), live).value(), 0u);
  // A write behind the tree's back (as disk corruption would look): the tree drifts.
  ASSERT_TRUE(engine.value()->Put("k7", storage::EncodeRecord(storage::Record())).ok());
  EXPECT_EQ(RebuildLive(store, *engine.value(), live).value(), 1u);
  EXPECT_TRUE(live.Snapshot() == BuildFromScan(*engine.value(), 8).value());
}

// Writes go on while the rebuild scans (they are not held back): what they change during the
// scan is folded into the rebuilt tree, which then equals one built from the data at rest.
TEST(HashTree, ARebuildDuringWritesMissesNoneOfThem) {
  TempDir dir;
  auto engine = storage::RocksDbEngine::Open(dir.path(), storage::RocksDbOptions());
  ASSERT_TRUE(engine.ok());
  storage::LocalStore store(engine.value().get(), 1, storage::Limits());
  LiveTree live(10, /*ready=*/false);
  store.SetListener(&live);
  for (int i = 0; i < 20000; ++i) {
    ASSERT_TRUE(store.Write("k" + std::to_string(i), {}, false, "v").ok());
  }
  std::atomic<bool> done{false};
  std::atomic<int> during{0};
  std::thread writer([&] {
    std::mt19937_64 rng(5);
    for (int n = 0; n < 200000 && !done; ++n) {
      const std::string key = "k" + std::to_string(rng() % 30000);
      if (rng() % 4 == 0) {
        (void)store.Write(key, {}, true, "");
      } else {
        (void)store.Write(key, {}, false, "w" + std::to_string(n));
      }
      during.fetch_add(1);
    }
  });
  // Mid-scan, the rebuild waits until the writer has made 100 more writes: it could not if
  // writes were held back while it scans.
  bool writes_went_on = false;
  auto rebuilt = RebuildLive(store, *engine.value(), live, nullptr, [&](std::uint64_t scanned) {
    if (scanned != 1024) return;
    const int target = during.load() + 100;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (during.load() < target && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    writes_went_on = during.load() >= target;
  });
  done = true;
  writer.join();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_TRUE(live.ready());
  EXPECT_TRUE(writes_went_on) << "writes were held back while the rebuild scanned";
  EXPECT_TRUE(live.Snapshot() == BuildFromScan(*engine.value(), 10).value());
}

// A tree persisted at a clean stop is loaded ready and consumed (a crash after the start finds
// none); one of another size, or none, leaves the tree unready for a rebuild.
TEST(HashTree, APersistedTreeIsTakenOnceAndOnlyAtItsOwnSize) {
  TempDir dir;
  auto engine = storage::RocksDbEngine::Open(dir.path(), storage::RocksDbOptions());
  ASSERT_TRUE(engine.ok());
  storage::Engine& e = *engine.value();
  storage::LocalStore store(&e, 1, storage::Limits());
  LiveTree live(8);
  store.SetListener(&live);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(store.Write("k" + std::to_string(i), {}, false, "v").ok());
  ASSERT_TRUE(PersistTree(e, live).ok());
  LiveTree next(8, /*ready=*/false);
  EXPECT_TRUE(TakePersistedTree(e, next).value());
  EXPECT_TRUE(next.ready());
  EXPECT_TRUE(next.Snapshot() == BuildFromScan(e, 8).value());
  LiveTree again(8, /*ready=*/false);
  EXPECT_FALSE(TakePersistedTree(e, again).value());  // consumed
  EXPECT_FALSE(again.ready());
  ASSERT_TRUE(PersistTree(e, live).ok());
  LiveTree other(9, /*ready=*/false);
  EXPECT_FALSE(TakePersistedTree(e, other).value());
  EXPECT_FALSE(other.ready());
  // An unready tree is not persisted.
  LiveTree unready(8, /*ready=*/false);
  ASSERT_TRUE(PersistTree(e, unready).ok());
  EXPECT_FALSE(TakePersistedTree(e, again).value());
}

}  // namespace
}  // namespace kv::repair
