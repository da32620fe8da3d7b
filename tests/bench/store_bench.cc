// store_bench: the storage work of one request without any RPC, as the baseline for
// `kvtool bench`. Runs LocalStore writes (each passing the previous context of its key, as
// kvtool bench does) and reads on a real RocksDB in a temporary directory, one thread.
//
//   store_bench --ops N --keys K --value-size B [--json]
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "storage/codec.h"
#include "storage/local_store.h"
#include "storage/rocksdb_engine.h"

using Clock = std::chrono::steady_clock;

nlohmann::json Summary(const char* op, std::vector<std::uint32_t>& lat, double secs) {
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat[static_cast<std::size_t>(p / 100 * (lat.size() - 1))]; };
  return {{"op", op},
          {"ops", lat.size()},
          {"ops_per_s", lat.size() / secs},
          {"p50_us", pct(50)},
          {"p99_us", pct(99)}};
}

int main(int argc, char** argv) {
  std::uint64_t ops = 200000, keys = 100000;
  std::size_t value_size = 100;
  bool json = false;
  CLI::App app{"store_bench: LocalStore on RocksDB, no RPC"};
  app.add_option("--ops", ops)->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  app.add_option("--keys", keys)->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  app.add_option("--value-size", value_size)->check(CLI::Range(0, 1 << 24));
  app.add_flag("--json", json);
  CLI11_PARSE(app, argc, argv);

  std::string dir = (std::filesystem::temp_directory_path() / "kv_store_bench_XXXXXX").string();
  if (!mkdtemp(dir.data())) return 1;
  nlohmann::json out;
  {
    auto engine = kv::storage::RocksDbEngine::Open(dir, {});
    if (!engine.ok()) {
      std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
      return 1;
    }
    kv::storage::LocalStore store(engine.value().get(), 1, {});
    std::unordered_map<std::uint64_t, kv::storage::CausalContext> contexts;
    std::mt19937_64 rng(1);
    const std::string value(value_size, 'v');
    std::vector<std::uint32_t> lat;
    lat.reserve(ops);
    auto begin = Clock::now();
    for (std::uint64_t i = 0; i < ops; ++i) {
      const std::uint64_t k = std::uniform_int_distribution<std::uint64_t>(0, keys - 1)(rng);
      const std::string key = "bench:" + std::to_string(k);
      const auto t0 = Clock::now();
      auto r = store.Write(key, contexts[k], false, value);
      if (!r.ok()) return 1;
      // What the RPC layer does per write: encode the context for the reply.
      const std::string reply = kv::storage::EncodeContext(r->context());
      contexts[k] = r->context();
      lat.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    }
    double secs = std::chrono::duration<double>(Clock::now() - begin).count();
    out["operations"].push_back(Summary("put", lat, secs));
    lat.clear();
    begin = Clock::now();
    for (std::uint64_t i = 0; i < ops; ++i) {
      const std::uint64_t k = std::uniform_int_distribution<std::uint64_t>(0, keys - 1)(rng);
      const auto t0 = Clock::now();
      auto r = store.Read("bench:" + std::to_string(k));
      if (!r.ok()) return 1;
      lat.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    }
    secs = std::chrono::duration<double>(Clock::now() - begin).count();
    out["operations"].push_back(Summary("get", lat, secs));
  }
  std::filesystem::remove_all(dir);
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    for (const auto& op : out["operations"]) {
      std::printf("store %s: %.0f ops/s p50 %u us p99 %u us\n", op["op"].get<std::string>().c_str(),
                  op["ops_per_s"].get<double>(), op["p50_us"].get<unsigned>(),
                  op["p99_us"].get<unsigned>());
    }
  }
  return 0;
}
