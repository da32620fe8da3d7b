// Gossip sealing (membership/gossip_seal.h): what one key seals only the keyring holding it
// opens, for the same cluster, unaltered; the keyring's rules; the replay window refuses every
// message it let through before, and every message of a past life, and nothing else.
#include "membership/gossip_seal.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace kv::membership {
namespace {

TEST(GossipSeal, WhatIsSealedOpensWithTheSameKeyAndClusterOnly) {
  const Keyring ring(NewGossipKey());
  const SealHeader h{7, 3, 42};
  const std::string sealed = Seal(ring, "prod", h, "a gossip message");
  EXPECT_TRUE(LooksSealed(sealed));
  EXPECT_EQ(sealed.size(), kSealOverhead + 16);
  EXPECT_EQ(sealed.find("a gossip message"), std::string::npos);  // encrypted
  SealHeader got;
  std::string payload;
  ASSERT_EQ(Open(ring, "prod", sealed, &got, &payload), OpenResult::kOk);
  EXPECT_EQ(payload, "a gossip message");
  EXPECT_EQ(got.sender, 7u);
  EXPECT_EQ(got.generation, 3u);
  EXPECT_EQ(got.seq, 42u);
  // Two seals of one message differ (a random nonce each).
  EXPECT_NE(Seal(ring, "prod", h, "a gossip message"), sealed);

  EXPECT_EQ(Open(ring, "staging", sealed, &got, &payload), OpenResult::kNoKey);
  EXPECT_EQ(Open(Keyring(NewGossipKey()), "prod", sealed, &got, &payload), OpenResult::kNoKey);
  for (std::size_t i = 4; i < sealed.size(); ++i) {  // every byte after the magic
    std::string altered = sealed;
    altered[i] ^= 0x01;
    EXPECT_EQ(Open(ring, "prod", altered, &got, &payload), OpenResult::kNoKey) << i;
  }
  for (std::size_t n = 4; n < kSealOverhead; ++n) {
    EXPECT_EQ(Open(ring, "prod", sealed.substr(0, n), &got, &payload), OpenResult::kMalformed);
  }
  EXPECT_EQ(Open(ring, "prod", sealed.substr(0, sealed.size() - 1), &got, &payload),
            OpenResult::kNoKey);
  EXPECT_EQ(Open(ring, "prod", "plain bytes", &got, &payload), OpenResult::kNotSealed);
  EXPECT_EQ(Open(ring, "prod", "", &got, &payload), OpenResult::kNotSealed);
}

TEST(GossipSeal, AnEmptyPayloadRoundTrips) {
  const Keyring ring(NewGossipKey());
  SealHeader got;
  std::string payload = "x";
  ASSERT_EQ(Open(ring, "", Seal(ring, "", {1, 1, 1}, ""), &got, &payload), OpenResult::kOk);
  EXPECT_EQ(payload, "");
}

TEST(Keyring, ThePrimarySealsEveryInstalledKeyOpensAndThePrimaryStays) {
  const GossipKey old_key = NewGossipKey(), new_key = NewGossipKey();
  Keyring a(old_key), b(old_key);
  std::string error;
  // Rotation as an operator runs it: install everywhere, use everywhere, remove the old key.
  ASSERT_TRUE(b.Install(new_key, &error)) << error;
  EXPECT_FALSE(b.Install(new_key, &error));
  ASSERT_TRUE(b.Use(new_key, &error)) << error;
  EXPECT_EQ(b.primary(), new_key);
  SealHeader h;
  std::string payload;
  // b seals with the new key, which a does not hold yet; a's messages still open on b.
  EXPECT_EQ(Open(a, "c", Seal(b, "c", {}, "m"), &h, &payload), OpenResult::kNoKey);
  EXPECT_EQ(Open(b, "c", Seal(a, "c", {}, "m"), &h, &payload), OpenResult::kOk);
  ASSERT_TRUE(a.Install(new_key, &error)) << error;
  EXPECT_EQ(Open(a, "c", Seal(b, "c", {}, "m"), &h, &payload), OpenResult::kOk);
  EXPECT_FALSE(b.Remove(new_key, &error)) << "the primary was removed";
  EXPECT_NE(error.find("primary"), std::string::npos) << error;
  ASSERT_TRUE(b.Remove(old_key, &error)) << error;
  EXPECT_EQ(b.keys().size(), 1u);
  EXPECT_EQ(Open(b, "c", Seal(a, "c", {}, "m"), &h, &payload), OpenResult::kNoKey);
  EXPECT_FALSE(b.Use(old_key, &error));
  EXPECT_FALSE(b.Remove(old_key, &error));
}

TEST(Keyring, HoldsABoundedNumberOfKeys) {
  Keyring ring(NewGossipKey());
  std::string error;
  for (std::size_t i = 1; i < Keyring::kMaxKeys; ++i) ASSERT_TRUE(ring.Install(NewGossipKey(), &error));
  EXPECT_FALSE(ring.Install(NewGossipKey(), &error));
  EXPECT_NE(error.find("full"), std::string::npos) << error;
}

TEST(GossipKey, TextIsBase64OfThirtyTwoBytesAndAnythingElseIsRefused) {
  const GossipKey key = NewGossipKey();
  const std::string text = GossipKeyToText(key);
  EXPECT_EQ(text.size(), 44u);
  GossipKey back{};
  std::string error;
  ASSERT_TRUE(GossipKeyFromText(" " + text + "\n", &back, &error)) << error;
  EXPECT_EQ(back, key);
  for (const std::string& bad :
       {std::string(), text.substr(0, 43), text + "A", std::string(44, 'A'), "!" + text.substr(1),
        GossipKeyToText(key).substr(0, 40) + "====", std::string("c2hvcnQ=")}) {
    error.clear();
    EXPECT_FALSE(GossipKeyFromText(bad, &back, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

TEST(ReplayWindow, TakesEachMessageOnceWithinTheWindowAndNoPastLife) {
  ReplayWindow w;
  EXPECT_TRUE(w.Accept({1, 5, 100}));
  EXPECT_FALSE(w.Accept({1, 5, 100}));  // the same again
  EXPECT_TRUE(w.Accept({1, 5, 99}));    // late, within the window
  EXPECT_FALSE(w.Accept({1, 5, 99}));
  EXPECT_TRUE(w.Accept({1, 5, 101}));
  EXPECT_TRUE(w.Accept({2, 1, 100}));  // another sender has numbers of its own
  // Far ahead: what fell out of the window is refused, what is within it still counts.
  const std::uint64_t top = 101 + ReplayWindow::kReplayWindow + 10;
  EXPECT_TRUE(w.Accept({1, 5, top}));
  EXPECT_FALSE(w.Accept({1, 5, 101}));
  EXPECT_FALSE(w.Accept({1, 5, top - ReplayWindow::kReplayWindow}));
  EXPECT_TRUE(w.Accept({1, 5, top - ReplayWindow::kReplayWindow + 1}));
  EXPECT_FALSE(w.Accept({1, 5, top - ReplayWindow::kReplayWindow + 1}));
  // A new life starts its numbers again; the past one is refused from then on.
  EXPECT_TRUE(w.Accept({1, 6, 1}));
  EXPECT_FALSE(w.Accept({1, 5, top + 1}));
  EXPECT_FALSE(w.Accept({1, 6, 1}));
  EXPECT_TRUE(w.Accept({1, 6, 2}));
}

// Against a model (every (generation, seq) taken so far, and the highest), over random arrivals
// with duplicates, reordering and jumps.
TEST(ReplayWindow, MatchesAModelOfItsRules) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 20; ++round) {
    ReplayWindow w;
    std::set<std::pair<std::uint64_t, std::uint64_t>> taken;
    std::uint64_t gen = 1, highest = 0;
    bool any = false;
    for (int i = 0; i < 5000; ++i) {
      std::uint64_t g = gen, seq;
      const int kind = static_cast<int>(rng() % 100);
      if (kind < 2) g = gen + 1;
      else if (kind < 4 && gen > 1) g = gen - 1;
      if (kind % 10 == 0) seq = highest + rng() % 3000;
      else seq = highest + 20 > rng() % 1200 ? highest + 20 - rng() % 1200 : rng() % 20;
      bool expect;
      if (!any || g > gen) {
        expect = true;
      } else if (g < gen) {
        expect = false;
      } else if (seq > highest) {
        expect = true;
      } else {
        expect = highest - seq < ReplayWindow::kReplayWindow && !taken.count({g, seq});
      }
      ASSERT_EQ(w.Accept({9, g, seq}), expect) << "round " << round << " step " << i;
      if (expect) {
        if (!any || g > gen) highest = seq;
        any = true;
        gen = std::max(gen, g);
        highest = std::max(highest, seq);
        taken.insert({g, seq});
      }
    }
  }
}

TEST(ReplayWindow, ForgetsTheLeastRecentlyHeardSenderPastItsBound) {
  ReplayWindow w(3);
  EXPECT_TRUE(w.Accept({1, 1, 1}));
  EXPECT_TRUE(w.Accept({2, 1, 1}));
  EXPECT_TRUE(w.Accept({3, 1, 1}));
  EXPECT_TRUE(w.Accept({1, 1, 2}));  // 1 heard again: 2 is now the least recent
  EXPECT_TRUE(w.Accept({4, 1, 1}));
  EXPECT_EQ(w.senders(), 3u);
  EXPECT_FALSE(w.Accept({1, 1, 2}));  // 1 is remembered
  EXPECT_FALSE(w.Accept({3, 1, 1}));  // 3 too
  EXPECT_TRUE(w.Accept({2, 1, 1}));   // 2 was forgotten
}

}  // namespace
}  // namespace kv::membership
