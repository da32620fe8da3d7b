// The partition suite's pure parts: the history checker, the nemesis planner and the timeline.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/partition/history.h"
#include "tests/partition/nemesis.h"
#include "tests/partition/timeline.h"

namespace kv::partition {
namespace {

Op Write(OpKind kind, std::string key, std::string element, Outcome outcome, double at = 1) {
  Op op;
  op.kind = kind;
  op.key = std::move(key);
  op.element = std::move(element);
  op.outcome = outcome;
  op.invoke_s = at;
  op.complete_s = at + 0.1;
  return op;
}

TEST(PartitionChecker, AcknowledgedSetElementsMustSurviveInSomeSibling) {
  std::vector<Op> h = {Write(OpKind::kSetAdd, "s", "a", Outcome::kOk),
                       Write(OpKind::kSetAdd, "s", "b", Outcome::kOk),
                       Write(OpKind::kSetAdd, "s", "c", Outcome::kOk)};
  // Siblings {a} and {b, c}: all three survive.
  Findings f = Check(h, {{"s", {"a", "b c"}}}, {});
  EXPECT_EQ(f.acknowledged, 3u);
  EXPECT_EQ(f.lost, 0u);
  EXPECT_EQ(f.phantoms, 0u);
  // Only {a, c}: b was lost, and is named.
  f = Check(h, {{"s", {"a c"}}}, {});
  EXPECT_EQ(f.lost, 1u);
  ASSERT_EQ(f.lost_examples.size(), 1u);
  EXPECT_EQ(f.lost_examples[0], "s: b");
}

TEST(PartitionChecker, FailedAndUnknownWritesMayGoEitherWay) {
  std::vector<Op> h = {Write(OpKind::kPut, "p", "x", Outcome::kFail),
                       Write(OpKind::kPut, "p", "y", Outcome::kUnknown),
                       Write(OpKind::kPut, "p", "z", Outcome::kUnknown),
                       Write(OpKind::kPut, "p", "w", Outcome::kOk)};
  Findings f = Check(h, {{"p", {"x", "y", "w"}}}, {});
  EXPECT_EQ(f.lost, 0u);
  EXPECT_EQ(f.failed, 1u);
  EXPECT_EQ(f.unknown, 2u);
  EXPECT_EQ(f.failed_present, 1u);
  EXPECT_EQ(f.unknown_present, 1u);
  // A put value is a whole sibling, not split as a set: "w" inside "w v" is not "w".
  f = Check(h, {{"p", {"w v"}}}, {});
  EXPECT_EQ(f.lost, 1u);
}

TEST(PartitionChecker, PhantomsAndUnreadableKeysAreFound) {
  std::vector<Op> h = {Write(OpKind::kSetAdd, "s", "a", Outcome::kOk),
                       Write(OpKind::kPut, "p", "v", Outcome::kOk)};
  Findings f = Check(h, {{"s", {"a zz"}}}, {});
  EXPECT_EQ(f.phantoms, 1u);
  EXPECT_EQ(f.phantom_examples, std::vector<std::string>{"s: zz"});
  EXPECT_EQ(f.unreadable_keys, 1u);  // "p" could not be read
  EXPECT_EQ(f.lost, 1u);             // so its acknowledged value counts as lost
  // A key read as not found (no siblings) is readable: its acknowledged writes are lost.
  f = Check(h, {{"s", {"a"}}, {"p", {}}}, {});
  EXPECT_EQ(f.unreadable_keys, 0u);
  EXPECT_EQ(f.lost, 1u);
}

TEST(PartitionChecker, AvailabilityIsCountedByTheNemesisAtInvocation) {
  std::vector<Op> h = {Write(OpKind::kPut, "p", "1", Outcome::kOk, 1),
                       Write(OpKind::kPut, "p", "2", Outcome::kFail, 11),
                       Write(OpKind::kPut, "p", "3", Outcome::kOk, 12),
                       Write(OpKind::kPut, "p", "4", Outcome::kUnknown, 25),
                       Write(OpKind::kPut, "p", "5", Outcome::kOk, 40)};
  std::vector<Period> periods = {{"halves", "", 10, 20}, {"kill", "", 24, 30}};
  Findings f = Check(h, {{"p", {"1", "3", "5"}}}, periods);
  ASSERT_EQ(f.availability.size(), 3u);
  EXPECT_EQ(f.availability[0].during, "halves");
  EXPECT_EQ(f.availability[0].ops, 2u);
  EXPECT_EQ(f.availability[0].ok, 1u);
  EXPECT_EQ(f.availability[1].during, "kill");
  EXPECT_EQ(f.availability[1].ops, 1u);
  EXPECT_EQ(f.availability[1].ok, 0u);
  EXPECT_EQ(f.availability[2].during, "none");
  EXPECT_EQ(f.availability[2].ops, 2u);
  EXPECT_EQ(f.availability[2].ok, 2u);
}

// A set op that read `seen` (the delete workload): add, remove `removed`, or delete the key.
Op SetOp(OpKind kind, std::string element, std::set<std::string> seen, Outcome outcome,
         double at, std::string removed = "") {
  Op op = Write(kind, "d", std::move(element), outcome, at);
  op.read = true;
  op.seen = std::move(seen);
  op.read_done_s = at + 0.05;
  op.removed = std::move(removed);
  return op;
}

TEST(PartitionChecker, AnAcknowledgedRemovalExplainsAnAbsenceAndMustNotBeUndone) {
  std::vector<Op> h = {SetOp(OpKind::kSetAdd, "a", {}, Outcome::kOk, 1),
                       SetOp(OpKind::kSetRemove, "r", {"a"}, Outcome::kOk, 2, "a")};
  Findings f = Check(h, {{"d", {"r"}}}, {});
  EXPECT_EQ(f.lost, 0u);
  EXPECT_EQ(f.undone, 0u);
  EXPECT_EQ(f.removals_acknowledged, 1u);
  // a is back, and the only write carrying it is its add, which the removal read: undone.
  f = Check(h, {{"d", {"a r"}}}, {});
  EXPECT_EQ(f.undone, 1u);
  ASSERT_EQ(f.undone_examples.size(), 1u);
  EXPECT_EQ(f.undone_examples[0].substr(0, 4), "d: a");
  // The removal's own element is an acknowledged add: missing, it is lost.
  f = Check(h, {{"d", {}}}, {});
  EXPECT_EQ(f.lost, 1u);
}

TEST(PartitionChecker, AWriterTheRemovalDidNotSeeMayCarryTheElementBack) {
  // b's write read {a} and carried a; the removal of a read only {a}: it did not see b, so b's
  // value stays a sibling beside the removal, with a in it.
  std::vector<Op> h = {SetOp(OpKind::kSetAdd, "a", {}, Outcome::kOk, 1),
                       SetOp(OpKind::kSetAdd, "b", {"a"}, Outcome::kUnknown, 2),
                       SetOp(OpKind::kSetRemove, "r", {"a"}, Outcome::kOk, 2, "a")};
  Findings f = Check(h, {{"d", {"a b", "r"}}}, {});
  EXPECT_EQ(f.undone, 0u);
  // Had the removal read b too, nothing could bring a back.
  h[2].seen = {"a", "b"};
  f = Check(h, {{"d", {"a b r"}}}, {});
  EXPECT_EQ(f.undone, 1u);
  // A writer that failed for certain wrote nothing: it explains nothing.
  h[2].seen = {"a"};
  h[1].outcome = Outcome::kFail;
  f = Check(h, {{"d", {"a r"}}}, {});
  EXPECT_EQ(f.undone, 1u);
}

TEST(PartitionChecker, AKeyDeleteRemovesWhatItReadAndNothingElse) {
  std::vector<Op> h = {SetOp(OpKind::kSetAdd, "a", {}, Outcome::kOk, 1),
                       SetOp(OpKind::kSetAdd, "b", {"a"}, Outcome::kOk, 2),
                       SetOp(OpKind::kDeleteKey, "", {"a", "b"}, Outcome::kOk, 3),
                       SetOp(OpKind::kSetAdd, "c", {}, Outcome::kOk, 4)};
  Findings f = Check(h, {{"d", {"c"}}}, {});
  EXPECT_EQ(f.lost, 0u);
  EXPECT_EQ(f.undone, 0u);
  f = Check(h, {{"d", {"a b c"}}}, {});
  EXPECT_EQ(f.undone, 2u);
  f = Check(h, {{"d", {}}}, {});  // c came after the delete: lost
  EXPECT_EQ(f.lost, 1u);
}

TEST(PartitionChecker, AFailedWriteThatAppearsIsNamed) {
  std::vector<Op> h = {SetOp(OpKind::kSetAdd, "a", {}, Outcome::kFail, 1)};
  h[0].error = "unavailable: 1 of the 2 required replicas are up";
  Findings f = Check(h, {{"d", {"a"}}}, {});
  EXPECT_EQ(f.failed_present, 1u);
  ASSERT_EQ(f.failed_present_examples.size(), 1u);
  EXPECT_NE(f.failed_present_examples[0].find("required replicas"), std::string::npos);
}

TEST(PartitionChecker, StaleReadsAreCountedByNemesisUnlessARemovalExplainsThem) {
  std::vector<Period> periods = {{"halves", "{1,2} | {3,4,5}", 5, 10}};
  std::vector<Op> h = {SetOp(OpKind::kSetAdd, "a", {}, Outcome::kOk, 1),
                       SetOp(OpKind::kSetAdd, "b", {}, Outcome::kOk, 6),    // missed a: stale
                       SetOp(OpKind::kSetAdd, "c", {"a", "b"}, Outcome::kOk, 7),  // saw both
                       SetOp(OpKind::kSetAdd, "e", {}, Outcome::kOk, 12)};  // missed a, b, c
  Findings f = Check(h, {{"d", {"a", "b", "a b c", "e"}}}, periods);
  ASSERT_EQ(f.stale_reads.size(), 2u);
  EXPECT_EQ(f.stale_reads[0].during, "halves");
  EXPECT_EQ(f.stale_reads[0].reads, 2u);
  EXPECT_EQ(f.stale_reads[0].stale, 1u);
  EXPECT_EQ(f.stale_reads[1].during, "none");
  EXPECT_EQ(f.stale_reads[1].reads, 2u);
  EXPECT_EQ(f.stale_reads[1].stale, 1u);
  // A removal of a (outcome unknown) invoked before b's read ended: a may be gone: not stale.
  h.push_back(SetOp(OpKind::kSetRemove, "r", {"a"}, Outcome::kUnknown, 5.5, "a"));
  h.back().key = "d";
  f = Check(h, {{"d", {"b", "c", "e", "r"}}}, periods);
  EXPECT_EQ(f.stale_reads[0].stale, 0u);
}

TEST(Nemesis, CrashTakesOneMemberAndSkewSetsAClockMinutesOffBothWays) {
  std::set<bool> ahead;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    Rng rng(seed);
    const Fault c = PlanFault(NemesisKind::kCrash, std::vector<int>{1, 2, 4, 6, 7}, rng);
    ASSERT_EQ(c.victims.size(), 1u);
    EXPECT_FALSE(c.IsNetwork());
    EXPECT_EQ(c.Describe(), "crash {" + std::to_string(c.victims[0]) + "}");
    const Fault s = PlanFault(NemesisKind::kSkew, 5, rng);
    ASSERT_EQ(s.victims.size(), 1u);
    EXPECT_GE(std::llabs(s.clock_offset_s), 60);
    EXPECT_LE(std::llabs(s.clock_offset_s), 600);
    ahead.insert(s.clock_offset_s > 0);
    EXPECT_EQ(IptablesRules(&s, 5), IptablesRules(nullptr, 5));
  }
  EXPECT_EQ(ahead.size(), 2u);
}

TEST(PartitionChecker, SetEncodingRoundTrips) {
  std::set<std::string> s = {"c1-2", "c0-10", "c3-0"};
  EXPECT_EQ(DecodeSet(EncodeSet(s)), s);
  EXPECT_TRUE(DecodeSet("").empty());
}

TEST(Nemesis, ParsesCommaListsAndRejectsUnknownNames) {
  std::string error;
  auto k = ParseNemeses("halves,kill,halves", &error);
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, (std::vector<NemesisKind>{NemesisKind::kHalves, NemesisKind::kKill}));
  EXPECT_FALSE(ParseNemeses("halves,split", &error));
  EXPECT_NE(error.find("unknown nemesis 'split'"), std::string::npos);
  EXPECT_FALSE(ParseNemeses("", &error));
}

