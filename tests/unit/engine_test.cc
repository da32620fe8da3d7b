// RocksDbEngine and LocalStore on a real RocksDB in a temporary directory.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "ring/token.h"
#include "storage/codec.h"
#include "storage/local_store.h"
#include "storage/power_loss_fs.h"
#include "storage/rocksdb_engine.h"
#include "tests/unit/temp_dir.h"

namespace kv::storage {
namespace {

// Each a directory of its own: kv_engine_XXXXXX.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("kv_engine") {}
};

std::unique_ptr<RocksDbEngine> OpenOrDie(const std::string& dir) {
  auto e = RocksDbEngine::Open(dir, RocksDbOptions());
  KV_CHECK(e.ok());
  return std::move(e.value());
}

TEST(Engine, RoundTripAndReopen) {
  TempDir dir;
  {
    auto e = OpenOrDie(dir.path());
    ASSERT_TRUE(e->Put("a", "1").ok());
    ASSERT_TRUE(e->Put(std::string("b\0c", 3), std::string("\0\xff", 2)).ok());
    std::string v;
    EXPECT_TRUE(e->Get("missing", &v).IsNotFound());
  }
  auto e = OpenOrDie(dir.path());
  std::string v;
  ASSERT_TRUE(e->Get("a", &v).ok());
  EXPECT_EQ(v, "1");
  ASSERT_TRUE(e->Get(std::string("b\0c", 3), &v).ok());
  EXPECT_EQ(v, std::string("\0\xff", 2));
}

TEST(Engine, SecondOpenOfTheSameDirFailsClearly) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  auto again = RocksDbEngine::Open(dir.path(), RocksDbOptions());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("in use"), std::string::npos)
      << again.status().ToString();
}

// Scans of token ranges agree with a brute-force filter over every key, in token order.
TEST(Engine, RangeScansMatchBruteForce) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  std::multimap<ring::Token, std::string> model;
  for (int i = 0; i < 3000; ++i) {
    const std::string k = "k" + std::to_string(i);
    ASSERT_TRUE(e->Put(k, "v" + std::to_string(i)).ok());
    model.emplace(ring::TokenOf(k), k);
  }
  const ring::Token q = UINT64_MAX / 4;
  const std::vector<ring::TokenRange> ranges = {{0, 0},     {0, q},     {q, 2 * q},
                                                {3 * q, 0}, {q, q + 1}, {5, 5 + q / 1000}};
  for (const auto& range : ranges) {
    std::vector<std::string> expected;
    for (const auto& [t, k] : model) {
      if (range.Contains(t)) expected.push_back(k);
    }
    std::vector<std::string> got;
    ring::Token prev = 0;
    Status s = e->Scan(range, [&](ring::Token t, std::string_view k, std::string_view v) {
      EXPECT_GE(t, prev);
      prev = t;
      EXPECT_EQ(t, ring::TokenOf(k));
      EXPECT_EQ(v, "v" + std::string(k.substr(1)));
      got.emplace_back(k);
      return true;
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
    // Equal tokens (none expected with XXH3 on 3000 keys) would come in byte order.
    EXPECT_EQ(got, expected) << "range [" << range.begin << ", " << range.end << ")";
  }
  // Early stop.
  int n = 0;
  ASSERT_TRUE(e->Scan({0, 0}, [&](auto, auto, auto) { return ++n < 10; }).ok());
  EXPECT_EQ(n, 10);
}

TEST(LocalStore, NodeIdIsKeptAcrossRestarts) {
  TempDir dir;
  NodeId first = 0;
  {
    auto e = OpenOrDie(dir.path());
    auto id = LoadOrCreateNodeId(*e);
    ASSERT_TRUE(id.ok());
    first = id.value();
    EXPECT_NE(first, 0u);
  }
  auto e = OpenOrDie(dir.path());
  auto id = LoadOrCreateNodeId(*e);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id.value(), first);
}

