// repair_bench: what anti-entropy costs, beside a Cassandra-style baseline, in one run.
//
// Two replicas (two RocksDB stores, each with its live hash tree) are loaded with the same
// --keys records of --value-size bytes; then --diffs random keys get a newer version on the
// first only. Measured:
//   - ours: the exchange of the whole ring over real Cap'n Proto RPC (an in-process socket
//     pair): bytes on the wire (every request and reply message), time, records moved; bytes
//     divided by the encoded bytes of the differing records;
//   - baseline (Cassandra-style): each side scans all its data to build a fixed depth-15 tree
//     (2^15 leaves), one whole tree crosses the wire, and for every differing leaf both sides
//     stream every record of the leaf's range; bytes as modelled, time of the scans;
//   - verify: a second exchange once the replicas agree: bytes, and time against one full scan.
//
// With --empty the second replica holds nothing and initiates: the copy a joining node makes of
// a range it now owns (rpc/movement_runner.h). Measured: bytes on the wire (both directions)
// against the encoded bytes of every record (key + record), for the copy and, beside it, for
// the ordinary exchange into an empty replica.
//
//   repair_bench [--keys 1000000] [--diffs 1000] [--value-size 100] [--bits 16] [--json]
//   repair_bench --empty [--keys 1000000] [--value-size 100]
#include <kj/async-io.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "repair/exchange.h"
#include "repair/hash_tree.h"
#include "repair/iblt.h"
#include "repair/store_reader.h"
#include "rpc/repair_service.h"
#include "rpc/session.h"
#include "storage/codec.h"
#include "storage/local_store.h"
#include "storage/rocksdb_engine.h"

namespace {

using namespace kv;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Replica {
  std::string dir;
  std::unique_ptr<storage::RocksDbEngine> engine;
  std::unique_ptr<storage::LocalStore> store;
  std::unique_ptr<repair::LiveTree> tree;
  std::unique_ptr<repair::StoreReader> reader;

  Replica(const std::string& d, storage::NodeId id, int bits) : dir(d) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    auto opened = storage::RocksDbEngine::Open(dir, storage::RocksDbOptions());
    if (!opened.ok()) {
      std::fprintf(stderr, "repair_bench: %s\n", opened.status().ToString().c_str());
      std::exit(1);
    }
    engine = std::move(opened.value());
    store = std::make_unique<storage::LocalStore>(engine.get(), id, storage::Limits());
    tree = std::make_unique<repair::LiveTree>(bits);
    store->SetListener(tree.get());
    reader = std::make_unique<repair::StoreReader>(store.get(), engine.get(), tree.get());
  }
  ~Replica() {
    reader.reset();
    store.reset();
    engine.reset();
    std::filesystem::remove_all(dir);
  }
};

std::string Key(std::uint64_t k) { return "key:" + std::to_string(k); }

// The same records into both replicas (only the first when `b` is null), in batches; returns the
// encoded bytes of the records (key + record) of one replica.
std::uint64_t Load(Replica& a, Replica* b, std::uint64_t keys, std::size_t value_size) {
  std::uint64_t bytes = 0;
  const std::string value(value_size, 'v');
  std::vector<storage::WriteOp> ops;
  auto flush = [&](Replica& r) {
    std::vector<storage::WriteOp*> ptrs;
    for (auto& op : ops) ptrs.push_back(&op);
    r.store->ApplyBatch(ptrs);
  };
  for (std::uint64_t k = 0; k < keys; ++k) {
    storage::WriteOp op;
    op.kind = storage::WriteOp::Kind::kMerge;
    op.key = Key(k);
    op.remote.Write(7, {}, false, value);
    bytes += op.key.size() + storage::EncodeRecord(op.remote).size();
    ops.push_back(std::move(op));
    if (ops.size() == 1000 || k + 1 == keys) {
      flush(a);
      if (b != nullptr) flush(*b);
      ops.clear();
    }
  }
  return bytes;
}

struct Exchanged {
  Status status;
  repair::ExchangeStats stats;
  std::uint64_t bytes = 0;
  double seconds = 0;
};