// Two nodes can talk iff some group holds both: checked against each fault's intent.
bool Cut(const std::vector<std::pair<int, int>>& cuts, int a, int b) {
  return std::count(cuts.begin(), cuts.end(), std::make_pair(a, b)) > 0;
}

TEST(Nemesis, PartitionsCutExactlyTheLinksBetweenSides) {
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    Rng rng(seed);
    for (int n : {3, 5, 7}) {
      Fault halves = PlanFault(NemesisKind::kHalves, n, rng);
      ASSERT_EQ(halves.groups.size(), 2u);
      EXPECT_EQ(halves.groups[0].size(), static_cast<std::size_t>(n / 2));
      auto cuts = CutPairs(halves, n);
      EXPECT_EQ(cuts.size(), 2 * halves.groups[0].size() * halves.groups[1].size());
      for (int a : halves.groups[0]) {
        for (int b : halves.groups[1]) {
          EXPECT_TRUE(Cut(cuts, a, b) && Cut(cuts, b, a));
        }
      }

      Fault iso = PlanFault(NemesisKind::kIsolate, n, rng);
      EXPECT_EQ(CutPairs(iso, n).size(), 2u * (n - 1));

      Fault bridge = PlanFault(NemesisKind::kBridge, n, rng);
      ASSERT_EQ(bridge.groups.size(), 2u);
      int shared = 0;
      for (int x : bridge.groups[0]) shared += std::count(bridge.groups[1].begin(), bridge.groups[1].end(), x);
      EXPECT_EQ(shared, 1);
      cuts = CutPairs(bridge, n);
      for (int b = 1; b <= n; ++b) {
        const bool is_bridge = std::count(bridge.groups[0].begin(), bridge.groups[0].end(), b) &&
                               std::count(bridge.groups[1].begin(), bridge.groups[1].end(), b);
        for (int o = 1; o <= n; ++o) {
          if (is_bridge && o != b) {
            EXPECT_FALSE(Cut(cuts, b, o) || Cut(cuts, o, b));
          }
        }
      }

      Fault random = PlanFault(NemesisKind::kRandom, n, rng);
      std::set<int> all;
      for (const auto& g : random.groups) {
        EXPECT_FALSE(g.empty());
        all.insert(g.begin(), g.end());
      }
      EXPECT_EQ(all.size(), static_cast<std::size_t>(n));
      EXPECT_GE(random.groups.size(), 2u);
      EXPECT_FALSE(CutPairs(random, n).empty());

      for (NemesisKind k : {NemesisKind::kKill, NemesisKind::kPause}) {
        Fault f = PlanFault(k, n, rng);
        EXPECT_GE(f.victims.size(), 1u);
        EXPECT_LE(f.victims.size(), static_cast<std::size_t>((n - 1) / 2)) << "a majority stays";
        EXPECT_TRUE(CutPairs(f, n).empty());
      }
    }
  }
}

