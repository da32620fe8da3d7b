// Versioned records: property tests over random histories, against a model.
//
// The model forgets how records are represented. It knows, for every write, which writes its
// context had seen, and for every replica which writes have reached it (written there or
// carried by a merge). A replica must then hold exactly the writes that reached it and that no
// write that reached it had seen: "the set of writes that no later write saw".
#include "storage/record.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "storage/codec.h"

namespace kv::storage {
namespace {

TEST(Record, WriteWithoutContextAddsSibling) {
  Record r;
  r.Write(1, {}, false, "a");
  r.Write(1, {}, false, "b");
  ASSERT_EQ(r.siblings().size(), 2u);
  EXPECT_EQ(r.siblings()[0].value, "a");
  EXPECT_EQ(r.siblings()[1].value, "b");
}

TEST(Record, WriteWithContextSupersedesExactlyWhatItSaw) {
  Record r;
  r.Write(1, {}, false, "a");
  const CausalContext saw_a = r.context();
  r.Write(2, {}, false, "b");  // concurrent with the reader below
  r.Write(1, saw_a, false, "c");
  ASSERT_EQ(r.siblings().size(), 2u);
  std::set<std::string> values;
  for (const auto& s : r.siblings()) values.insert(s.value);
  EXPECT_EQ(values, (std::set<std::string>{"b", "c"}));
  // A write that saw everything leaves one sibling.
  r.Write(3, r.context(), false, "d");
  ASSERT_EQ(r.siblings().size(), 1u);
  EXPECT_EQ(r.siblings()[0].value, "d");
}

TEST(Record, DeleteWithContextLeavesOnlyATombstone) {
  Record r;
  r.Write(1, {}, false, "a");
  r.Write(1, r.context(), true, "");
  EXPECT_FALSE(r.HasLiveValue());
  ASSERT_EQ(r.siblings().size(), 1u);
  EXPECT_TRUE(r.siblings()[0].tombstone);
}

TEST(Record, MergeDropsWhatTheOtherSideSuperseded) {
  Record a;
  a.Write(1, {}, false, "old");
  Record b = a;
  b.Write(2, b.context(), false, "new");
  Record m = Record::Merge(a, b);
  ASSERT_EQ(m.siblings().size(), 1u);
  EXPECT_EQ(m.siblings()[0].value, "new");
  EXPECT_EQ(Record::Merge(b, a), m);
}

// --- random histories ------------------------------------------------------------------

struct ModelWrite {
  std::set<int> saw;  // ids of writes this write's context had seen
  bool tombstone;
};

struct Replica {
  NodeId id;
  Record record;
  std::set<int> reached;  // model: writes that reached this replica
};

// A client's view from a read: the context and the model's knowledge behind it.
struct Read {
  CausalContext context;
  std::set<int> seen;  // every write known at the replica when read
};

std::set<int> ModelLive(const Replica& r, const std::vector<ModelWrite>& writes) {
  std::set<int> live;
  for (int w : r.reached) {
    bool seen_by_other = false;
    for (int o : r.reached) {
      if (writes[o].saw.count(w)) seen_by_other = true;
    }
    if (!seen_by_other) live.insert(w);
  }
  return live;
}

// What the replica knows: its reached writes and everything they saw.
std::set<int> Known(const Replica& r, const std::vector<ModelWrite>& writes) {
  std::set<int> k = r.reached;
  for (int w : r.reached) k.insert(writes[w].saw.begin(), writes[w].saw.end());
  return k;
}

class History {
 public:
  explicit History(std::uint64_t seed) : rng_(seed) {
    for (NodeId id = 1; id <= 3; ++id) replicas_.push_back(Replica{id, Record(), {}});
  }