TEST(LocalStore, LimitsAreEnforced) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits{8, 16});
  EXPECT_EQ(store.Write("", {}, false, "v").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(store.Write("123456789", {}, false, "v").status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(store.Write("k", {}, false, std::string(17, 'x')).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_TRUE(store.Write("12345678", {}, false, std::string(16, 'x')).ok());
  // Nothing rejected was stored.
  EXPECT_TRUE(store.Read("k")->empty());
}

// Writers racing on one key without context: every value survives as a sibling.
TEST(LocalStore, ConcurrentBlindWritesAllSurvive) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  Limits limits;
  limits.max_siblings = 1000;  // 400 concurrent blind writes, all kept
  LocalStore store(e.get(), 1, limits);
  constexpr int kThreads = 4, kEach = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = store.Write("hot", {}, false, std::to_string(t) + ":" + std::to_string(i));
        KV_CHECK(r.ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto r = store.Read("hot");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->siblings().size(), static_cast<std::size_t>(kThreads * kEach));
}

// Blind writes stop at the sibling cap with a clear error, and so do writes that would make the
// record too large; a write with the context (which resolves siblings) is taken, and a merge
// from another replica is never refused.
TEST(LocalStore, CapsRefuseGrowthButNeverResolutionOrMerges) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  Limits limits;
  limits.max_siblings = 3;
  limits.max_record_bytes = 64 * 1024 + 2000;
  LocalStore store(e.get(), 1, limits);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.Write("k", {}, false, "v" + std::to_string(i)).ok());
  auto refused = store.Write("k", {}, false, "v3");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("too many siblings"), std::string::npos);
  EXPECT_EQ(store.refused_siblings(), 1u);
  // The batch path refuses the same way.
  WriteOp op;
  op.kind = WriteOp::Kind::kPut;
  op.key = "k";
  op.value = "v4";
  std::vector<WriteOp*> ops{&op};
  store.ApplyBatch(ops);
  EXPECT_FALSE(op.status.ok());
  EXPECT_EQ(store.Read("k")->siblings().size(), 3u);
  // A merge of another replica's concurrent write goes in past the cap.
  Record remote;
  remote.Write(77, {}, false, "theirs");
  ASSERT_TRUE(store.Merge("k", remote).ok());
  EXPECT_EQ(store.Read("k")->siblings().size(), 4u);
  // With the context: one value, and room again.
  const CausalContext seen = store.Read("k")->context();
  ASSERT_TRUE(store.Write("k", seen, false, "resolved").ok());
  EXPECT_EQ(store.Read("k")->siblings().size(), 1u);
  ASSERT_TRUE(store.Write("k", {}, false, "again").ok());
  // Size: two values of 40 KiB do not fit 66 KiB; the second is refused, a replacement is not.
  const std::string big(40 * 1024, 'x');
  ASSERT_TRUE(store.Write("big", {}, false, big).ok());
  auto too_big = store.Write("big", {}, false, big);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("record too large"), std::string::npos);
  EXPECT_EQ(store.refused_record_size(), 1u);
  ASSERT_TRUE(store.Write("big", store.Read("big")->context(), false, big).ok());
}

TEST(LocalStore, DeleteSeenHidesEverythingItSaw) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits());
  ASSERT_TRUE(store.Write("k", {}, false, "a").ok());
  ASSERT_TRUE(store.Write("k", {}, false, "b").ok());
  bool had = false;
  auto r = store.DeleteSeen("k", &had);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(had);
  EXPECT_FALSE(store.Read("k")->HasLiveValue());
  r = store.DeleteSeen("k", &had);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(had);
}