// One exchange of the whole ring, a initiating, b answering over RPC on a socket pair; with
// `copy`, a copies (repair::Initiator::PreferCopy).
Exchanged RunOverRpc(kj::AsyncIoContext& io, Replica& a, Replica& b, int bits, bool copy = false) {
  auto pipe = io.provider->newTwoWayPipe();
  rpc::StoragePool pool({2, 64});  // as in kvd: steps off the event loop
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = 1ull << 30;
  rpc::RpcSession server(kj::mv(pipe.ends[0]),
                         kj::heap<rpc::RepairSessionServer>(&pool, b.reader.get(), bits,
                                                            ring::TokenRange{}),
                         opts);
  rpc::RpcSession client(kj::mv(pipe.ends[1]), opts);
  auto session = client.Bootstrap().castAs<rpc::wire::RepairSession>();
  auto init = std::make_shared<repair::Initiator>(a.reader.get(), bits, ring::TokenRange{});
  if (copy) init->PreferCopy();
  Exchanged out;
  const auto t0 = Clock::now();
  out.status = rpc::RunExchange(&pool, init, session, io.provider->getTimer(), 600 * kj::SECONDS,
                                &out.bytes)
                   .wait(io.waitScope);
  out.seconds = Since(t0);
  out.stats = init->stats();
  return out;
}

struct Baseline {
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::uint64_t leaves_differing = 0;
};

// Cassandra-style: full scans to build depth-15 trees, one tree sent, and both sides' records
// of every differing leaf streamed.
Baseline RunBaseline(Replica& a, Replica& b) {
  constexpr int kDepth = 15;
  Baseline out;
  const auto t0 = Clock::now();
  auto ta = repair::BuildFromScan(*a.engine, kDepth).value();
  auto tb = repair::BuildFromScan(*b.engine, kDepth).value();
  out.bytes += ((std::size_t{1} << (kDepth + 1)) - 1) * 8;  // every node of one tree, 8 B each
  for (std::size_t s = 0; s < ta.segments(); ++s) {
    if (ta.Leaf(s) == tb.Leaf(s)) continue;
    ++out.leaves_differing;
    for (Replica* r : {&a, &b}) {
      (void)r->engine->Scan(ta.SegmentRange(s), [&](ring::Token, std::string_view k,
                                                   std::string_view v) {
        out.bytes += k.size() + v.size();
        return true;
      });
    }
  }
  out.seconds = Since(t0);
  return out;
}

