// Dots are never issued twice (storage/dots.h): the three ways a node forgets what it issued
// (a crash that lost unsynced writes, a tombstone purge that a replica missed, a data directory
// restored from an older copy), each on real RocksDB stores, with a second replica holding what
// the first forgot. With dots counted from the local record alone (the code before), each of
// them loses an acknowledged write when the replicas merge.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "storage/codec.h"
#include "storage/dots.h"
#include "storage/local_store.h"
#include "storage/rocksdb_engine.h"

namespace kv::storage {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kv_dots_XXXXXX").string();
    KV_CHECK(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One node's store: its engine on a directory, opened as a new life each time.
struct Node {
  std::unique_ptr<RocksDbEngine> engine;
  std::unique_ptr<LocalStore> store;
  void Open(const std::string& dir, NodeId id) {
    store.reset();
    engine.reset();
    engine = std::move(RocksDbEngine::Open(dir, RocksDbOptions()).value());
    store = std::make_unique<LocalStore>(engine.get(), id, Limits{});
  }
};

std::set<std::string> Values(const Record& r) {
  std::set<std::string> out;
  for (const auto& s : r.siblings()) {
    if (!s.tombstone) out.insert(s.value);
  }
  return out;
}

TEST(Dots, ACrashThatLostAWriteDoesNotReissueItsDot) {
  TempDir a_dir, b_dir, lost_dir;
  Node a, b;
  a.Open(a_dir.path(), 1);
  b.Open(b_dir.path(), 2);
  // An acknowledged write reached the replica b; a lost it (power loss before the sync). Its
  // directory is as it was before the write: here, another copy that never saw it.
  auto first = a.store->Write("k", {}, false, "first");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(b.store->Merge("k", first.value()).ok());
  a.Open(lost_dir.path(), 1);  // restarted, without the write
  auto second = a.store->Write("k", {}, false, "second");
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->siblings()[0].dot, first->siblings()[0].dot);
  // The replicas merge both ways: neither acknowledged write is lost.
  auto merged = b.store->Merge("k", second.value());
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(Values(merged.value()), (std::set<std::string>{"first", "second"}));
}

TEST(Dots, AWriteAfterAPurgeThatAReplicaMissedIsNotDropped) {
  TempDir a_dir, b_dir;
  Node a, b;
  a.Open(a_dir.path(), 1);
  b.Open(b_dir.path(), 2);
  std::uint64_t now = 1'000'000'000;
  a.store->SetClock([&now] { return now; });
  auto put = a.store->Write("k", {}, false, "v1");
  ASSERT_TRUE(put.ok());
  bool had = false;
  auto del = a.store->DeleteSeen("k", &had);
  ASSERT_TRUE(del.ok());
  ASSERT_TRUE(b.store->Merge("k", del.value()).ok());  // b keeps the tombstone and its context
  // a purges the tombstone (the grace period passed); b missed its purge request.
  now += Limits{}.tombstone_grace_s + 1;
  auto purged = a.store->PurgeIfUnchanged("k", VersionDigest(EncodeRecord(del.value())));
  ASSERT_TRUE(purged.ok());
  ASSERT_TRUE(purged.value());
  ASSERT_TRUE(a.store->Read("k")->empty());
  // A new value, written blind on a and acknowledged.
  auto again = a.store->Write("k", {}, false, "v2");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(del->context().Contains(again->siblings()[0].dot))
      << "the retained tombstone's context already names the new write";
  auto merged = b.store->Merge("k", again.value());
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(Values(merged.value()), (std::set<std::string>{"v2"}));
  // And it supersedes what the purged tombstone had deleted: a stale copy of v1 comes back to
  // nothing.
  auto stale = Record::Merge(merged.value(), put.value());
  EXPECT_EQ(Values(stale), (std::set<std::string>{"v2"}));
}

// Each replica checks the grace period by its own clock: an initiator whose clock runs ahead
// (or that asks too early) cannot make it purge a tombstone that is still within its grace.
TEST(Purge, ARefusesWhileItsOwnClockSaysTheGraceHasNotPassed) {
  TempDir dir;
  Node a;
  a.Open(dir.path(), 1);
  std::uint64_t now = 1'000'000'000;
  a.store->SetClock([&now] { return now; });
  ASSERT_TRUE(a.store->Write("k", {}, false, "v").ok());
  bool had = false;
  auto del = a.store->DeleteSeen("k", &had);
  ASSERT_TRUE(del.ok());
  const std::uint64_t digest = VersionDigest(EncodeRecord(del.value()));
  now += Limits{}.tombstone_grace_s - 60;  // a minute short
  auto early = a.store->PurgeIfUnchanged("k", digest);
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(early.value());
  EXPECT_FALSE(a.store->Read("k")->empty());
  now += 120;
  auto late = a.store->PurgeIfUnchanged("k", digest);
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late.value());
  EXPECT_TRUE(a.store->Read("k")->empty());
}