TEST(LocalStore, CorruptStoredRecordIsReportedNotTrusted) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  ASSERT_TRUE(e->Put("k", "garbage").ok());
  LocalStore store(e.get(), 1, Limits());
  EXPECT_EQ(store.Read("k").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(store.Write("k", {}, false, "v").status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace kv::storage

namespace kv::storage {
namespace {

// A batch behaves like its ops applied one after another, with one engine write.
TEST(LocalStore, ApplyBatchActsLikeSequentialWrites) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits{16, 1024});
  ASSERT_TRUE(store.Write("k", {}, false, "before").ok());
  const CausalContext before = store.Read("k")->context();

  auto op = [](WriteOp::Kind kind, std::string key, CausalContext seen, std::string value) {
    WriteOp o;
    o.kind = kind;
    o.key = std::move(key);
    o.seen = std::move(seen);
    o.value = std::move(value);
    return o;
  };
  std::vector<WriteOp> ops;
  ops.push_back(op(WriteOp::Kind::kPut, "k", {}, "blind"));            // a sibling of "before"
  ops.push_back(op(WriteOp::Kind::kPut, "k", before, "over-before"));  // supersedes "before"
  ops.push_back(op(WriteOp::Kind::kPut, "", {}, "x"));                 // rejected: empty key
  ops.push_back(op(WriteOp::Kind::kPut, "other", {}, std::string(2000, 'x')));  // too big
  ops.push_back(op(WriteOp::Kind::kDeleteSeen, "gone", {}, ""));                // nothing there
  ops.push_back(op(WriteOp::Kind::kPut, "new", {}, "v"));
  std::vector<WriteOp*> ptrs;
  for (auto& op : ops) ptrs.push_back(&op);
  store.ApplyBatch(ptrs);

  EXPECT_TRUE(ops[0].status.ok());
  EXPECT_TRUE(ops[1].status.ok());
  EXPECT_EQ(ops[2].status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ops[3].status.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(ops[4].status.ok());
  EXPECT_FALSE(ops[4].had_value);
  EXPECT_TRUE(ops[5].status.ok());

  // Sequential semantics: the second op saw only "before", so "blind" survives beside it.
  auto k = store.Read("k");
  ASSERT_TRUE(k.ok());
  std::set<std::string> values;
  for (const auto& s : k->siblings()) values.insert(s.value);
  EXPECT_EQ(values, (std::set<std::string>{"blind", "over-before"}));
  EXPECT_EQ(k.value(), ops[1].record);  // the outcome reported is what was stored
  EXPECT_TRUE(store.Read("other")->empty());
  EXPECT_EQ(store.Read("new")->siblings().size(), 1u);
}

}  // namespace
}  // namespace kv::storage

#include "storage/node_meta.h"

namespace kv::storage {
namespace {

TEST(NodeMeta, GenerationGrowsAndTokensStayAcrossRestarts) {
  TempDir dir;
  std::vector<std::uint64_t> first_tokens;
  {
    auto e = OpenOrDie(dir.path());
    EXPECT_EQ(BumpGeneration(*e).value(), 1u);
    EXPECT_EQ(BumpGeneration(*e).value(), 2u);
    int calls = 0;
    auto t = LoadOrCreateTokens(*e, [&]() {
      ++calls;
      return std::vector<std::uint64_t>{5, 9, 1ull << 63};
    });
    ASSERT_TRUE(t.ok());
    first_tokens = t.value();
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(LoadFlag(*e, "removed_self").value());
    ASSERT_TRUE(StoreU64List(*e, "removed_ids", {7, 8}).ok());
  }
  auto e = OpenOrDie(dir.path());
  EXPECT_EQ(BumpGeneration(*e).value(), 3u);
  auto t = LoadOrCreateTokens(*e, []() -> std::vector<std::uint64_t> {
    ADD_FAILURE() << "tokens chosen again";
    return {};
  });
  EXPECT_EQ(t.value(), first_tokens);
  EXPECT_EQ(LoadU64List(*e, "removed_ids").value(), (std::vector<std::uint64_t>{7, 8}));
  ASSERT_TRUE(StoreFlag(*e, "removed_self").ok());
  EXPECT_TRUE(LoadFlag(*e, "removed_self").value());
}

TEST(NodeMeta, MalformedMetadataIsCorruption) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  ASSERT_TRUE(e->PutMeta("generation", "abc").ok());
  EXPECT_EQ(BumpGeneration(*e).status().code(), Status::Code::kCorruption);
  ASSERT_TRUE(e->PutMeta("tokens", std::string(12, 'x')).ok());
  EXPECT_EQ(LoadOrCreateTokens(*e, []() { return std::vector<std::uint64_t>{1}; }).status().code(),
            Status::Code::kCorruption);
}

TEST(Engine, ApproximateBytesGrowsWithData) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  const std::uint64_t before = e->ApproximateBytes();
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(e->Put("k" + std::to_string(i), std::string(1000, 'v')).ok());
  EXPECT_GT(e->ApproximateBytes(), before + 500000);
}

}  // namespace
}  // namespace kv::storage

