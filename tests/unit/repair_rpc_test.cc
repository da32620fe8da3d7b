// RunExchange (rpc/repair_service.h) over a real Cap'n Proto connection on a socket pair, with an
// in-memory RangeReader standing in for the stores (the logic under test is the RPC driving).
#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "repair/exchange.h"
#include "repair/hash_tree.h"
#include "rpc/repair_service.h"
#include "rpc/session.h"
#include "rpc/storage_pool.h"
#include "storage/codec.h"

namespace kv::rpc {
namespace {

constexpr int kBits = 4;

// A replica's data in a map; leaves computed from it as the live tree would keep them.
class MapReader final : public repair::RangeReader {
 public:
  std::map<std::string, storage::Record> data;
  // The threads that asked for the tree's leaves (every exchange starts there).
  std::mutex mu;
  std::set<std::thread::id> threads;

  Result<std::vector<std::uint64_t>> Leaves(const ring::TokenRange& range) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    repair::HashTree shape(kBits);
    const repair::SegmentSpan span = repair::SpanOf(shape, range);
    std::vector<std::uint64_t> out(span.count(), 0);
    const auto entries = Entries(range);
    for (const auto& e : entries.value()) {
      out[shape.SegmentOf(ring::TokenOf(e.key)) - span.first] ^= repair::EntryHash(e.key, e.digest);
    }
    return out;
  }
  Result<std::vector<repair::KeyDigest>> Entries(const ring::TokenRange& range) override {
    std::vector<std::pair<ring::Token, repair::KeyDigest>> in;
    for (const auto& [k, r] : data) {
      if (range.Contains(ring::TokenOf(k))) {
        const std::string enc = storage::EncodeRecord(r);
        in.push_back(
            {ring::TokenOf(k), {k, storage::VersionDigest(enc), storage::ContextDots(enc)}});
      }
    }
    std::sort(in.begin(), in.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<repair::KeyDigest> out;
    for (auto& [t, e] : in) out.push_back(std::move(e));
    return out;
  }
  Result<storage::Record> Get(const std::string& key) override {
    auto it = data.find(key);
    return it == data.end() ? storage::Record() : it->second;
  }
  Result<storage::Record> Merge(const std::string& key, const storage::Record& record) override {
    data[key] = storage::Record::Merge(data[key], record);
    return data[key];
  }
  Status MergeAll(const std::vector<std::pair<std::string, storage::Record>>& records) override {
    for (const auto& [k, r] : records) (void)Merge(k, r);
    return Status::Ok();
  }
  Result<std::vector<repair::KeyDigest>> PurgeCandidates(const ring::TokenRange&,
                                                         std::uint64_t) override {
    return std::vector<repair::KeyDigest>();
  }
  Result<bool> PurgeIfUnchanged(const std::string&, std::uint64_t) override { return false; }
  Result<std::uint64_t> DropRange(const ring::TokenRange& range) override {
    std::uint64_t n = 0;
    for (auto it = data.begin(); it != data.end();) {
      if (range.Contains(ring::TokenOf(it->first))) {
        it = data.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }
  Status Scan(const ring::TokenRange& range,
              const std::function<bool(ring::Token, std::string_view, std::string_view)>& fn)
      override {
    const auto entries = Entries(range);  // named: a temporary's value() would dangle
    for (const auto& e : entries.value()) {
      if (!fn(ring::TokenOf(e.key), e.key, storage::EncodeRecord(data[e.key]))) break;
    }
    return Status::Ok();
  }
};

// Each step of an exchange may follow a long computation on the RPC thread (a scan); the
// timeout of the call that follows must still be measured from the time the call is made, not
// from when the event loop last looked at the clock.
TEST(RepairRpc, ACallAfterTheThreadWasBusyIsNotTimedOutAtOnce) {
  auto io = kj::setupAsyncIo();
  MapReader a, b;
  for (int k = 0; k < 50; ++k) {
    storage::Record r;
    r.Write(7, {}, false, "v" + std::to_string(k));
    a.data["key" + std::to_string(k)] = r;
    if (k % 10 != 0) b.data["key" + std::to_string(k)] = r;
  }
  auto pipe = io.provider->newTwoWayPipe();
  capnp::ReaderOptions opts;
  RpcSession server(kj::mv(pipe.ends[0]),
                    kj::heap<RepairSessionServer>(nullptr, &b, kBits, ring::TokenRange{}), opts);
  RpcSession client(kj::mv(pipe.ends[1]), opts);
  auto session = client.Bootstrap().castAs<wire::RepairSession>();
  auto init = std::make_shared<repair::Initiator>(&a, kBits, ring::TokenRange{});
  // The thread is busy (here: blocked) for longer than the timeout before the exchange starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::uint64_t bytes = 0;
  Status s =
      RunExchange(nullptr, init, session, io.provider->getTimer(), 200 * kj::MILLISECONDS, &bytes)
          .wait(io.waitScope);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(init->stats().records_pushed, 5u);
  EXPECT_EQ(b.data.size(), a.data.size());
}

// With a storage pool, neither side's steps (which read and write the store) run on the event
// loop's thread; the exchange still converges.
TEST(RepairRpc, EveryStepRunsOnTheStoragePoolNotOnTheEventLoop) {
  auto io = kj::setupAsyncIo();
  StoragePool pool({2, 64});
  MapReader a, b;
  for (int k = 0; k < 300; ++k) {
    storage::Record r;
    r.Write(7, {}, false, "v" + std::to_string(k));
    if (k % 7 != 0) a.data["key" + std::to_string(k)] = r;
    if (k % 5 != 0) b.data["key" + std::to_string(k)] = r;
  }
  auto pipe = io.provider->newTwoWayPipe();
  capnp::ReaderOptions opts;
  RpcSession server(kj::mv(pipe.ends[0]),
                    kj::heap<RepairSessionServer>(&pool, &b, kBits, ring::TokenRange{}), opts);
  RpcSession client(kj::mv(pipe.ends[1]), opts);
  auto session = client.Bootstrap().castAs<wire::RepairSession>();
  auto init = std::make_shared<repair::Initiator>(&a, kBits, ring::TokenRange{});
  std::uint64_t bytes = 0;
  Status s = RunExchange(&pool, init, session, io.provider->getTimer(), 5 * kj::SECONDS, &bytes)
                 .wait(io.waitScope);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(a.data == b.data);
  EXPECT_EQ(a.data.size(), 300u - 300u / 35 - 1);  // all but the keys neither held (k % 35 == 0)
  ASSERT_FALSE(a.threads.empty());
  ASSERT_FALSE(b.threads.empty());
  EXPECT_EQ(a.threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(b.threads.count(std::this_thread::get_id()), 0u);
  EXPECT_GT(pool.ran(), 2u);
}

// A movement's copy over RPC: the pages cross (RepairSession.copy), the copier's own keys are
// skipped by entry hash and then offered, so the other side gets the one it lacked.
TEST(RepairRpc, ACopyCrossesTheWireAndOffersTheCopiersOwnKeys) {
  auto io = kj::setupAsyncIo();
  MapReader source, copier;
  for (int k = 0; k < 200; ++k) {
    storage::Record r;
    r.Write(7, {}, false, "v" + std::to_string(k));
    source.data["key" + std::to_string(k)] = r;
    if (k < 20) copier.data["key" + std::to_string(k)] = r;  // written to both since it began
  }
  storage::Record mine;
  mine.Write(8, {}, false, "only on the copier");
  copier.data["mine"] = mine;
  auto pipe = io.provider->newTwoWayPipe();
  capnp::ReaderOptions opts;
  StoragePool pool({2, 64});
  RpcSession server(kj::mv(pipe.ends[0]),
                    kj::heap<RepairSessionServer>(&pool, &source, kBits, ring::TokenRange{}),
                    opts);
  RpcSession client(kj::mv(pipe.ends[1]), opts);
  auto session = client.Bootstrap().castAs<wire::RepairSession>();
  auto init = std::make_shared<repair::Initiator>(&copier, kBits, ring::TokenRange{});
  init->PreferCopy();
  std::uint64_t bytes = 0;
  Status s = RunExchange(&pool, init, session, io.provider->getTimer(), 5 * kj::SECONDS, &bytes)
                 .wait(io.waitScope);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(init->stats().copy_pages, 1u);
  EXPECT_EQ(init->stats().nodes_compared, 0u);
  EXPECT_EQ(init->stats().records_pulled, 180u);  // not the 20 it held already
  EXPECT_EQ(init->stats().records_pushed, 1u);    // its own key, which the source lacked
  EXPECT_TRUE(copier.data == source.data);
}

}  // namespace
}  // namespace kv::rpc
