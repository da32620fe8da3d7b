// sim_bench: how the membership core scales, measured on the simulator with the default Config.
//
// For each cluster size N it builds a converged N-node cluster and measures, in simulated time:
//   - join: from a new node's Join (through one seed) until all N views hold it UP;
//   - crash: from killing one node until every live view holds it DOWN, split into detection
//     (until the first view says DOWN) and dissemination (from there until all do);
//   - steady-state traffic: datagrams + stream messages, and bytes, sent per node per second;
//   - false suspicions and deaths over a long run at 0%, 10% and 30% datagram loss, and with 1%
//     of the nodes slow (each inbound message handled `slow` late): (observer, live subject)
//     transitions into SUSPECT / DOWN, and how many distinct live nodes were affected.
// Dissemination is compared with log3(N) + 2 rounds. Rounds are probe intervals (1 s by
// default); gossip rounds are gossip intervals (200 ms).
//
//   sim_bench [--sizes 10,100,1000] [--seed S] [--long-seconds T] [--wave W] [--form]
//             [--phases 0,10,30,slow]
//
// Real time and memory are printed per size; bound runs with `timeout`.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "membership/lifeguard.h"
#include "tests/sim/simulator.h"

namespace {

using namespace std::chrono_literals;
using kv::sim::Duration;
using kv::sim::Liveness;
using kv::sim::NodeId;
using kv::sim::Simulator;
using kv::sim::Time;
using WallClock = std::chrono::steady_clock;

double Secs(Duration d) { return std::chrono::duration<double>(d).count(); }

// Resident memory now, from /proc/self/statm.
double RssMiB() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return got == 2 ? static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0) : 0;
}

double PeakRssMiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Polls a shrinking set of observers until each sees `subject` as `liveness`. An observer's
// view only changes when its core is called, so only observers called since their last check
// are looked at again: the cost stays near one view per observer.
class Spread {
 public:
  Spread(Simulator& sim, NodeId subject, Liveness liveness)
      : sim_(sim), subject_(subject), liveness_(liveness), start_(sim.now()) {
    for (NodeId id : sim.Live()) {
      if (id != subject) pending_.push_back({id, ~0ull});
    }
    total_ = pending_.size();
  }

  // Runs until every observer has seen it (true) or `limit` passes.
  bool Run(Duration limit, Duration poll) {
    return sim_.RunUntil([this] { return Check(); }, limit, poll);
  }

  // Until the first observer saw it (the whole run if nobody did).
  Duration first() const { return (any_ ? first_ : sim_.now()) - start_; }
  // Until every observer had (so far, if some never did).
  Duration last() const { return (pending_.empty() ? last_ : sim_.now()) - start_; }
  std::size_t remaining() const { return pending_.size(); }
  std::size_t total() const { return total_; }

 private:
  bool Check() {
    std::size_t kept = 0;
    for (auto& p : pending_) {
      const std::uint64_t calls = sim_.IsRunning(p.first) ? sim_.Calls(p.first) : 0;
      bool seen = !sim_.IsRunning(p.first);  // an observer that died no longer counts
      if (!seen && calls != p.second) {
        p.second = calls;
        seen = sim_.Sees(p.first, subject_, liveness_);
      }
      if (seen) {
        if (!any_) first_ = sim_.now();
        any_ = true;
      } else {
        pending_[kept++] = p;
      }
    }
    pending_.resize(kept);
    if (pending_.empty()) last_ = sim_.now();
    return pending_.empty();
  }

  Simulator& sim_;
  NodeId subject_;
  Liveness liveness_;
  kv::sim::Time start_, first_{0}, last_{0};
  bool any_ = false;
  std::vector<std::pair<NodeId, std::uint64_t>> pending_;  // (observer, calls when checked)
  std::size_t total_ = 0;
};

struct LongRun {
  std::string name;
  std::uint64_t suspicions = 0, deaths = 0;  // (observer, subject) transitions
  std::size_t suspected_nodes = 0, dead_nodes = 0;
  std::uint64_t slow_suspicions = 0, slow_deaths = 0;  // of which the subject was slow
  // Incarnation bumps of live nodes: each is a refuted accusation that reached its subject,
  // however many observers had heard of it.
  std::uint64_t refutations = 0;
  bool recovered = true;  // converged again after the run
  double sim_s = 0;       // simulated length of the run
};