TEST(Nemesis, RulesDropBothDirectionsOfEveryCutLinkAndHealEmptiesTheTable) {
  Fault f;
  f.kind = NemesisKind::kIsolate;
  f.groups = {{2}, {1, 3}};
  const std::string rules = IptablesRules(&f, 3);
  EXPECT_NE(rules.find("-A INPUT -s 127.0.0.2/32 -d 127.0.0.1/32 -j DROP"), std::string::npos);
  EXPECT_NE(rules.find("-A INPUT -s 127.0.0.1/32 -d 127.0.0.2/32 -j DROP"), std::string::npos);
  EXPECT_EQ(rules.find("127.0.0.1/32 -d 127.0.0.3/32"), std::string::npos);
  EXPECT_EQ(rules.substr(rules.size() - 7), "COMMIT\n");
  const std::string healed = IptablesRules(nullptr, 3);
  EXPECT_EQ(healed.find("-A "), std::string::npos);
  EXPECT_EQ(healed.rfind("*filter", 0), 0u);

  Fault loss;
  loss.kind = NemesisKind::kLoss;
  loss.loss = 0.3;
  const std::string lossy = IptablesRules(&loss, 3);
  EXPECT_NE(lossy.find("-s 127.0.0.3/32 -d 127.0.0.1/32 -m statistic --mode random "
                       "--probability 0.3000 -j DROP"),
            std::string::npos);
  EXPECT_EQ(std::count(lossy.begin(), lossy.end(), '\n'), 4 + 6 + 1);
}