  void Step() {
    const int op = static_cast<int>(rng_() % 10);
    Replica& r = replicas_[rng_() % replicas_.size()];
    if (op < 3) {
      reads_.push_back(Read{r.record.context(), Known(r, writes_)});
    } else if (op < 7) {
      // A write with a context from some earlier read (possibly at another replica), or none.
      Read ctx;
      if (!reads_.empty() && rng_() % 4 != 0) ctx = reads_[rng_() % reads_.size()];
      const bool tombstone = rng_() % 5 == 0;
      const int id = static_cast<int>(writes_.size());
      writes_.push_back(ModelWrite{ctx.seen, tombstone});
      r.record.Write(r.id, ctx.context, tombstone, tombstone ? "" : "w" + std::to_string(id));
      r.reached.insert(id);
    } else {
      Replica& from = replicas_[rng_() % replicas_.size()];
      r.record = Record::Merge(r.record, from.record);
      r.reached.insert(from.reached.begin(), from.reached.end());
    }
  }

  // Values held equal the model's live writes (tombstones carry no value: compare their count).
  void CheckAgainstModel(std::uint64_t seed) {
    for (const Replica& r : replicas_) {
      std::set<int> live = ModelLive(r, writes_);
      std::set<int> live_values;
      std::size_t live_tombstones = 0;
      for (int w : live) {
        if (writes_[w].tombstone) {
          ++live_tombstones;
        } else {
          live_values.insert(w);
        }
      }
      std::set<int> held;
      std::size_t tombstones = 0;
      for (const auto& s : r.record.siblings()) {
        if (s.tombstone) {
          ++tombstones;
        } else {
          held.insert(std::stoi(s.value.substr(1)));
        }
      }
      ASSERT_EQ(held, live_values) << "seed " << seed << " replica " << r.id;
      ASSERT_EQ(tombstones, live_tombstones) << "seed " << seed << " replica " << r.id;
      // The record survives its own encoding.
      auto decoded = DecodeRecord(EncodeRecord(r.record));
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      ASSERT_EQ(decoded.value(), r.record);
    }
  }

  std::vector<Replica>& replicas() { return replicas_; }
  const std::vector<ModelWrite>& writes() const { return writes_; }

 private:
  std::mt19937_64 rng_;
  std::vector<Replica> replicas_;
  std::vector<ModelWrite> writes_;
  std::vector<Read> reads_;
};

TEST(RecordProperty, ReplicasHoldExactlyTheUnseenWrites) {
  for (std::uint64_t seed = 1; seed <= 400; ++seed) {
    History h(seed);
    for (int i = 0; i < 60; ++i) {
      h.Step();
      h.CheckAgainstModel(seed);
      if (HasFatalFailure()) return;
    }
    // Full anti-entropy: everyone converges to the same record, with nothing unseen lost.
    Record all;
    for (auto& r : h.replicas()) all = Record::Merge(all, r.record);
    for (auto& r : h.replicas()) {
      r.record = Record::Merge(r.record, all);
      r.reached.clear();
      for (int i = 0; i < static_cast<int>(h.writes().size()); ++i) r.reached.insert(i);
    }
    h.CheckAgainstModel(seed);
    for (auto& r : h.replicas()) ASSERT_EQ(r.record, all) << "seed " << seed;
  }
}

TEST(RecordProperty, MergeIsCommutativeAssociativeIdempotent) {
  for (std::uint64_t seed = 1; seed <= 400; ++seed) {
    History h(seed * 7919);
    for (int i = 0; i < 50; ++i) h.Step();
    const Record& a = h.replicas()[0].record;
    const Record& b = h.replicas()[1].record;
    const Record& c = h.replicas()[2].record;
    ASSERT_EQ(Record::Merge(a, b), Record::Merge(b, a)) << "seed " << seed;
    ASSERT_EQ(Record::Merge(Record::Merge(a, b), c), Record::Merge(a, Record::Merge(b, c)))
        << "seed " << seed;
    ASSERT_EQ(Record::Merge(a, a), a) << "seed " << seed;
    ASSERT_EQ(Record::Merge(a, Record()), a) << "seed " << seed;
  }
}

}  // namespace
}  // namespace kv::storage
