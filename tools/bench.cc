#include "tools/bench.h"

#include <kj/async-io.h>

#include <CLI/CLI.hpp>
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <chrono>
#include <cstdio>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>
#include <vector>

#include "rpc/client.capnp.h"
#include "rpc/bytes.h"
#include "tools/zipfian.h"
#include "rpc/replica_plan.h"
#include "rpc/session.h"
#include "rpc/tls.h"
#include "rpc/wire_status.h"

namespace kv::tools {
namespace {

using Clock = std::chrono::steady_clock;
using rpc::Bytes;

struct OpStats {
  std::vector<std::uint32_t> latency_us;
  std::uint64_t errors = 0;
  std::uint64_t not_found = 0;
  std::map<std::string, std::uint64_t> errors_by_kind;
};

// The largest key count zipfian accepts: its constant is a sum over every key, at start.
constexpr std::uint64_t kMaxZipfianKeys = 100'000'000;

nlohmann::json Summarize(const char* name, OpStats& s, double seconds) {
  auto& v = s.latency_us;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) -> std::uint32_t {
    if (v.empty()) return 0;
    std::size_t i = static_cast<std::size_t>(p / 100.0 * (v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  return {{"op", name},
          {"ops", v.size()},
          {"ops_per_s", seconds > 0 ? v.size() / seconds : 0.0},
          {"p50_us", pct(50)},
          {"p90_us", pct(90)},
          {"p99_us", pct(99)},
          {"p999_us", pct(99.9)},
          {"max_us", v.empty() ? 0 : v.back()},
          {"errors", s.errors},
          {"errors_by_kind", s.errors_by_kind},
          {"not_found", s.not_found}};
}

class Bench {
 public:
  Bench(const BenchOptions& o, kj::AsyncIoContext& io, rpc::wire::KvClient::Client client)
      : o_(o), io_(io), client_(kj::mv(client)), rng_(o.seed), value_(o.value_size, 'v') {
    if (o.distribution == "zipfian") zipf_.emplace(o.keys, 0.99);
    (void)rpc::ParseConsistency(o.consistency, &consistency_);
  }

  kj::Promise<void> Preload(std::uint64_t next) {
    // Writes every key once, `concurrency` at a time, so reads find data.
    if (next >= o_.keys) return kj::READY_NOW;
    kj::Vector<kj::Promise<void>> batch;
    const std::uint64_t end = std::min<std::uint64_t>(o_.keys, next + 64);
    for (std::uint64_t k = next; k < end; ++k) {
      batch.add(Put(k, nullptr));
    }
    return kj::joinPromises(batch.releaseAsArray()).then([this, end]() { return Preload(end); });
  }

  kj::Promise<void> Worker() {
    if (issued_ >= o_.ops || Clock::now() >= deadline_) return kj::READY_NOW;
    if (o_.rate > 0) {
      // Throttled: operation i may start at begin + i / rate; a worker early for its turn waits.
      const auto due = begin_ + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(issued_ / o_.rate));
      const auto now = Clock::now();
      if (due > now) {
        const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(due - now);
        ++issued_;
        return io_.provider->getTimer()
            .afterDelay(wait.count() * kj::NANOSECONDS)
            .then([this]() { return Issue(); });
      }
    }
    ++issued_;
    return Issue();
  }

  kj::Promise<void> Issue() {
    std::uint64_t k = 0;
    if (zipf_) {
      k = zipf_->Scatter(zipf_->Next(rng_));
    } else if (o_.distribution == "sequential") {
      k = next_key_++ % o_.keys;  // a load phase: every key once, in order
    } else {
      k = std::uniform_int_distribution<std::uint64_t>(0, o_.keys - 1)(rng_);
    }
    const bool write = IsWrite();
    kj::Promise<void> op = write ? Put(k, &puts_) : Get(k);
    return op.then([this]() { return Worker(); });
  }

  void Run() {
    if (o_.preload && o_.workload != "write-only") Preload(0).wait(io_.waitScope);
    puts_ = OpStats();
    begin_ = Clock::now();
    deadline_ = begin_ + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(o_.duration_s));
    kj::Vector<kj::Promise<void>> workers;
    for (int i = 0; i < o_.concurrency; ++i) workers.add(Worker());
    auto all = kj::joinPromises(workers.releaseAsArray());
    auto progress = Progress();
    all.exclusiveJoin(kj::mv(progress)).wait(io_.waitScope);
    end_ = Clock::now();
    PrintProgress(" done");
  }

  nlohmann::json Results() {
    const double secs = std::chrono::duration<double>(end_ - begin_).count();
    nlohmann::json ops = nlohmann::json::array();
    if (!puts_.latency_us.empty() || puts_.errors) ops.push_back(Summarize("put", puts_, secs));
    if (!gets_.latency_us.empty() || gets_.errors) ops.push_back(Summarize("get", gets_, secs));
    const double total = puts_.latency_us.size() + gets_.latency_us.size();
    return {{"workload", o_.workload},
            {"rate_limit", o_.rate},
            {"distribution", o_.distribution},
            {"consistency", o_.consistency.empty() ? "default" : o_.consistency},
            {"concurrency", o_.concurrency},
            {"seconds", secs},
            {"ops_per_s", secs > 0 ? total / secs : 0.0},
            {"value_size", o_.value_size},
            {"keys", o_.keys},
            {"operations", ops}};
  }

  std::uint64_t errors() const { return puts_.errors + gets_.errors; }
  const std::string& first_error() const { return first_error_; }

 private:
  bool IsWrite() {
    if (o_.workload == "write-only") return true;
    if (o_.workload == "read-only") return false;
    const int pct = o_.workload == "50/50" ? 50 : 5;
    return std::uniform_int_distribution<int>(0, 99)(rng_) < pct;
  }

  static std::string Key(std::uint64_t k) { return "bench:" + std::to_string(k); }

  // `kind`: a status code's name, or "transport" when the call failed.
  void Fail(OpStats* s, const std::string& kind, const std::string& what) {
    if (s) {
      ++s->errors;
      ++s->errors_by_kind[kind];
    }
    if (first_error_.empty()) first_error_ = what;
  }

  void Fail(OpStats* s, rpc::wire::Status::Reader status) {
    const Status st = rpc::FromWire(status);
    Fail(s, Status::CodeName(st.code()), st.ToString());
  }

  kj::Promise<void> Put(std::uint64_t k, OpStats* stats) {
    auto req = client_.putRequest();
    const std::string key = Key(k);
    req.setKey(Bytes(key));
    req.setValue(Bytes(value_));
    req.setConsistency(static_cast<rpc::wire::Consistency>(consistency_));
    auto it = contexts_.find(k);
    if (it != contexts_.end()) req.setContext(Bytes(it->second));
    const auto start = Clock::now();
    return req.send().then(
        [this, k, stats, start](capnp::Response<rpc::wire::KvClient::PutResults>&& r) {
          if (r.getStatus().getCode() != rpc::wire::Status::Code::OK) {
            Fail(stats, r.getStatus());
            return;
          }
          auto c = r.getContext();
          contexts_[k].assign(reinterpret_cast<const char*>(c.begin()), c.size());
          if (stats) {
            stats->latency_us.push_back(Micros(start));
            Trace('p', start);
          }
        },
        [this, stats](kj::Exception&& e) {
          Fail(stats, "transport", e.getDescription().cStr());
        });
  }

  kj::Promise<void> Get(std::uint64_t k) {
    auto req = client_.getRequest();
    const std::string key = Key(k);
    req.setKey(Bytes(key));
    req.setConsistency(static_cast<rpc::wire::Consistency>(consistency_));
    const auto start = Clock::now();
    return req.send().then(
        [this, start](capnp::Response<rpc::wire::KvClient::GetResults>&& r) {
          const auto code = r.getStatus().getCode();
          if (code == rpc::wire::Status::Code::NOT_FOUND) {
            ++gets_.not_found;
          } else if (code != rpc::wire::Status::Code::OK) {
            Fail(&gets_, r.getStatus());
            return;
          }
          gets_.latency_us.push_back(Micros(start));
          Trace('g', start);
        },
        [this](kj::Exception&& e) { Fail(&gets_, "transport", e.getDescription().cStr()); });
  }

  // With --trace-file: each measured operation, when it started and how long it took.
  void Trace(char op, Clock::time_point start) {
    if (o_.trace_file.empty()) return;
    trace_.push_back({static_cast<std::uint64_t>(
                          std::chrono::duration_cast<std::chrono::microseconds>(start - begin_)
                              .count()),
                      Micros(start), op});
  }

 public:
  // Writes the trace (with --trace-file): one line per operation, "START_US LATENCY_US OP" with
  // OP g or p, in completion order.
  Status WriteTrace() const {
    if (o_.trace_file.empty()) return Status::Ok();
    std::FILE* f = std::fopen(o_.trace_file.c_str(), "w");
    if (f == nullptr) return Status::IoError("cannot write " + o_.trace_file);
    for (const auto& t : trace_) {
      std::fprintf(f, "%llu %u %c\n", static_cast<unsigned long long>(t.start_us), t.latency_us,
                   t.op);
    }
    if (std::fclose(f) != 0) return Status::IoError("cannot write " + o_.trace_file);
    return Status::Ok();
  }

 private:
  static std::uint32_t Micros(Clock::time_point start) {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  }

  // One progress line on stderr.
  void PrintProgress(const char* suffix = "") {
    const double secs = std::chrono::duration<double>(Clock::now() - begin_).count();
    const auto done = puts_.latency_us.size() + gets_.latency_us.size();
    std::fprintf(stderr, "bench: %.1fs %zu ops %.0f ops/s %llu errors%s\n", secs, done,
                 secs > 0 ? done / secs : 0.0, static_cast<unsigned long long>(errors()), suffix);
  }

  // A progress line each second; with --until-file, the run ends (no new operations; those in
  // flight finish) within 100 ms of the file appearing.
  kj::Promise<void> Progress(int tick = 0) {
    return io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).then([this, tick]() {
      if (tick % 10 == 9) PrintProgress();
      if (!o_.until_file.empty() && access(o_.until_file.c_str(), F_OK) == 0) {
        deadline_ = Clock::now();
      }
      return Progress(tick + 1);
    });
  }