TEST(Nemesis, ScheduleReplaysFromItsSeedAndHealsInTime) {
  const std::vector<NemesisKind> kinds = {NemesisKind::kHalves, NemesisKind::kKill,
                                          NemesisKind::kLoss};
  auto a = PlanSchedule(kinds, 5, 120, 5, 8, 14, 7);
  auto b = PlanSchedule(kinds, 5, 120, 5, 8, 14, 7);
  auto c = PlanSchedule(kinds, 5, 120, 5, 8, 14, 8);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  bool differs = a.size() != c.size();
  std::set<NemesisKind> used;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].start_s, b[i].start_s);
    EXPECT_EQ(a[i].fault.Describe(), b[i].fault.Describe());
    EXPECT_LE(a[i].end_s, 120);
    EXPECT_GE(a[i].end_s - a[i].start_s, 8 - 1e-9);
    if (i > 0) {
      EXPECT_GE(a[i].start_s - a[i - 1].end_s, 5 - 1e-9);
    }
    if (i < c.size()) differs |= a[i].fault.Describe() != c[i].fault.Describe();
    used.insert(a[i].fault.kind);
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(used.size(), 3u);
}

TEST(Nemesis, MovementsKeepTheMembershipInBoundsAndFaultsNameOnlyMembers) {
  std::string error;
  const auto kinds = *ParseNemeses(
      "halves,isolate,bridge,random,loss,kill,pause,join,decommission,replace,crash,skew", &error);
  std::set<NemesisKind> used;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    for (int n : {3, 5}) {
      const auto steps = PlanSchedule(kinds, n, 600, 3, 6, 8, seed);
      std::vector<int> members;
      for (int i = 1; i <= n; ++i) members.push_back(i);
      std::set<int> ever(members.begin(), members.end());
      for (const Step& s : steps) {
        const Fault& f = s.fault;
        used.insert(f.kind);
        auto member = [&](int x) {
          return std::find(members.begin(), members.end(), x) != members.end();
        };
        for (int v : f.victims) EXPECT_TRUE(member(v)) << f.Describe();
        for (const auto& g : f.groups) {
          for (int x : g) EXPECT_TRUE(member(x)) << f.Describe();
        }
        std::set<int> grouped;
        for (const auto& g : f.groups) grouped.insert(g.begin(), g.end());
        if (!f.groups.empty()) {
          EXPECT_EQ(grouped.size(), members.size()) << f.Describe();
        }
        if (f.kind == NemesisKind::kJoin || f.kind == NemesisKind::kReplace) {
          // A slot never used before, so no address ever names two nodes.
          EXPECT_TRUE(ever.insert(f.newcomer).second) << f.Describe();
          members.push_back(f.newcomer);
        } else {
          EXPECT_EQ(f.newcomer, 0);
        }
        if (f.kind == NemesisKind::kDecommission || f.kind == NemesisKind::kReplace) {
          ASSERT_EQ(f.victims.size(), 1u);
          members.erase(std::find(members.begin(), members.end(), f.victims[0]));
        }
        std::sort(members.begin(), members.end());
        EXPECT_EQ(s.members_after, members);
        EXPECT_GE(members.size(), static_cast<std::size_t>(std::max(3, n - 1)));
        EXPECT_LE(members.size(), static_cast<std::size_t>(n + 1));
      }
      EXPECT_EQ(SlotsOf(steps, n), *ever.rbegin());
    }
  }
  EXPECT_EQ(used.size(), kinds.size()) << "every kind comes up";
  Fault f;
  f.kind = NemesisKind::kReplace;
  f.victims = {2};
  f.newcomer = 7;
  EXPECT_EQ(f.Describe(), "replace 2 by 7");
  EXPECT_FALSE(f.IsNetwork());
  EXPECT_TRUE(CutPairs(f, 7).empty());
}