namespace kv::storage {
namespace {

// A record as another replica (node `node`) would send it.
Record RemoteWrite(NodeId node, const std::string& value) {
  Record r;
  r.Write(node, {}, false, value);
  return r;
}

std::vector<WriteOp*> Ptrs(std::vector<WriteOp>& ops) {
  std::vector<WriteOp*> out;
  for (auto& op : ops) out.push_back(&op);
  return out;
}

WriteOp MergeOp(WriteOp::Kind kind, std::string key, Record remote, NodeId hint_for = 0) {
  WriteOp o;
  o.kind = kind;
  o.key = std::move(key);
  o.remote = std::move(remote);
  o.hint_for = hint_for;
  return o;
}

TEST(Hints, KeptPerTargetMergedCountedAndSurviveRestart) {
  TempDir dir;
  {
    auto e = OpenOrDie(dir.path());
    LocalStore store(e.get(), 1, Limits());
    std::vector<WriteOp> ops;
    ops.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(7, "x"), 7));
    ops.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(8, "y"), 7));  // merged into a
    ops.push_back(MergeOp(WriteOp::Kind::kHint, "b", RemoteWrite(7, "z"), 7));
    ops.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(7, "w"), 9));  // other target
    ops.push_back(MergeOp(WriteOp::Kind::kHint, "c", RemoteWrite(7, "v"), 0));  // no target
    auto ptrs = Ptrs(ops);
    store.ApplyBatch(ptrs);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(ops[i].status.ok()) << i;
    EXPECT_EQ(ops[4].status.code(), Status::Code::kInvalidArgument);
    // Hints never show as data.
    EXPECT_TRUE(store.Read("a")->empty());
    EXPECT_EQ(store.ReadHint(7, "a")->siblings().size(), 2u);
    EXPECT_EQ(store.HintCounts(), (std::map<NodeId, std::uint64_t>{{7, 2}, {9, 1}}));
    // A later batch merging into an existing hint does not count it twice.
    std::vector<WriteOp> more;
    more.push_back(MergeOp(WriteOp::Kind::kHint, "b", RemoteWrite(8, "q"), 7));
    auto more_ptrs = Ptrs(more);
    store.ApplyBatch(more_ptrs);
    EXPECT_EQ(store.HintCounts().at(7), 2u);
  }
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits());
  EXPECT_EQ(store.HintCounts(), (std::map<NodeId, std::uint64_t>{{7, 2}, {9, 1}}));
  auto for7 = store.ScanHints(7, 100);
  ASSERT_TRUE(for7.ok());
  ASSERT_EQ(for7->size(), 2u);
  for (const auto& h : for7.value()) EXPECT_EQ(h.target, 7u);
  EXPECT_EQ(store.ScanHints(0, 100)->size(), 3u);
  EXPECT_EQ(store.ScanHints(0, 1)->size(), 1u);
}

TEST(Hints, DeletedOnlyWhenUnchangedSinceDelivery) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits());
  std::vector<WriteOp> ops;
  ops.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(7, "x"), 7));
  auto ptrs = Ptrs(ops);
  store.ApplyBatch(ptrs);
  const Record delivered = store.ReadHint(7, "a").value();
  // A newer write for the same key reaches the hint after it was read for delivery.
  std::vector<WriteOp> newer;
  newer.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(8, "y"), 7));
  auto newer_ptrs = Ptrs(newer);
  store.ApplyBatch(newer_ptrs);
  EXPECT_FALSE(store.DeleteHintIfUnchanged(7, "a", delivered).value());
  EXPECT_EQ(store.HintCounts().at(7), 1u);
  const Record grown = store.ReadHint(7, "a").value();
  EXPECT_TRUE(store.DeleteHintIfUnchanged(7, "a", grown).value());
  EXPECT_TRUE(store.ReadHint(7, "a")->empty());
  EXPECT_TRUE(store.HintCounts().empty());
  EXPECT_FALSE(store.DeleteHintIfUnchanged(7, "a", grown).value());  // already gone
}