struct Result {
  int n = 0;
  bool built = false;
  double build_sim_s = 0, build_real_s = 0;
  bool join_ok = false, crash_ok = false;
  double join_s = 0, crash_detect_s = 0, crash_all_s = 0;
  struct LossyCrash {
    double loss = 0;
    bool ok = false;
    double first_s = 0, all_s = 0;
  };
  std::vector<LossyCrash> lossy_crashes;
  double settle_s = 0;  // after convergence, until the join traffic died down
  bool settled = false;
  double msgs_per_node_s = 0, bytes_per_node_s = 0, stream_bytes_per_node_s = 0;
  double datagram_bytes_avg = 0;
  std::vector<LongRun> runs;
  std::string check_mode;
  double real_s = 0, rss_mib = 0;
  std::string note;
};

struct BenchOptions {
  std::uint64_t seed = 1;
  double long_seconds = 0;  // 0: by size
  int wave = 0;             // 0: by size
  double max_real_seconds = 900;
  // A size that grows past this while building is abandoned; a long run past it stops early.
  double max_rss_mib = 12 * 1024;
  bool long_runs = true;  // the false-suspicion runs (the costly part at large N)
  std::vector<std::string> phases = {"0", "10", "30", "slow"};  // which long runs
  double recover_seconds = 600;  // simulated limit to converge again after a long run
  // Start the N nodes as a formed cluster (Simulator::FormCluster) instead of joining them
  // through node 1: the join news of N nodes is N^2 * 4 log10(N) piggybacked updates.
  bool form = false;
  // Percent losses at which crash detection is measured again (a fresh victim each).
  std::vector<double> crash_loss;
};

// Cluster-wide sums of the cores' counters and queue gauges, for the diagnostic lines.
struct CoreTotals {
  kv::membership::Counters c;
  double depth_mean = 0, unsent_mean = 0, transmits_mean = 0;
  kv::sim::DetectorStats det;
  std::size_t depth_max = 0, unsent_max = 0;
};

CoreTotals SumCores(const Simulator& sim) {
  CoreTotals t;
  std::size_t n = 0;
  for (NodeId id : sim.Live()) {
    const kv::membership::Membership* core = sim.Core(id);
    const kv::membership::Counters& c = core->counters();
    t.c.datagrams_out += c.datagrams_out;
    t.c.bytes_out += c.bytes_out;
    t.c.news_queued += c.news_queued;
    t.c.news_superseded += c.news_superseded;
    t.c.news_retired += c.news_retired;
    t.c.piggybacked += c.piggybacked;
    t.c.suspicions_started += c.suspicions_started;
    t.c.suspicions_refuted += c.suspicions_refuted;
    t.c.suspicions_expired += c.suspicions_expired;
    t.c.refuted_after_us += c.refuted_after_us;
    t.c.refutations += c.refutations;
    t.c.suspicion_checks += c.suspicion_checks;
    const kv::membership::QueueStats q = core->queue_stats();
    t.depth_mean += static_cast<double>(q.depth);
    t.unsent_mean += static_cast<double>(q.unsent);
    t.transmits_mean += static_cast<double>(q.transmits);
    t.depth_max = std::max(t.depth_max, q.depth);
    t.unsent_max = std::max(t.unsent_max, q.unsent);
    ++n;
  }
  t.det = sim.detector_stats();
  if (t.depth_mean > 0) t.transmits_mean /= t.depth_mean;
  if (n > 0) {
    t.depth_mean /= static_cast<double>(n);
    t.unsent_mean /= static_cast<double>(n);
  }
  return t;
}

