// rpc/repair_batch.h: the repair exchange's batches round-trip, and every malformed batch (cut
// short anywhere, trailing bytes, counts over the bound, bad flags, flipped bits) is refused
// with an error rather than trusted.
#include "rpc/repair_batch.h"

#include <gtest/gtest.h>

#include <random>

#include "storage/codec.h"

namespace kv::rpc {
namespace {

storage::Record SomeRecord(const std::string& value, storage::NodeId node) {
  storage::Record r;
  r.Write(node, {}, false, value);
  return r;
}

TEST(RepairBatch, RecordsRoundTrip) {
  KeyRecords in = {{"a", SomeRecord("1", 7)}, {"key:2", SomeRecord(std::string(300, 'x'), 9)}};
  auto out = DecodeRecords(EncodeRecords(in), 2);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*out)[i].first, in[i].first);
    EXPECT_TRUE((*out)[i].second == in[i].second);
  }
  EXPECT_TRUE(DecodeRecords(EncodeRecords({}), 0).ok());
  EXPECT_FALSE(DecodeRecords(EncodeRecords(in), 1).ok());  // more than the bound
}

TEST(RepairBatch, OffersAndAnswersRoundTrip) {
  std::vector<std::string> keys = {"k1", "k2"};
  std::vector<storage::CausalContext> ctx = {SomeRecord("v", 3).context(), {}};
  std::vector<std::string> k2;
  std::vector<storage::CausalContext> c2;
  ASSERT_TRUE(DecodeOffers(EncodeOffers(keys, ctx), 2, &k2, &c2).ok());
  EXPECT_EQ(k2, keys);
  ASSERT_EQ(c2.size(), 2u);
  EXPECT_TRUE(c2[0] == ctx[0]);

  std::vector<repair::OfferAnswer> answers(3);
  answers[0].need = true;
  answers[1].entry = 0x1234567890abcdefull;
  answers[2].record = SomeRecord("theirs", 4);
  answers[2].entry = 5;
  auto out = DecodeAnswers(EncodeAnswers(answers), 3);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 3u);
  EXPECT_TRUE((*out)[0].need);
  EXPECT_EQ((*out)[0].entry, 0u);
  EXPECT_TRUE((*out)[0].record.empty());
  EXPECT_FALSE((*out)[1].need);
  EXPECT_EQ((*out)[1].entry, 0x1234567890abcdefull);
  EXPECT_TRUE((*out)[2].record == answers[2].record);
  EXPECT_EQ((*out)[2].entry, 5u);
}

TEST(RepairBatch, MalformedBatchesAreRefused) {
  const std::string records = EncodeRecords({{"a", SomeRecord("1", 7)}, {"b", SomeRecord("2", 8)}});
  std::vector<repair::OfferAnswer> answers(2);
  answers[0].need = true;
  answers[1].record = SomeRecord("r", 2);
  answers[1].entry = 9;
  const std::string ans = EncodeAnswers(answers);
  const std::string offers = EncodeOffers({"k"}, {SomeRecord("v", 3).context()});
  // Cut short anywhere, or with a byte more: refused.
  for (std::size_t n = 0; n < records.size(); ++n) {
    EXPECT_FALSE(DecodeRecords(records.substr(0, n), 10).ok()) << n;
  }
  for (std::size_t n = 0; n < ans.size(); ++n) {
    EXPECT_FALSE(DecodeAnswers(ans.substr(0, n), 10).ok()) << n;
  }
  for (std::size_t n = 0; n < offers.size(); ++n) {
    std::vector<std::string> k;
    std::vector<storage::CausalContext> c;
    EXPECT_FALSE(DecodeOffers(offers.substr(0, n), 10, &k, &c).ok()) << n;
  }
  EXPECT_FALSE(DecodeRecords(records + "x", 10).ok());
  EXPECT_FALSE(DecodeAnswers(ans + "x", 10).ok());
  // A count far larger than the bytes, a length past the end, unknown flags, an entry of 0.
  EXPECT_FALSE(DecodeRecords("\xff\xff\xff\xff\x0f", 1u << 30).ok());
  EXPECT_FALSE(DecodeRecords(std::string("\x01\x7f", 2) + "ab", 10).ok());
  EXPECT_FALSE(DecodeAnswers(std::string("\x01\x08", 2), 10).ok());
  EXPECT_FALSE(DecodeAnswers(std::string("\x01\x02", 2) + std::string(8, '\0'), 10).ok());
  // Flipped bits: an error or a well-formed batch, never a crash (the sanitizer runs check).
  std::mt19937_64 rng(1);
  for (int t = 0; t < 2000; ++t) {
    std::string r = records, a = ans;
    r[rng() % r.size()] ^= static_cast<char>(1 << (rng() % 8));
    a[rng() % a.size()] ^= static_cast<char>(1 << (rng() % 8));
    (void)DecodeRecords(r, 10);
    (void)DecodeAnswers(a, 10);
  }
}

TEST(RepairBatch, NodesRoundTripAndOnlyAscendingDecode) {
  const std::vector<std::uint64_t> nodes = {0, 1, 17, 300, 4095, UINT64_MAX};
  const std::string bytes = EncodeNodes(nodes);
  auto out = DecodeNodes(bytes, 10);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out.value(), nodes);
  // Small gaps take a byte each: 250 nodes of 4,096 in a few hundred bytes, not 2,000.
  std::vector<std::uint64_t> dense;
  for (std::uint64_t n = 0; n < 4096; n += 16) dense.push_back(n);
  EXPECT_LE(EncodeNodes(dense).size(), dense.size() + 3);
  EXPECT_TRUE(DecodeNodes(EncodeNodes({}), 0).ok());
  EXPECT_FALSE(DecodeNodes(bytes, 5).ok());  // more than the bound
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeNodes(bytes.substr(0, n), 10).ok()) << n;
  }
  EXPECT_FALSE(DecodeNodes(bytes + "x", 10).ok());
  EXPECT_FALSE(DecodeNodes(std::string("\x02\x05\x00", 3), 10).ok());  // a repeated node
  EXPECT_FALSE(DecodeNodes(std::string("\x02\x01", 2) + std::string(9, '\xff') + "\x01", 10)
                   .ok());  // past 2^64
}

}  // namespace
}  // namespace kv::rpc