TEST(Hints, KeepTheTimeOfTheirFirstWriteAcrossMergesAndRestarts) {
  TempDir dir;
  std::uint64_t now = 1000;
  {
    auto e = OpenOrDie(dir.path());
    LocalStore store(e.get(), 1, Limits());
    store.SetClock([&] { return now; });
    std::vector<WriteOp> ops;
    ops.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(7, "x"), 7));
    auto ptrs = Ptrs(ops);
    store.ApplyBatch(ptrs);
    now = 5000;  // a later write merges into the hint: it stays as old as its first write
    std::vector<WriteOp> later;
    later.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(8, "y"), 7));
    later.push_back(MergeOp(WriteOp::Kind::kHint, "b", RemoteWrite(8, "z"), 7));
    auto later_ptrs = Ptrs(later);
    store.ApplyBatch(later_ptrs);
    EXPECT_EQ(store.ReadStoredHint(7, "a")->created_s, 1000u);
    EXPECT_EQ(store.ReadStoredHint(7, "a")->record.siblings().size(), 2u);
    EXPECT_EQ(store.ReadStoredHint(7, "b")->created_s, 5000u);
    EXPECT_EQ(store.ReadStoredHint(7, "none")->created_s, 0u);
  }
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits());
  auto hints = store.ScanHints(7, 10);
  ASSERT_TRUE(hints.ok());
  ASSERT_EQ(hints->size(), 2u);
  std::map<std::string, std::uint64_t> created;  // (scans go in token order)
  for (const auto& h : hints.value()) created[h.key] = h.created_s;
  EXPECT_EQ(created, (std::map<std::string, std::uint64_t>{{"a", 1000}, {"b", 5000}}));
}

TEST(Hints, AHintStoredWithoutAnAgeIsReadAndAgedFromItsNextWrite) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  // As hints were stored before they had an age: the bare record.
  ASSERT_TRUE(e->PutBatch({{"a", EncodeRecord(RemoteWrite(7, "x")), 7}}).ok());
  LocalStore store(e.get(), 1, Limits());
  store.SetClock([] { return std::uint64_t{777}; });
  EXPECT_EQ(store.ScanHints(7, 10)->at(0).created_s, 0u);  // age unknown
  EXPECT_EQ(store.ReadHint(7, "a")->siblings().size(), 1u);
  std::vector<WriteOp> ops;
  ops.push_back(MergeOp(WriteOp::Kind::kHint, "a", RemoteWrite(8, "y"), 7));
  auto ptrs = Ptrs(ops);
  store.ApplyBatch(ptrs);
  EXPECT_EQ(store.ReadStoredHint(7, "a")->created_s, 777u);
  EXPECT_EQ(store.ReadStoredHint(7, "a")->record.siblings().size(), 2u);
}

TEST(LocalStore, MergeOpJoinsRemoteRecords) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits());
  ASSERT_TRUE(store.Write("k", {}, false, "mine").ok());
  std::vector<WriteOp> ops;
  ops.push_back(MergeOp(WriteOp::Kind::kMerge, "k", RemoteWrite(7, "theirs")));
  ops.push_back(MergeOp(WriteOp::Kind::kMerge, "k", RemoteWrite(7, "theirs")));  // idempotent
  auto ptrs = Ptrs(ops);
  store.ApplyBatch(ptrs);
  ASSERT_TRUE(ops[1].status.ok());
  const Record merged = store.Read("k").value();
  std::set<std::string> values;
  for (const auto& s : merged.siblings()) values.insert(s.value);
  EXPECT_EQ(values, (std::set<std::string>{"mine", "theirs"}));
  EXPECT_TRUE(store.HintCounts().empty());
}


// Blocks the first change it is told of until released, while its batch holds its locks.
class BlockingListener : public ChangeListener {
 public:
  void OnChange(std::string_view, std::optional<std::uint64_t>,
                std::optional<std::uint64_t>) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (blocked_once_) return;
    blocked_once_ = true;
    blocked_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return released_; });
  }
  void WaitBlocked() {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(30), [this] { return blocked_; }));
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_once_ = false, blocked_ = false, released_ = false;
};

// A key whose token lies in the 1/32 of the ring starting at `slice` * 2^59.
std::string KeyInSlice(std::uint64_t slice, int* next) {
  while (true) {
    std::string k = "key" + std::to_string((*next)++);
    if (ring::TokenOf(k) >> 59 == slice) return k;
  }
}