// One diagnostic line on stderr: what the cores did between `a` and `b` (`secs` apart).
void PrintStep(const char* name, double at_s, double secs, std::size_t n, const CoreTotals& a,
               const CoreTotals& b) {
  auto d = [](std::uint64_t x, std::uint64_t y) { return static_cast<double>(y - x); };
  const double per = static_cast<double>(n) * secs;
  const double refuted = d(a.c.suspicions_refuted, b.c.suspicions_refuted);
  std::fprintf(
      stderr,
      "    [%s t=%.0fs] per node/s: dgrams %.2f bytes %.0f piggybacked %.1f queued %.1f "
      "superseded %.1f retired %.1f | cluster/s: refutations %.1f, suspicions expired %.1f; per "
      "node/s: susp started %.2f refuted %.2f (mean %.2fs) | queue depth mean %.0f "
      "max %zu, unsent mean %.0f max %zu, sent so far mean %.1f | stale checks: suspect %llu (8s+ "
      "%llu) down %llu | suspicion checks %.2f per node/s\n",
      name, at_s, d(a.c.datagrams_out, b.c.datagrams_out) / per,
      d(a.c.bytes_out, b.c.bytes_out) / per, d(a.c.piggybacked, b.c.piggybacked) / per,
      d(a.c.news_queued, b.c.news_queued) / per, d(a.c.news_superseded, b.c.news_superseded) / per,
      d(a.c.news_retired, b.c.news_retired) / per, d(a.c.refutations, b.c.refutations) / secs,
      d(a.c.suspicions_expired, b.c.suspicions_expired) / secs,
      d(a.c.suspicions_started, b.c.suspicions_started) / per, refuted / per,
      refuted > 0 ? d(a.c.refuted_after_us, b.c.refuted_after_us) / refuted / 1e6 : 0.0,
      b.depth_mean, b.depth_max, b.unsent_mean, b.unsent_max, b.transmits_mean,
      static_cast<unsigned long long>(b.det.stale_suspect_checks - a.det.stale_suspect_checks),
      static_cast<unsigned long long>(b.det.stale_suspect_checks_over_8s -
                                      a.det.stale_suspect_checks_over_8s),
      static_cast<unsigned long long>(b.det.stale_down_checks - a.det.stale_down_checks),
      d(a.c.suspicion_checks, b.c.suspicion_checks) / per);
}

// The run with the counts of the detector before it: the long run reports the difference.
// Runs one long run of up to `length`, in 10 s steps, stopping early once `out_of_time()`.
LongRun Measure(Simulator& sim, const std::string& name, Duration length, double loss,
                const std::vector<NodeId>& slow, Duration slow_by,
                const std::function<bool()>& out_of_time) {
  const std::vector<std::uint64_t> s0 = sim.suspicions_of(), d0 = sim.deaths_of();
  auto incarnations = [&sim] {
    std::uint64_t sum = 0;
    for (NodeId id : sim.Live()) sum += sim.Lookup(id, id)->incarnation;
    return sum;
  };
  const std::uint64_t inc0 = incarnations();
  sim.SetLoss(loss);
  for (NodeId id : slow) sim.SetSlow(id, slow_by);
  const Time start = sim.now();
  CoreTotals before = SumCores(sim);
  while (sim.now() - start < length && sim.ok() && !out_of_time()) {
    const Duration step = std::min<Duration>(10s, length - (sim.now() - start));
    sim.RunFor(step);
    CoreTotals after = SumCores(sim);
    PrintStep(name.c_str(), Secs(sim.now() - start), Secs(step), sim.Live().size(), before, after);
    before = after;
  }
  LongRun r;
  r.name = name;
  r.sim_s = Secs(sim.now() - start);
  r.refutations = incarnations() - inc0;
  for (std::size_t i = 0; i < s0.size(); ++i) {
    const std::uint64_t ds = sim.suspicions_of()[i] - s0[i], dd = sim.deaths_of()[i] - d0[i];
    const bool is_slow =
        std::find(slow.begin(), slow.end(), static_cast<NodeId>(i + 1)) != slow.end();
    r.suspicions += ds;
    r.deaths += dd;
    r.suspected_nodes += ds > 0;
    r.dead_nodes += dd > 0;
    if (is_slow) {
      r.slow_suspicions += ds;
      r.slow_deaths += dd;
    }
  }
  sim.SetLoss(0);
  for (NodeId id : slow) sim.SetSlow(id, 0us);
  return r;
}