double FullScanSeconds(Replica& r) {
  const auto t0 = Clock::now();
  std::uint64_t n = 0;
  (void)r.engine->Scan({}, [&](ring::Token, std::string_view, std::string_view v) {
    n += v.size();
    return true;
  });
  return Since(t0) + (n == 0 ? 0 : 0);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t keys = 1000000, diffs = 1000;
  std::size_t value_size = 100;
  int bits = 16;
  bool json = false;
  std::string dir = (std::filesystem::temp_directory_path() / "kv_repair_bench").string();
  CLI::App app{"repair_bench: anti-entropy cost beside a Cassandra-style baseline"};
  app.add_option("--keys", keys)->check(CLI::Range(std::uint64_t{1000}, std::uint64_t{1} << 32));
  app.add_option("--diffs", diffs)->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 32));
  app.add_option("--value-size", value_size)->check(CLI::Range(0, 1 << 20));
  app.add_option("--bits", bits, "Hash tree segment bits")->check(CLI::Range(8, 22));
  app.add_option("--dir", dir, "Scratch directory (removed at the end)");
  std::uint64_t seed = 42;
  app.add_option("--seed", seed, "Chooses the differing keys");
  app.add_flag("--json", json);
  bool empty = false;
  app.add_flag("--empty", empty, "The second replica holds nothing and pulls everything");
  CLI11_PARSE(app, argc, argv);
  if (diffs > keys) diffs = keys;

  auto io = kj::setupAsyncIo();
  Replica a(dir + "/a", 1, bits), b(dir + "/b", 2, bits);
  auto t0 = Clock::now();
  const std::uint64_t record_bytes = Load(a, empty ? nullptr : &b, keys, value_size);
  const double load_s = Since(t0);
  if (empty) {
    // The same empty replica pulls twice: by comparing trees (the exchange), then, emptied
    // again, by copying.
    Exchanged compared = RunOverRpc(io, b, a, bits);
    Replica c(dir + "/c", 3, bits);
    Exchanged pull = RunOverRpc(io, c, a, bits, /*copy=*/true);
    nlohmann::json out = {
        {"keys", keys},
        {"value_size", value_size},
        {"tree_bits", bits},
        {"record_bytes", record_bytes},
        {"status", pull.status.ToString()},
        {"bytes", pull.bytes},
        {"seconds", pull.seconds},
        {"records_pulled", pull.stats.records_pulled},
        {"bytes_pulled", pull.stats.bytes_pulled},
        {"tree_nodes", pull.stats.nodes_compared},
        {"leaves_differing", pull.stats.leaves_differing},
        {"tables", pull.stats.sketches},
        {"table_fallbacks", pull.stats.sketch_fallbacks},
        {"copy_pages", pull.stats.copy_pages},
        {"bytes_per_record_byte",
         record_bytes ? static_cast<double>(pull.bytes) / static_cast<double>(record_bytes) : 0.0},
        {"exchange_instead",
         {{"status", compared.status.ToString()},
          {"bytes", compared.bytes},
          {"seconds", compared.seconds},
          {"records_pulled", compared.stats.records_pulled},
          {"bytes_per_record_byte", record_bytes ? static_cast<double>(compared.bytes) /
                                                       static_cast<double>(record_bytes)
                                                 : 0.0}}}};
    std::printf("%s\n", json ? out.dump().c_str() : out.dump(2).c_str());
    return pull.status.ok() && compared.status.ok() && pull.stats.records_pulled == keys ? 0 : 1;
  }

  // Newer versions on a only, for `diffs` distinct keys.
  std::mt19937_64 rng(seed);
  std::set<std::uint64_t> chosen;
  while (chosen.size() < diffs) chosen.insert(rng() % keys);
  std::uint64_t diff_bytes = 0;
  const std::string newer(value_size, 'n');
  for (std::uint64_t k : chosen) {
    const auto ctx = a.store->Read(Key(k)).value().context();
    auto rec = a.store->Write(Key(k), ctx, false, newer).value();
    diff_bytes += Key(k).size() + storage::EncodeRecord(rec).size();
  }

  Baseline base = RunBaseline(a, b);
  Exchanged ours = RunOverRpc(io, a, b, bits);
  Exchanged verify = RunOverRpc(io, a, b, bits);
  const double scan_s = FullScanSeconds(a);

  nlohmann::json out = {
      {"keys", keys},
      {"diffs", diffs},
      {"seed", seed},
      {"value_size", value_size},
      {"tree_bits", bits},
      {"load_s", load_s},
      {"differing_record_bytes", diff_bytes},
      {"ours",
       {{"status", ours.status.ToString()},
        {"bytes", ours.bytes},
        {"seconds", ours.seconds},
        {"records_moved", ours.stats.records_pulled + ours.stats.records_pushed},
        {"tree_nodes", ours.stats.nodes_compared},
        {"leaves_differing", ours.stats.leaves_differing},
        {"keys_compared", ours.stats.keys_compared},
        {"table_cells", ours.stats.sketch_cells},
        {"tables", ours.stats.sketches},
        {"rounds_after_first", ours.stats.rounds},
        {"records_pushed", ours.stats.records_pushed},
        {"records_pulled", ours.stats.records_pulled},
        {"table_bytes", ours.stats.sketch_cells * repair::Iblt::kCellBytes},
        {"table_fallbacks", ours.stats.sketch_fallbacks},
        {"unions_narrowed", ours.stats.unions_narrowed},
        {"bytes_per_differing_record_byte",
         diff_bytes ? static_cast<double>(ours.bytes) / static_cast<double>(diff_bytes) : 0.0}}},
      {"baseline",
       {{"bytes", base.bytes},
        {"seconds", base.seconds},
        {"leaves_differing", base.leaves_differing},
        {"bytes_ratio_baseline_over_ours",
         ours.bytes ? static_cast<double>(base.bytes) / static_cast<double>(ours.bytes) : 0.0},
        {"time_ratio_baseline_over_ours", ours.seconds > 0 ? base.seconds / ours.seconds : 0.0}}},
      {"verify",
       {{"status", verify.status.ToString()},
        {"bytes", verify.bytes},
        {"seconds", verify.seconds},
        {"full_scan_seconds", scan_s},
        {"time_over_full_scan", scan_s > 0 ? verify.seconds / scan_s : 0.0},
        {"records_moved", verify.stats.records_pulled + verify.stats.records_pushed}}}};
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s\n", out.dump(2).c_str());
  }
  return ours.status.ok() && verify.status.ok() ? 0 : 1;
}