  const BenchOptions& o_;
  kj::AsyncIoContext& io_;
  rpc::wire::KvClient::Client client_;
  std::mt19937_64 rng_;
  std::string value_;
  std::optional<Zipfian> zipf_;
  rpc::Consistency consistency_ = rpc::Consistency::kDefault;
  std::unordered_map<std::uint64_t, std::string> contexts_;
  OpStats puts_, gets_;
  struct TraceEntry {
    std::uint64_t start_us;
    std::uint32_t latency_us;
    char op;
  };
  std::vector<TraceEntry> trace_;
  std::uint64_t issued_ = 0;
  std::uint64_t next_key_ = 0;
  std::string first_error_;
  Clock::time_point begin_, end_, deadline_;
};

}  // namespace

void AddBenchFlags(CLI::App* app, BenchOptions* o) {
  app->add_option("--ops", o->ops, "Stop after this many operations")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  app->add_option("--duration", o->duration_s, "Stop after this many seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app->add_option("--until-file", o->until_file,
                  "Also stop once this file exists (a script ends the load when an event it "
                  "waits for has happened)");
  app->add_option("--trace-file", o->trace_file,
                  "Write each operation's start and latency (microseconds) to this file, one "
                  "line each, to see when a run's slow operations happened");
  app->add_option("--concurrency", o->concurrency, "Requests in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->add_option("--workload", o->workload,
                  "write-only | read-only | 50/50 (reads/writes) | 95/5 (95% reads)")
      ->capture_default_str()
      ->check(CLI::IsMember({"write-only", "read-only", "50/50", "95/5"}));
  app->add_option("--distribution", o->distribution,
                  "Key choice: uniform, zipfian (skew 0.99, hot keys scattered), or sequential "
                  "(bench:0, bench:1, ... in order: a load)")
      ->capture_default_str()
      ->check(CLI::IsMember({"uniform", "zipfian", "sequential"}));
  app->add_option("--consistency", o->consistency, "one | quorum | all (default: the node's)")
      ->check(CLI::IsMember({"one", "quorum", "all"}));
  app->add_option("--keys", o->keys, "Number of distinct keys")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  app->add_option("--value-size", o->value_size, "Bytes per value")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{16} << 20));
  app->add_option("--rate", o->rate,
                  "Start at most this many operations per second (0: as fast as replies come)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  app->add_option("--seed", o->seed, "Random seed for key choice")->capture_default_str();
  app->add_flag("!--no-preload", o->preload, "Do not write every key before a read workload");
}