Result RunSize(int n, const BenchOptions& bo) {
  Result res;
  res.n = n;
  const auto wall0 = WallClock::now();
  auto real = [&] { return std::chrono::duration<double>(WallClock::now() - wall0).count(); };

  kv::sim::Options o;
  o.seed = bo.seed;
  o.replay_command =
      "sim_bench --sizes " + std::to_string(n) + " --seed " + std::to_string(bo.seed);
  o.tokens_per_node = 0;
  o.record_digest = false;
  o.check_history = n <= 1000;
  o.check_mode = kv::sim::CheckMode::kNone;  // while building
  Simulator sim(o);
  const auto& cfg = o.config;
  // The finest useful resolution: a tenth of a gossip round for small clusters; coarser when
  // one poll costs a pass over many views.
  const Duration poll = n <= 1000 ? cfg.gossip_interval / 10 : cfg.gossip_interval;

  // Build: every node joins through node 1, in waves so that the seed's answers to joiners
  // (its full state) do not all queue at once; then everyone converges by gossip and push-pull.
  const auto b0 = sim.now();
  const NodeId seed = sim.AddNode();
  const int wave = bo.wave > 0 ? bo.wave : std::max(1, std::min(n, 500));
  bool over_memory = false;
  auto memory_ok = [&] {
    if (RssMiB() > bo.max_rss_mib) over_memory = true;
    return !over_memory;
  };
  if (bo.form) {
    while (static_cast<int>(sim.size()) < n) sim.AddNode();
    sim.FormCluster();
  }
  while (static_cast<int>(sim.size()) < n && memory_ok()) {
    const int start = static_cast<int>(sim.size());
    const int end = std::min(n, start + wave);
    for (int i = start; i < end; ++i) sim.AddAndJoin(seed);
    sim.RunUntil(
        [&] {
          if (!memory_ok()) return true;
          const kv::sim::ClusterView v = sim.View(seed);
          std::size_t up = 0;
          for (const auto& m : v.members) up += m.liveness == Liveness::kUp;
          return up >= static_cast<std::size_t>(end);
        },
        120s, 500ms);
  }
  res.built =
      sim.RunUntil([&] { return !memory_ok() || sim.Converged(); }, 1800s, n <= 1000 ? 1s : 10s) &&
      !over_memory;
  if (over_memory) {
    res.note = "abandoned: resident memory passed " +
               std::to_string(static_cast<int>(bo.max_rss_mib)) + " MiB with " +
               std::to_string(sim.size()) + " nodes started; ";
  }
  res.build_sim_s = Secs(sim.now() - b0);
  res.build_real_s = real();
  std::fprintf(stderr, "  n=%d built (%s) at %.0fs real, %.0f MiB resident\n", n,
               res.built ? "converged" : "NOT converged", real(), RssMiB());
  if (!res.built || !sim.ok()) {
    res.note += over_memory ? "" : sim.ok() ? "did not converge" : sim.failure();
    res.real_s = real();
    res.rss_mib = PeakRssMiB();
    return res;
  }
  // Let the join traffic settle: every join was news to piggyback about 4 log10(N) times, and
  // the queues drain at a constant rate of full datagrams for a while after the views converged.
  // Settled when a 10 s window averages under 2.5 datagrams per node per second, i.e. little
  // beyond each node's ping and ack (gossip rounds send only when there is news).
  {
    const Time s0 = sim.now();
    std::uint64_t before = sim.network_stats().datagrams_sent;
    res.settled = false;
    while (!res.settled && sim.now() - s0 < 600s && sim.ok()) {
      sim.RunFor(10s);
      const std::uint64_t window = sim.network_stats().datagrams_sent - before;
      before += window;
      res.settled = static_cast<double>(window) / n / 10.0 < 2.5;
    }
    res.settle_s = Secs(sim.now() - s0);
  }

  // Steady state traffic at 0% loss, over at least one push-pull interval (which grows with N).
  {
    const kv::sim::NetworkStats a = sim.network_stats();
    const Duration len =
        std::max<Duration>(60s, kv::membership::lifeguard::PushPullInterval(
                                    cfg.push_pull_interval, static_cast<std::size_t>(n)));
    sim.RunFor(len);
    const kv::sim::NetworkStats& b = sim.network_stats();
    const double msgs =
        static_cast<double>(b.datagrams_sent - a.datagrams_sent + b.streams_sent - a.streams_sent);
    const double bytes = static_cast<double>(b.datagram_bytes_sent - a.datagram_bytes_sent +
                                             b.stream_bytes_sent - a.stream_bytes_sent);
    res.msgs_per_node_s = msgs / n / Secs(len);
    res.bytes_per_node_s = bytes / n / Secs(len);
    res.stream_bytes_per_node_s =
        static_cast<double>(b.stream_bytes_sent - a.stream_bytes_sent) / n / Secs(len);
    res.datagram_bytes_avg = static_cast<double>(b.datagram_bytes_sent - a.datagram_bytes_sent) /
                             static_cast<double>(b.datagrams_sent - a.datagrams_sent);
  }

  std::fprintf(stderr, "  n=%d steady state measured at %.0fs real, %.0f MiB resident\n", n, real(),
               RssMiB());

  // Join of one more node through the seed.
  {
    const NodeId joiner = sim.AddNode();
    Spread s(sim, joiner, Liveness::kUp);
    sim.Join(joiner, seed);
    res.join_ok = s.Run(600s, poll);
    res.join_s = Secs(res.join_ok ? s.last() : sim.now() - b0);
    if (!res.join_ok) res.note += "join: " + std::to_string(s.remaining()) + " never saw it; ";
  }

  // Crash of one node (neither the seed nor the joiner).
  {
    const NodeId victim = static_cast<NodeId>(2 + kv::sim::Mix(bo.seed) % (n - 1));
    sim.Crash(victim);
    Spread s(sim, victim, Liveness::kDown);
    res.crash_ok = s.Run(600s, poll);
    res.crash_detect_s = Secs(s.first());
    res.crash_all_s = Secs(s.last());
    if (!res.crash_ok) res.note += "crash: " + std::to_string(s.remaining()) + " never saw it; ";
    std::fprintf(
        stderr,
        "  n=%d steady state %.2f msgs/node/s, %.0f bytes/node/s; join %.2fs; crash: first "
        "DOWN %.2fs, all DOWN %.2fs\n",
        n, res.msgs_per_node_s, res.bytes_per_node_s, res.join_s, res.crash_detect_s,
        res.crash_all_s);
    sim.Restart(victim, seed);  // back to N + 1 live nodes for the long runs
    sim.RunUntil([&] { return sim.Converged(); }, 600s, n <= 1000 ? 1s : 10s);
  }

  // Crashes under loss: detection must not wait on suspicions that loss keeps refuting.
  for (std::size_t i = 0; i < bo.crash_loss.size(); ++i) {
    Result::LossyCrash c;
    c.loss = bo.crash_loss[i];
    const NodeId victim = static_cast<NodeId>(2 + kv::sim::Mix(bo.seed + 1 + i) % (n - 1));
    sim.SetLoss(c.loss / 100);
    sim.Crash(victim);
    Spread s(sim, victim, Liveness::kDown);
    c.ok = s.Run(600s, poll);
    c.first_s = Secs(s.first());
    c.all_s = Secs(s.last());
    std::fprintf(stderr, "  n=%d crash at %.0f%% loss: first DOWN %.2fs, all DOWN %s%.2fs\n", n,
                 c.loss, c.first_s, c.ok ? "" : ">", c.all_s);
    res.lossy_crashes.push_back(c);
    sim.SetLoss(0);
    sim.Restart(victim, seed);
    sim.RunUntil([&] { return sim.Converged(); }, 600s, n <= 1000 ? 1s : 10s);
  }

  // Long runs. Exact checks on every call for small clusters; sampled views for large ones
  // (a suspicion shorter than the sample interval can be missed there).
  const Duration length =
      bo.long_seconds > 0
          ? std::chrono::duration_cast<Duration>(std::chrono::duration<double>(bo.long_seconds))
          : (n <= 100    ? Duration(600s)
             : n <= 1000 ? Duration(180s)
                         : Duration(60s));
  if (n <= 100) {
    sim.SetCheckMode(kv::sim::CheckMode::kEveryCall, 0us);
    res.check_mode = "every call";
  } else {
    // Each sample copies every view (O(N^2)): the dominant cost of the run at N = 1000.
    const Duration every = n <= 300 ? Duration(200ms) : n <= 1000 ? Duration(500ms) : Duration(2s);
    sim.SetCheckMode(kv::sim::CheckMode::kSampled, every);
    res.check_mode = "sampled every " + std::to_string(Secs(every)).substr(0, 3) + "s";
  }
  std::vector<NodeId> slow;
  const int n_slow = std::max(1, n / 100);
  for (int i = 0; i < n_slow; ++i) slow.push_back(static_cast<NodeId>(2 + (i * 97) % (n - 1)));
  const Duration slow_by = 4 * cfg.probe_timeout;
  struct Phase {
    const char* name;
    double loss;
    bool slow;
  };
  const std::vector<Phase> phases = {Phase{"0% loss", 0.0, false}, Phase{"10% loss", 0.10, false},
                                     Phase{"30% loss", 0.30, false}, Phase{"1% slow", 0.0, true}};
  std::vector<Phase> chosen;
  for (const Phase& p : phases) {
    const std::string key = p.slow ? "slow" : std::to_string(static_cast<int>(p.loss * 100));
    if (std::find(bo.phases.begin(), bo.phases.end(), key) != bo.phases.end()) {
      chosen.push_back(p);
    }
  }
  for (std::size_t i = 0; i < (bo.long_runs ? chosen.size() : 0); ++i) {
    const Phase& p = chosen[i];
    // Each remaining phase gets an equal share of the real time left.
    const double phase_end =
        real() + (bo.max_real_seconds - real()) / static_cast<double>(chosen.size() - i);
    LongRun r = Measure(sim, p.name, length, p.loss, p.slow ? slow : std::vector<NodeId>{}, slow_by,
                        [&] { return real() > phase_end || RssMiB() > bo.max_rss_mib; });
    if (RssMiB() > bo.max_rss_mib) {
      res.note += std::string(p.name) + " stopped at the memory limit; ";
    }
    std::fprintf(stderr,
                 "  n=%d %s: %llu false suspicions of %zu nodes, %llu false deaths of %zu nodes, "
                 "%llu refutations\n",
                 n, p.name, static_cast<unsigned long long>(r.suspicions), r.suspected_nodes,
                 static_cast<unsigned long long>(r.deaths), r.dead_nodes,
                 static_cast<unsigned long long>(r.refutations));
    // Back to a converged cluster before the next phase.
    r.recovered = sim.RunUntil(
        [&] { return sim.Converged(); },
        std::chrono::duration_cast<Duration>(std::chrono::duration<double>(bo.recover_seconds)),
        n <= 1000 ? 1s : 10s);
    res.runs.push_back(r);
    std::fprintf(stderr, "  n=%d %s done at %.0fs real (%.0f s simulated), %.0f MiB resident\n", n,
                 p.name, real(), r.sim_s, RssMiB());
  }
  if (!sim.ok()) res.note += sim.failure();
  res.real_s = real();
  res.rss_mib = PeakRssMiB();
  if (bo.form) res.note += "formed, not joined; ";
  res.note += !bo.long_runs ? std::string("no long runs")
                            : "long runs up to " + std::to_string(static_cast<int>(Secs(length))) +
                                  "s simulated, " + res.check_mode + ", slow by " +
                                  std::to_string(static_cast<int>(Secs(slow_by) * 1000)) + "ms";
  return res;
}

