// Metrics in the Prometheus text exposition format (version 0.0.4): histograms the request
// paths record into, and a writer for families of samples. Pure, no I/O; the HTTP endpoint is
// metrics_http.h.
//
// Histogram::Observe is thread-safe (relaxed atomics); everything else is for one thread at a
// time (kvd renders on its RPC thread).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/status.h"

namespace kv::rpc {

// Cumulative-bucket histogram with fixed upper bounds (at most kMaxBuckets, ascending).
class Histogram {
 public:
  static constexpr std::size_t kMaxBuckets = 24;
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound: observations <= it
    std::uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Take() const;

  // Seconds from 100 us to 10 s, for request latencies.
  static std::vector<double> LatencyBounds();

 private:
  std::vector<double> bounds_;
  std::array<std::atomic<std::uint64_t>, kMaxBuckets + 1> counts_{};  // the last: above all
  std::atomic<std::uint64_t> sum_micro_{0};                           // sum, in millionths
};

// The histograms kvd's request paths record into; one per node, outliving its services.
struct RequestMetrics {
  Histogram coordinator_get{Histogram::LatencyBounds()};
  Histogram coordinator_put{Histogram::LatencyBounds()};
  Histogram coordinator_delete{Histogram::LatencyBounds()};
  Histogram replica_read{Histogram::LatencyBounds()};
  Histogram replica_write{Histogram::LatencyBounds()};
  // Per coordinated read that found the key: its siblings and its record's encoded bytes.
  Histogram read_siblings{{1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128}};
  Histogram read_record_bytes{{64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20,
                               16 << 20, 64 << 20}};
  // Client requests by operation and outcome (ok, not_found, unavailable, timeout,
  // overloaded, invalid, error).
  std::atomic<std::uint64_t> outcomes[3][7] = {};
};

enum class ClientOp { kGet = 0, kPut = 1, kDelete = 2 };
inline constexpr const char* kClientOpNames[3] = {"get", "put", "delete"};
inline constexpr const char* kOutcomeNames[7] = {"ok",         "not_found", "unavailable", "timeout",
                                                 "overloaded", "invalid",   "error"};

// Records a coordinated client request: its latency since `start` in the operation's histogram,
// and its outcome. A null `m` records nothing.
void RecordClientRequest(RequestMetrics* m, ClientOp op,
                         std::chrono::steady_clock::time_point start, const Status& outcome);
double SecondsSince(std::chrono::steady_clock::time_point start);

// One metric family: its samples share the name, help and type.
class MetricFamily {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's ends in _total.
  MetricFamily(std::string name, std::string help, Type type);
  MetricFamily& Add(double value, Labels labels = {});  // counters and gauges
  MetricFamily& Add(const Histogram::Snapshot& h, Labels labels = {});
  // The family as exposition text: HELP, TYPE, then each sample.
  void Render(std::string* out) const;

 private:
  std::string name_, help_;
  Type type_;
  std::string samples_;
};

// A label value or help text escaped as the format asks (backslash, quote, newline).
std::string EscapeLabelValue(std::string_view v);

}  // namespace kv::rpc
