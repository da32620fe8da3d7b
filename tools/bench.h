// kvtool bench: a closed-loop load generator against one node, in the manner of
// redis-benchmark and cassandra-stress. `concurrency` requests are kept in flight on one
// connection; each completion issues the next, until `ops` are done or `duration_s` passes,
// whichever comes first (both bounded). Reports ops/s and latency percentiles per operation.
//
// Errors are counted by kind (the status code, or "transport" when the call itself failed).
//
// Writes pass the context of the previous write to the same key, as a client that overwrites
// what it knows would, so records do not pile up siblings under load.
#pragma once

#include <cstdint>
#include <string>

#include "storage/status.h"

namespace CLI {
class App;
}

namespace kv::rpc {
class Tls;  // rpc/tls.h
}  // namespace kv::rpc

namespace kv::tools {

struct BenchOptions {
  std::uint64_t ops = 100000;
  double duration_s = 60;
  int concurrency = 1;
  std::string workload = "write-only";  // write-only | read-only | 50/50 | 95/5 (reads)
  std::uint64_t keys = 100000;
  std::string distribution = "uniform";  // uniform | zipfian (theta 0.99) | sequential (a load)
  std::string consistency;               // one | quorum | all; empty: the node's default
  std::size_t value_size = 100;
  double rate = 0;  // operations started per second at most; 0: unthrottled
  std::uint64_t seed = 1;
  bool preload = true;  // read workloads first write every key once
  std::string until_file;  // when set, the run also ends once this path exists
  std::string trace_file;  // when set, every operation's start and latency are written there
};

void AddBenchFlags(CLI::App* app, BenchOptions* options);

// With `tls`, the connection goes through its handshake (rpc/tls.h).
Status RunBench(const std::string& host, const BenchOptions& options, bool json,
                rpc::Tls* tls = nullptr);

}  // namespace kv::tools
