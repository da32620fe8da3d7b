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
#include "storage/node_meta.h"
#include "storage/power_loss_fs.h"
#include "storage/rocksdb_engine.h"
#include "tests/unit/temp_dir.h"

namespace kv::storage {
namespace {

// Each a directory of its own: kv_dots_XXXXXX.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("kv_dots") {}
};

// One node's store: its engine on a directory, opened as a new life each time.
struct Node {
  std::unique_ptr<RocksDbEngine> engine;
  std::unique_ptr<LocalStore> store;
  void Open(const std::string& dir, NodeId id,
            std::shared_ptr<PowerLossFileSystem> power_loss = nullptr) {
    store.reset();
    engine.reset();
    RocksDbOptions options;
    options.power_loss = std::move(power_loss);
    engine = std::move(RocksDbEngine::Open(dir, options).value());
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
  TempDir a_dir, b_dir;
  Node a, b;
  auto power = PowerLossFileSystem::OnDefault();
  a.Open(a_dir.path(), 1, power);
  b.Open(b_dir.path(), 2);
  // An acknowledged write reached the replica b; a loses it in a power loss before its sync.
  auto first = a.store->Write("k", {}, false, "first");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(b.store->Merge("k", first.value()).ok());
  power->Crash();
  a.Open(a_dir.path(), 1);  // restarted, without the write
  auto held = a.store->Read("k");
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(held->empty()) << "the power loss should have taken the unsynced write";
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
  a.store->SetLifeForTest(77);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.store->Write("x" + std::to_string(i), {}, false, "v").ok());
  CausalContext ctx;
  for (int i = 0; i < 20; ++i) {
    auto r = a.store->Write("k", ctx, false, "v" + std::to_string(i));
    ASSERT_TRUE(r.ok());
    ctx = r->context();
  }
  ASSERT_EQ(ctx.vv().size(), 1u);
  EXPECT_TRUE(ctx.cloud().empty());
  EXPECT_EQ(DotIssuer::LifeOf(ctx.vv().begin()->first), 77u);
  EXPECT_EQ(ctx.vv().begin()->second, 20u);
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

// A cleanup drops records this life still holds live values in (their ranges moved away); a
// later write on such a key must not claim to have seen them.
TEST(Dots, AWriteAfterACleanupClaimsNothingOfTheDroppedRecord) {
  TempDir a_dir, b_dir;
  Node a, b;
  a.Open(a_dir.path(), 1);
  b.Open(b_dir.path(), 2);
  auto v1 = a.store->Write("k", {}, false, "v1");
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(b.store->Merge("k", v1.value()).ok());  // the key's new owner has it
  ASSERT_TRUE(a.store->DropRange({}).ok());         // cleanup: a no longer owns it
  auto v2 = a.store->Write("k", {}, false, "v2");    // a stale forward reaches a
  ASSERT_TRUE(v2.ok());
  EXPECT_FALSE(v2->context().Contains(v1->siblings()[0].dot));
  auto merged = b.store->Merge("k", v2.value());
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(Values(merged.value()), (std::set<std::string>{"v1", "v2"}));
}

TEST(Dots, AContextNamingAnActorThisLifeNeverUsedIsRefused) {
  TempDir dir;
  Node a;
  a.Open(dir.path(), 1);
  a.store->SetLifeForTest(77);
  ASSERT_TRUE(a.store->Write("k", {}, false, "v").ok());
  CausalContext forged;
  forged.Add({(std::uint64_t{77} << DotIssuer::kEpochBits) | 1000, 1});
  auto r = a.store->Write("k", forged, false, "w");
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("never used"), std::string::npos);
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

TEST(DotIssuer, ContinuesAKeysActorOrTakesANewEpoch) {
  std::uint64_t next_life = 5;
  DotIssuer d([&next_life] { return next_life++ << DotIssuer::kEpochBits; });
  const NodeId e1 = (std::uint64_t{5} << DotIssuer::kEpochBits) | 1;
  const NodeId e2 = e1 + 1;
  CausalContext none;
  EXPECT_EQ(d.Next(none, none).value(), (Dot{e1, 1}));
  EXPECT_EQ(d.Next(none, none).value(), (Dot{e2, 1})) << "each new key its own actor";
  CausalContext stored;
  stored.Add({e1, 1});
  stored.Add({e1, 2});
  EXPECT_EQ(d.Next(stored, none).value(), (Dot{e1, 3})) << "the key continues its actor";
  // A writer that saw more of the actor than the record holds: a purge in between.
  CausalContext seen = stored;
  seen.Add({e1, 3});
  EXPECT_EQ(d.Next(stored, seen).value().counter, 1u);
  // Actors of other lives (other nodes, earlier lives) are never continued.
  CausalContext others;
  others.CoverUpTo({(std::uint64_t{9} << DotIssuer::kEpochBits) | 1, 1000});
  EXPECT_EQ(d.Next(others, others).value().counter, 1u);
  EXPECT_EQ(d.life(), 5u);
}

TEST(DotIssuer, AResumedLifeContinuesItsEpochsOnlyIfNothingWasIssuedFirst) {
  std::uint64_t next_life = 5;
  DotIssuer first([&next_life] { return next_life++ << DotIssuer::kEpochBits; });
  CausalContext none;
  (void)first.Next(none, none);
  (void)first.Next(none, none);
  const DotIssuer::Saved saved = first.State();
  EXPECT_EQ(saved.life, 5u);
  EXPECT_EQ(saved.epoch, 2u);
  DotIssuer second([&next_life] { return next_life++ << DotIssuer::kEpochBits; });
  second.OfferResume(saved);
  ASSERT_TRUE(second.ConfirmResume());
  EXPECT_EQ(second.life(), 5u);
  EXPECT_EQ(second.Next(none, none).value(), (Dot{(std::uint64_t{5} << DotIssuer::kEpochBits) | 3, 1}));
  EXPECT_FALSE(second.ConfirmResume()) << "an offer is taken once";
  // A dot issued before the confirmation keeps the fresh life.
  DotIssuer third([&next_life] { return next_life++ << DotIssuer::kEpochBits; });
  const std::uint64_t fresh = third.life();
  third.OfferResume(saved);
  (void)third.Next(none, none);
  EXPECT_FALSE(third.ConfirmResume());
  EXPECT_EQ(third.life(), fresh);
  // Offers that no life could have made are ignored.
  DotIssuer fourth([&next_life] { return next_life++ << DotIssuer::kEpochBits; });
  fourth.OfferResume({0, 1});
  EXPECT_FALSE(fourth.ConfirmResume());
  fourth.OfferResume({std::uint64_t{1} << 40, 1});
  EXPECT_FALSE(fourth.ConfirmResume());
  fourth.OfferResume({7, std::uint64_t{1} << DotIssuer::kEpochBits});
  EXPECT_FALSE(fourth.ConfirmResume());
}

// What bounds a key's context: a clean restart that resumes its life adds no entry; a crash (a
// new life) adds one.
TEST(Dots, ACleanRestartKeepsTheKeysActorAndACrashAddsOne) {
  TempDir dir;
  Node a;
  a.Open(dir.path(), 1);
  CausalContext ctx;
  auto write = [&](const std::string& v) {
    auto r = a.store->Write("k", ctx, false, v);
    KV_CHECK(r.ok());
    ctx = r->context();
  };
  write("1");
  // A clean stop saves the life; the next start takes it back.
  ASSERT_TRUE(SaveLife(*a.engine, {a.store->dots().State(), 7}).ok());
  a.Open(dir.path(), 1);
  auto saved = TakeSavedLife(*a.engine);
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->generation, 7u);
  a.store->dots().OfferResume(saved->dots);
  ASSERT_TRUE(a.store->dots().ConfirmResume());
  write("2");
  EXPECT_EQ(ctx.vv().size() + ctx.cloud().size(), 1u) << "one actor: the life went on";
  // The saved life was consumed: a crash now means a fresh life, and one more entry.
  a.Open(dir.path(), 1);
  auto again = TakeSavedLife(*a.engine);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->dots.life, 0u);
  write("3");
  EXPECT_EQ(ctx.vv().size() + ctx.cloud().size(), 2u);
}

TEST(DotIssuer, ANewLifeWhenTheEpochsRunOut) {
  std::uint64_t next_life = 5;
  DotIssuer d([&next_life] { return next_life++ << DotIssuer::kEpochBits; });
  CausalContext none;
  for (std::uint64_t i = 0; i < (std::uint64_t{1} << DotIssuer::kEpochBits) - 1; ++i) {
    (void)d.Next(none, none);
  }
  EXPECT_EQ(d.life(), 5u);
  const Dot next = d.Next(none, none).value();
  EXPECT_EQ(d.life(), 6u);
  EXPECT_EQ(next, (Dot{(std::uint64_t{6} << DotIssuer::kEpochBits) | 1, 1}));
}

}  // namespace
}  // namespace kv::storage