Status RunBench(const std::string& host, const BenchOptions& options, bool json,
                rpc::Tls* tls) {
  if (options.distribution == "zipfian" && options.keys > kMaxZipfianKeys) {
    return Status::InvalidArgument("--distribution zipfian takes at most " +
                                   std::to_string(kMaxZipfianKeys) + " keys");
  }
  auto io = kj::setupAsyncIo();
  kj::Own<rpc::RpcSession> session;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto stream = io.provider->getTimer()
                      .timeoutAfter(10 * kj::SECONDS,
                                    io.provider->getNetwork()
                                        .parseAddress(host)
                                        .then([](kj::Own<kj::NetworkAddress> a) {
                                          return a->connect();
                                        })
                                        .then([tls](kj::Own<kj::AsyncIoStream> s) {
                                          if (tls == nullptr) {
                                            return kj::Promise<kj::Own<kj::AsyncIoStream>>(
                                                kj::mv(s));
                                          }
                                          return tls->Secure(kj::mv(s));
                                        }))
                      .wait(io.waitScope);
    session = kj::heap<rpc::RpcSession>(kj::mv(stream), capnp::ReaderOptions());
  });
  KJ_IF_MAYBE (e, failure) {
    return Status::Unavailable("node unreachable: cannot connect to " + host + ": " +
                               e->getDescription().cStr());
  }
  Bench bench(options, io, session->Bootstrap().castAs<rpc::wire::KvClient>());
  failure = kj::runCatchingExceptions([&]() { bench.Run(); });
  KJ_IF_MAYBE (e, failure) {
    return Status::IoError(std::string("bench failed: ") + e->getDescription().cStr());
  }
  nlohmann::json out = bench.Results();
  if (Status st = bench.WriteTrace(); !st.ok()) return st;
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("workload %s, %s keys, consistency %s, concurrency %d, %.1f s, %.0f ops/s\n",
                options.workload.c_str(), options.distribution.c_str(),
                out["consistency"].get<std::string>().c_str(), options.concurrency,
                out["seconds"].get<double>(), out["ops_per_s"].get<double>());
    for (const auto& op : out["operations"]) {
      std::printf(
          "  %-4s %9llu ops %9.0f ops/s  p50 %6u us  p90 %6u us  p99 %6u us  p99.9 %6u us  "
          "max %6u us  errors %llu\n",
          op["op"].get<std::string>().c_str(), op["ops"].get<unsigned long long>(),
          op["ops_per_s"].get<double>(), op["p50_us"].get<unsigned>(), op["p90_us"].get<unsigned>(),
          op["p99_us"].get<unsigned>(), op["p999_us"].get<unsigned>(), op["max_us"].get<unsigned>(),
          op["errors"].get<unsigned long long>());
      for (const auto& [kind, n] : op["errors_by_kind"].items()) {
        std::printf("       errors: %s %llu\n", kind.c_str(), n.get<unsigned long long>());
      }
    }
  }
  if (bench.errors() > 0) {
    return Status::IoError(std::to_string(bench.errors()) +
                           " operations failed, first: " + bench.first_error());
  }
  return Status::Ok();
}

}  // namespace kv::tools