// A copy's or a repair's page is one slice of the ring. Merging it must hold back only client
// writes to that slice: the rest of the ring's writes go on meanwhile. (The page below covers
// every residue of the token mod 32, so striping by a hash spread would make it lock every
// stripe and hold back every write.)
TEST(LocalStore, AMergedPageOfOneRingSliceHoldsBackOnlyWritesToThatSlice) {
  TempDir dir;
  auto e = OpenOrDie(dir.path());
  LocalStore store(e.get(), 1, Limits());
  BlockingListener listener;
  store.SetListener(&listener);
  int next = 0;
  std::vector<WriteOp> page;
  std::set<std::uint64_t> residues;
  while (residues.size() < 32 || page.size() < 128) {
    std::string k = KeyInSlice(3, &next);
    residues.insert(ring::TokenOf(k) % 32);
    page.push_back(MergeOp(WriteOp::Kind::kMerge, k, RemoteWrite(7, "copied")));
  }
  std::thread merging([&] {
    auto ptrs = Ptrs(page);
    store.ApplyBatch(ptrs);
  });
  listener.WaitBlocked();  // the page's batch now holds its stripes

  // A write elsewhere in the ring goes through at once.
  const std::string elsewhere = KeyInSlice(17, &next);
  std::atomic<bool> elsewhere_done{false};
  std::thread other([&] {
    EXPECT_TRUE(store.Write(elsewhere, {}, false, "client").ok());
    elsewhere_done = true;
  });
  // A write to the page's slice waits for the batch.
  const std::string same = KeyInSlice(3, &next);
  std::atomic<bool> same_done{false};
  std::thread waiting([&] {
    EXPECT_TRUE(store.Write(same, {}, false, "client").ok());
    same_done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!elsewhere_done && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(elsewhere_done) << "a write to another slice waited for the page";
  EXPECT_FALSE(same_done) << "a write to the page's slice did not wait for it";
  listener.Release();
  merging.join();
  other.join();
  waiting.join();
  EXPECT_TRUE(same_done);
  for (const auto& op : page) EXPECT_TRUE(op.status.ok()) << op.status.ToString();
  EXPECT_EQ(store.Read(same).value().siblings().size(), 1u);
}

// ---- PowerLossFileSystem: a crash loses exactly the unsynced writes -------------------------

std::unique_ptr<RocksDbEngine> OpenOn(const std::string& dir,
                                      std::shared_ptr<PowerLossFileSystem> power,
                                      bool sync_writes = false) {
  RocksDbOptions options;
  options.power_loss = std::move(power);
  options.sync_writes = sync_writes;
  auto e = RocksDbEngine::Open(dir, options);
  KV_CHECK(e.ok());
  return std::move(e.value());
}

bool Holds(RocksDbEngine* e, const std::string& key) {
  std::string v;
  return e->Get(key, &v).ok();
}

TEST(PowerLoss, ACrashLosesTheWritesSinceTheLastSyncAndNothingElse) {
  TempDir dir;
  auto power = PowerLossFileSystem::OnDefault();
  {
    auto e = OpenOn(dir.path(), power);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(e->Put("synced-" + std::to_string(i), "v").ok());
    ASSERT_TRUE(e->SyncLog().ok());
    ASSERT_TRUE(e->PutMeta("meta", "m").ok());  // metadata is written synced
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(e->Put("unsynced-" + std::to_string(i), "v").ok());
    EXPECT_GT(power->UnsyncedBytes(), 0u);
    power->Crash();
  }
  auto e = OpenOrDie(dir.path());
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(Holds(e.get(), "synced-" + std::to_string(i))) << i;
    EXPECT_FALSE(Holds(e.get(), "unsynced-" + std::to_string(i))) << i;
  }
  std::string m;
  EXPECT_TRUE(e->GetMeta("meta", &m).ok());
}

TEST(PowerLoss, WithSyncedWritesACrashLosesNothing) {
  TempDir dir;
  auto power = PowerLossFileSystem::OnDefault();
  {
    auto e = OpenOn(dir.path(), power, /*sync_writes=*/true);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(e->Put("k" + std::to_string(i), "v").ok());
    EXPECT_EQ(power->UnsyncedBytes(), 0u);
    power->Crash();
  }
  auto e = OpenOrDie(dir.path());
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(Holds(e.get(), "k" + std::to_string(i))) << i;
}

TEST(PowerLoss, WithoutACrashAClosedStoreKeepsEverything) {
  TempDir dir;
  {
    auto e = OpenOn(dir.path(), PowerLossFileSystem::OnDefault());
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(e->Put("k" + std::to_string(i), "v").ok());
  }
  auto e = OpenOrDie(dir.path());
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(Holds(e.get(), "k" + std::to_string(i))) << i;
}

}  // namespace
}  // namespace kv::storage