void Print(const std::vector<Result>& results, const kv::membership::Config& cfg) {
  const double probe = Secs(cfg.probe_interval), gossip = Secs(cfg.gossip_interval);
  std::printf("\n## Dissemination (default Config: probe %.1fs, gossip %.1fs x%d)\n\n", probe,
              gossip, cfg.gossip_fanout);
  std::printf(
      "| N | build: sim s / real s | join: s | probe rounds | gossip rounds | log3(N)+2 | crash: "
      "first DOWN s | all DOWN s | spread after first: probe rounds |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  for (const Result& r : results) {
    const double target = std::log(r.n) / std::log(3.0) + 2;
    if (!r.built) {
      std::printf("| %d | did not build: %s ||||||||\n", r.n, r.note.c_str());
      continue;
    }
    std::printf("| %d | %.0f / %.0f | %s%.2f | %.2f | %.1f | %.1f | %.2f | %s%.2f | %.2f |\n", r.n,
                r.build_sim_s, r.build_real_s, r.join_ok ? "" : ">", r.join_s, r.join_s / probe,
                r.join_s / gossip, target, r.crash_detect_s, r.crash_ok ? "" : ">", r.crash_all_s,
                (r.crash_all_s - r.crash_detect_s) / probe);
  }
  bool lossy = false;
  for (const Result& r : results) lossy = lossy || !r.lossy_crashes.empty();
  if (lossy) {
    std::printf("\n## Crash detection under loss\n\n| N | loss %% | first DOWN s | all DOWN s |\n"
                "|---|---|---|---|\n");
    for (const Result& r : results) {
      for (const auto& c : r.lossy_crashes) {
        std::printf("| %d | %.0f | %.2f | %s%.2f |\n", r.n, c.loss, c.first_s, c.ok ? "" : ">",
                    c.all_s);
      }
    }
  }
  std::printf(
      "\n## Steady-state traffic at 0%% loss (after the join traffic settled)\n\n| N | settled "
      "after s | msgs/node/s | bytes/node/s | of which push-pull | avg datagram B |\n"
      "|---|---|---|---|---|---|\n");
  for (const Result& r : results) {
    if (!r.built) continue;
    std::printf("| %d | %s%.0f | %.2f | %.0f | %.0f | %.0f |\n", r.n, r.settled ? "" : ">",
                r.settle_s, r.msgs_per_node_s, r.bytes_per_node_s, r.stream_bytes_per_node_s,
                r.datagram_bytes_avg);
  }
  std::printf(
      "\n## False suspicions / deaths of live nodes ((observer, subject) transitions; distinct "
      "subjects; refutations = incarnation bumps)\n\n| N | run | sim s | suspicions | suspected "
      "nodes | refutations | deaths | dead nodes | of slow nodes: susp / deaths | re-converged "
      "|\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Result& r : results) {
    for (const LongRun& l : r.runs) {
      std::printf("| %d | %s | %.0f | %llu | %zu | %llu | %llu | %zu | %llu / %llu | %s |\n", r.n,
                  l.name.c_str(), l.sim_s, static_cast<unsigned long long>(l.suspicions),
                  l.suspected_nodes, static_cast<unsigned long long>(l.refutations),
                  static_cast<unsigned long long>(l.deaths), l.dead_nodes,
                  static_cast<unsigned long long>(l.slow_suspicions),
                  static_cast<unsigned long long>(l.slow_deaths), l.recovered ? "yes" : "NO");
    }
  }
  std::printf("\n## Cost\n\n| N | real s | peak RSS MiB | notes |\n|---|---|---|---|\n");
  for (const Result& r : results) {
    std::printf("| %d | %.0f | %.0f | %s |\n", r.n, r.real_s, r.rss_mib, r.note.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {10, 100, 1000};
  BenchOptions bo;
  CLI::App app{"sim_bench: membership dissemination and failure detection on the simulator"};
  app.add_option("--sizes", sizes, "Cluster sizes")->delimiter(',');
  app.add_option("--seed", bo.seed, "Run seed");
  app.add_option("--long-seconds", bo.long_seconds, "Simulated length of each long run");
  app.add_option("--wave", bo.wave, "Nodes joining per wave while building");
  bool no_long_runs = false;
  app.add_flag("--form", bo.form,
               "Start each cluster formed (every node knows every other) instead of by joins");
  app.add_flag("--no-long-runs", no_long_runs, "Only dissemination and steady-state traffic");
  app.add_option("--recover-seconds", bo.recover_seconds,
                 "Simulated time allowed to converge again after each long run");
  app.add_option("--phases", bo.phases,
                 "Long runs to do, of 0, 10, 30 (percent loss) and slow (1% of nodes slow)")
      ->delimiter(',');
  app.add_option("--crash-loss", bo.crash_loss,
                 "Percent losses at which to measure crash detection again")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 90.0));
  app.add_option("--max-rss-mib", bo.max_rss_mib,
                 "Abandon a size, or stop a long run, past this resident memory");
  app.add_option("--max-real-seconds", bo.max_real_seconds,
                 "Skip the remaining long runs of a size past this much real time");
  CLI11_PARSE(app, argc, argv);
  bo.long_runs = !no_long_runs;
  std::vector<Result> results;
  for (int n : sizes) {
    if (n < 3) continue;
    std::fprintf(stderr, "n=%d...\n", n);
    results.push_back(RunSize(n, bo));
    Print({results.back()}, kv::membership::Config{});
    std::fflush(stdout);
  }
  std::printf("\n# All sizes (seed %llu)\n", static_cast<unsigned long long>(bo.seed));
  Print(results, kv::membership::Config{});
  return 0;
}