TEST(Nemesis, ANetworkFaultCutsSlotsThatAreNotMembersFromEveryone) {
  Rng rng(3);
  Fault halves = PlanFault(NemesisKind::kHalves, std::vector<int>{1, 2, 4, 6}, rng);
  const auto cuts = CutPairs(halves, 6);
  for (int o : {1, 2, 4, 6}) {
    EXPECT_TRUE(Cut(cuts, 3, o) && Cut(cuts, o, 3));
    EXPECT_TRUE(Cut(cuts, 5, o) && Cut(cuts, o, 5));
  }
  // Two members on the same side still talk.
  for (const auto& g : halves.groups) {
    for (int a : g) {
      for (int b : g) EXPECT_TRUE(a == b || !Cut(cuts, a, b));
    }
  }
}

TEST(Timeline, DrawsEveryOperationAndEveryPeriod) {
  std::vector<Op> h = {Write(OpKind::kPut, "p", "1", Outcome::kOk, 1),
                       Write(OpKind::kPut, "p", "2", Outcome::kFail, 2),
                       Write(OpKind::kPut, "p", "3", Outcome::kUnknown, 3)};
  std::vector<Period> periods = {{"halves", "{1} | {2,3}", 1.5, 2.5}};
  const std::string svg = TimelineSvg(h, periods, 2, {5, 4, 4.5});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("#2ca02c"), std::string::npos);
  EXPECT_NE(svg.find("#d62728"), std::string::npos);
  EXPECT_NE(svg.find("#ff7f0e"), std::string::npos);
  EXPECT_NE(svg.find("halves {1} | {2,3}"), std::string::npos);
  EXPECT_NE(svg.find("final heal"), std::string::npos);
  EXPECT_NE(svg.find("converged"), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
}

}  // namespace
}  // namespace kv::partition