TEST(Dots, ADirectoryRestoredFromAnOlderCopyDoesNotReissueDots) {
  TempDir a_dir, b_dir, backup;
  Node a, b;
  a.Open(a_dir.path(), 1);
  b.Open(b_dir.path(), 2);
  auto v1 = a.store->Write("k", {}, false, "v1");
  ASSERT_TRUE(v1.ok());
  a.store.reset();
  a.engine.reset();
  std::filesystem::copy(a_dir.path(), backup.path() + "/copy",
                        std::filesystem::copy_options::recursive);
  a.Open(a_dir.path(), 1);
  auto v2 = a.store->Write("k", v1->context(), false, "v2");
  ASSERT_TRUE(v2.ok());
  ASSERT_TRUE(b.store->Merge("k", v2.value()).ok());
  // The disk dies; the node comes back from the backup, which holds v1 only, and a client that
  // read v1 there overwrites it.
  a.Open(backup.path() + "/copy", 1);
  auto v3 = a.store->Write("k", a.store->Read("k")->context(), false, "v3");
  ASSERT_TRUE(v3.ok());
  EXPECT_NE(v3->siblings()[0].dot, v2->siblings()[0].dot);
  auto merged = b.store->Merge("k", v3.value());
  ASSERT_TRUE(merged.ok());
  // v3 saw v1 only: v2 and v3 are concurrent, and both stay.
  EXPECT_EQ(Values(merged.value()), (std::set<std::string>{"v2", "v3"}));
}

TEST(Dots, OneKeysCountersStayContiguousAndItsContextOneEntryPerLife) {
  TempDir dir;
  Node a;
  a.Open(dir.path(), 1);
  a.store->SetActor(77);
  // Other keys first, so the new key starts high.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.store->Write("x" + std::to_string(i), {}, false, "v").ok());
  CausalContext ctx;
  for (int i = 0; i < 20; ++i) {
    auto r = a.store->Write("k", ctx, false, "v" + std::to_string(i));
    ASSERT_TRUE(r.ok());
    ctx = r->context();
  }
  EXPECT_EQ(ctx.vv().size(), 1u);
  EXPECT_TRUE(ctx.cloud().empty());
  EXPECT_EQ(ctx.vv().at(77), 6u + 19u);
  // A new life of the same node adds one entry, and no more however many writes follow.
  a.Open(dir.path(), 1);
  for (int i = 0; i < 20; ++i) {
    auto r = a.store->Write("k", ctx, false, "w" + std::to_string(i));
    ASSERT_TRUE(r.ok());
    ctx = r->context();
  }
  EXPECT_EQ(ctx.vv().size(), 2u);
  EXPECT_TRUE(ctx.cloud().empty());
}

TEST(Dots, AContextNamingAWriteThisLifeNeverMadeIsRefused) {
  TempDir dir;
  Node a;
  a.Open(dir.path(), 1);
  a.store->SetActor(77);
  ASSERT_TRUE(a.store->Write("k", {}, false, "v").ok());
  CausalContext forged;
  forged.Add({77, 1000});
  auto r = a.store->Write("k", forged, false, "w");
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("never made"), std::string::npos);
  EXPECT_EQ(Values(a.store->Read("k").value()), (std::set<std::string>{"v"}));  // nothing changed
  // The same through a batch: that op fails alone.
  WriteOp bad, good;
  bad.kind = good.kind = WriteOp::Kind::kPut;
  bad.key = "k";
  bad.seen = forged;
  bad.value = "w";
  good.key = "other";
  good.value = "o";
  std::vector<WriteOp*> ops = {&bad, &good};
  a.store->ApplyBatch(ops);
  EXPECT_EQ(bad.status.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(good.status.ok());
}

TEST(DotIssuer, ContinuesAKeyOrStartsAboveEverythingIssued) {
  DotIssuer d(5);
  CausalContext none;
  EXPECT_EQ(d.Next(none, none).value(), (Dot{5, 1}));
  EXPECT_EQ(d.Next(none, none).value(), (Dot{5, 2}));
  CausalContext stored;
  stored.CoverUpTo({5, 1});
  EXPECT_EQ(d.Next(stored, none).value(), (Dot{5, 2})) << "the key continues from its own";
  EXPECT_EQ(d.high(), 2u);
  // A writer that saw more of this actor than the record holds: a purge in between.
  CausalContext seen;
  seen.CoverUpTo({5, 2});
  EXPECT_EQ(d.Next(stored, seen).value(), (Dot{5, 3}));
  // Other actors' counters do not matter.
  CausalContext others;
  others.CoverUpTo({9, 1000});
  EXPECT_EQ(d.Next(others, others).value(), (Dot{5, 4}));
}

}  // namespace
}  // namespace kv::storage
