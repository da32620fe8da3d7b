// Encodings: round trips, hostile input, and token order of storage keys.
#include "storage/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace kv::storage {
namespace {

TEST(Codec, ContextRoundTrip) {
  CausalContext c;
  c.Add({1, 1});
  c.Add({1, 2});
  c.Add({9, 5});
  c.Add({UINT64_MAX, 3});
  auto d = DecodeContext(EncodeContext(c));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d.value(), c);
}

TEST(Codec, RecordRoundTripWithBinaryValues) {
  Record r;
  std::string binary("\0\xff\x80zz", 5);
  r.Write(3, {}, false, binary);
  r.Write(4, {}, true, "");
  r.Write(3, {}, false, std::string(100000, 'x'));
  auto d = DecodeRecord(EncodeRecord(r));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d.value(), r);
}

TEST(Codec, ContextDotsCountsTheDotsOfARecordsContext) {
  Record r;
  EXPECT_EQ(ContextDots(EncodeRecord(r)), 0u);
  r.Write(3, {}, false, "a");  // (3,1)
  r.Write(3, {}, false, "b");  // (3,2)
  r.Write(9, {}, false, "c");  // (9,1)
  EXPECT_EQ(ContextDots(EncodeRecord(r)), 3u);
  // A record that includes another has more dots.
  Record later = r;
  later.Write(9, r.context(), false, "d");
  EXPECT_GT(ContextDots(EncodeRecord(later)), ContextDots(EncodeRecord(r)));
  // Dots above a gap (the cloud) count too.
  CausalContext gap;
  gap.Add({5, 1});
  gap.Add({5, 4});
  Record with_gap;
  with_gap.Write(7, gap, false, "e");
  EXPECT_EQ(ContextDots(EncodeRecord(with_gap)), with_gap.context().vv().at(5) +
                                                     with_gap.context().cloud().size() +
                                                     with_gap.context().vv().at(7));
  // Not a record: 0.
  EXPECT_EQ(ContextDots(""), 0u);
  EXPECT_EQ(ContextDots("xyz"), 0u);
  const std::string enc = EncodeRecord(r);
  EXPECT_EQ(ContextDots(enc.substr(0, 4)), 0u);
}

TEST(Codec, RejectsMalformedContexts) {
  EXPECT_FALSE(DecodeContext("").ok());
  EXPECT_FALSE(DecodeContext("R\x01").ok());                        // a record header
  EXPECT_FALSE(DecodeContext(std::string("C\x02\0\0", 4)).ok());    // unknown version
  EXPECT_TRUE(DecodeContext(std::string("C\x01\0\0", 4)).ok());     // empty context
  EXPECT_FALSE(DecodeContext(std::string("C\x01\0\0\0", 5)).ok());  // trailing byte
  // Counts that claim more entries than there are bytes.
  EXPECT_FALSE(DecodeContext(std::string("C\x01\xff\xff\xff\x0f", 6)).ok());
  // Node ids out of order.
  EXPECT_FALSE(DecodeContext(std::string("C\x01\x02\x05\x01\x03\x01\0", 8)).ok());
  // A counter above the client limit.
  CausalContext big;
  big.Add({1, kMaxClientCounter + 1});
  EXPECT_FALSE(DecodeContext(EncodeContext(big)).ok());
  // A varint longer than 64 bits.
  EXPECT_FALSE(
      DecodeContext(std::string("C\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x01\0", 15))
          .ok());
}

// Every truncation and random corruption of a valid encoding is either rejected or decodes to
// a record that passes its invariants (FromParts checked them); none crashes.
TEST(Codec, SurvivesTruncationAndBitFlips) {
  Record r;
  r.Write(1, {}, false, "alpha");
  r.Write(2, {}, false, "beta");
  r.Write(1, r.context(), true, "");
  const std::string enc = EncodeRecord(r);
  for (std::size_t n = 0; n < enc.size(); ++n) {
    EXPECT_FALSE(DecodeRecord(enc.substr(0, n)).ok()) << "prefix " << n;
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string bad = enc;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
    auto d = DecodeRecord(bad);
    if (d.ok()) {
      for (const auto& s : d->siblings()) EXPECT_TRUE(d->context().Contains(s.dot));
    }
    (void)DecodeContext(bad);
  }
}

TEST(Codec, HintsCarryTheirAgeAndBareRecordsStillDecode) {
  Record r;
  r.Write(7, {}, false, "v");
  auto h = DecodeHint(EncodeHint(1234567, r));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->created_s, 1234567u);
  EXPECT_TRUE(h->record == r);
  auto bare = DecodeHint(EncodeRecord(r));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->created_s, 0u);
  EXPECT_TRUE(bare->record == r);
  const std::string good = EncodeHint(99, r);
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeHint(good.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodeHint(EncodeHint(0, r)).ok());                       // no age of 0
  EXPECT_FALSE(DecodeHint(std::string("H\x02") + good.substr(2)).ok());  // another version
  EXPECT_FALSE(DecodeHint(good + "x").ok());
}

TEST(Codec, StorageKeyOrderIsTokenOrder) {
  std::vector<std::string> keys;
  for (int i = 0; i < 2000; ++i) keys.push_back("key:" + std::to_string(i));
  keys.push_back(std::string("\0\0", 2));
  std::vector<std::string> encoded;
  for (const auto& k : keys) encoded.push_back(EncodeStorageKey(k));
  std::sort(encoded.begin(), encoded.end());  // byte order, as RocksDB's default comparator
  ring::Token prev = 0;
  for (const auto& e : encoded) {
    DecodedKey dk;
    ASSERT_TRUE(DecodeStorageKey(e, &dk));
    EXPECT_EQ(dk.token, ring::TokenOf(dk.key));
    EXPECT_GE(dk.token, prev);
    prev = dk.token;
  }
  DecodedKey dk;
  EXPECT_FALSE(DecodeStorageKey("short", &dk));
}

}  // namespace
}  // namespace kv::storage

namespace kv::storage {
namespace {

TEST(Codec, TombstoneDeletionTimeRoundTripsAndIsOnlyOnTombstones) {
  Record r;
  r.Write(1, {}, false, "v");
  const CausalContext seen = r.context();
  r.Write(2, seen, true, "", 1700000000);
  ASSERT_EQ(r.siblings().size(), 1u);
  EXPECT_EQ(r.siblings()[0].deleted_at, 1700000000u);
  EXPECT_TRUE(r.OnlyTombstonesBefore(1700000000));
  EXPECT_FALSE(r.OnlyTombstonesBefore(1699999999));
  const std::string bytes = EncodeRecord(r);
  auto back = DecodeRecord(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), r);
  // The same record with the time flag moved onto a value is refused.
  Record v;
  v.Write(1, {}, false, "x");
  std::string bad = EncodeRecord(v);
  // Layout ends with: flags:u8 len:varint(1) 'x'.
  ASSERT_EQ(bad[bad.size() - 3], 0);
  bad[bad.size() - 3] = 2;
  EXPECT_EQ(DecodeRecord(bad).status().code(), Status::Code::kCorruption);
  // A tombstone without a known time is never purgeable.
  Record t;
  t.Write(1, {}, true, "");
  EXPECT_FALSE(t.OnlyTombstonesBefore(UINT64_MAX));
}

}  // namespace
}  // namespace kv::storage
