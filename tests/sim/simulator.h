// Simulator: a deterministic discrete-event simulation of N nodes, each running the real
// kv::membership::Membership core, over a seeded network that loses, delays, reorders and
// partitions messages.
//
// Determinism: the run is a function of Options (above all `seed`) and of the calls made on the
// Simulator, nothing else. There is no wall clock: time is the simulated clock now(), advanced
// by a discrete-event queue ordered by (time, sequence number). There is one PRNG, seeded from
// the run seed, for every network decision; each core gets its own seed derived from the run
// seed, its id and its generation. Nodes live in a vector indexed by id and no unordered
// container is iterated. The same seed therefore replays bit-for-bit; digest() hashes every
// delivered message so a test can prove it.
//
// Driving: each node is driven as kvd's adapter (membership/asio_transport.cc) drives it: Tick
// when NextDeadline() comes, Receive for every message that arrives, and TakeOutgoing drained
// after every call, with the timer re-armed to the new NextDeadline(). A push-pull (stream)
// message arrives "from" the sender's IP and an ephemeral port, as an accepted TCP connection
// reports it; datagrams arrive from the sender's gossip endpoint.
//
// Network model:
//   - datagrams are dropped with probability `loss`, and otherwise arrive after a delay drawn
//     uniformly from [min_delay, max_delay], so datagrams sent close together can be reordered;
//   - stream messages are never lost (TCP), only delayed (and blocked by partitions);
//   - a cut (Block, Partition) drops every message from one set of nodes to another, checked
//     when the message would be delivered, like an iptables DROP rule on the receiver;
//   - a slow node handles each inbound message `slow` later than it arrived (an overloaded
//     process); its timers still fire on time;
//   - nothing is delivered to a crashed or stopped node; what it had in flight still arrives.
//
// Invariants are checked as the run goes (see Observe in simulator.cc); the first violation
// stops the run, is printed to stderr with the seed and the replay command, and is kept in
// failure(). Thread-compatible: one thread drives a Simulator.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "membership/membership.h"

namespace kv::sim {

using membership::ClusterView;
using membership::Duration;
using membership::Endpoint;
using membership::Liveness;
using membership::NodeId;
using membership::Time;

struct NetworkOptions {
  double loss = 0.0;  // probability that a datagram is dropped; streams are never lost
  Duration min_delay = std::chrono::microseconds(100);
  Duration max_delay = std::chrono::microseconds(1000);
  Duration stream_min_delay = std::chrono::microseconds(500);
  Duration stream_max_delay = std::chrono::milliseconds(5);
};

enum class CheckMode {
  // After every call into a core, that node's view is checked and compared with the previous
  // one: exact (every transition is seen), O(N) per call.
  kEveryCall,
  // Every `sample_interval`, every running node's view is checked: for large clusters.
  kSampled,
  // No view checks at all (network-level invariants still hold).
  kNone,
};

struct Options {
  std::uint64_t seed = 1;
  // How to replay this run, printed with a failure (e.g. "KV_SIM_SEED=7 sim_tests
  // --gtest_filter=Sim.Partition").
  std::string replay_command;
  membership::Config config;
  NetworkOptions network;
  std::size_t tokens_per_node = 8;  // random tokens each node announces; 0 for large benches
  Time start_time = std::chrono::seconds(1000);
  CheckMode check_mode = CheckMode::kEveryCall;
  Duration sample_interval = std::chrono::milliseconds(100);
  // Keeps (generation, incarnation, liveness) per (observer, subject) pair to check that they
  // only move forward: 16 bytes per pair, so off for very large clusters.
  bool check_history = true;
  // Fails the run as soon as a running node (at its current generation, not leaving) is seen
  // DOWN by anyone: for scenarios whose only faults are loss, delay and slowness.
  bool fail_on_false_death = false;
  bool record_digest = true;
};

// Network totals since the start. Monotonic.
struct NetworkStats {
  std::uint64_t datagrams_sent = 0, streams_sent = 0;
  std::uint64_t datagram_bytes_sent = 0, stream_bytes_sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t lost = 0;               // datagrams dropped by the loss rate
  std::uint64_t dropped_partition = 0;  // blocked by a cut
  std::uint64_t dropped_dead = 0;       // addressed to a crashed or stopped node
};

// What the views said about running nodes (at their current generation, not leaving), as seen
// by the checks of CheckMode: exact with kEveryCall, sampled otherwise.
struct DetectorStats {
  std::uint64_t false_suspicions = 0;  // (observer, subject) transitions into SUSPECT
  std::uint64_t false_deaths = 0;      // (observer, subject) transitions into DOWN
  Duration longest_suspicion{0};       // longest closed SUSPECT episode of a running node
  // Checks that found an observer holding a running node SUSPECT or DOWN at an incarnation the
  // node has already refuted (it is further on): the refutation exists but has not arrived.
  std::uint64_t stale_suspect_checks = 0;
  std::uint64_t stale_suspect_checks_over_8s = 0;  // ... SUSPECT here for 8 s or more already
  std::uint64_t stale_down_checks = 0;
};

class Simulator {
 public:
  explicit Simulator(Options options);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // ---- Nodes. Ids are 1, 2, 3, ... in order of creation; node i listens on 10.x.y.z:7946
  // where x.y.z encodes i.

  // Starts a node at generation 1 that knows nobody (a seed, or one to Join later).
  NodeId AddNode();
  // AddNode for a would-be joiner waiting for its turn: state joining and no tokens, so it is
  // in no ring (topology.h).
  NodeId AddJoiner();
  // Gives every running node every other running node as it is now (id, endpoint, generation,
  // incarnation, application state), as Membership::RestoreMembers: a formed cluster without the
  // N^2 join news of forming it by joins (which costs about 2 * 10^9 piggybacked updates at
  // N = 10,000).
  void FormCluster();
  // node joins through one seed.
  void Join(NodeId node, NodeId seed);
  // AddNode + Join.
  NodeId AddAndJoin(NodeId seed);
  // Stops the node at once: no more ticks, nothing delivered to it. Its persisted tombstones
  // (Removed()) survive for a restart.
  void Crash(NodeId node);
  // Starts a new life of the node (crashing it first if it runs) with a higher generation and
  // joins it through `seed`.
  void Restart(NodeId node, NodeId seed);
  // Graceful leave: Leave() now, keep driving the node for `linger`, then stop it.
  void Leave(NodeId node, Duration linger);
  // Calls Remove(subject) on `at`'s core and returns its answer.
  bool Remove(NodeId at, NodeId subject);

  // ---- Network faults.
  void SetLoss(double loss);
  void SetDelay(Duration min_delay, Duration max_delay);
  // Drops every message from a node in `from` to a node in `to` (one direction).
  void Block(const std::vector<NodeId>& from, const std::vector<NodeId>& to);
  // Block in both directions.
  void Partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b);
  // Removes every cut.
  void Heal();
  // Delays the handling of every message `node` receives from now on by `extra` (0: normal).
  void SetSlow(NodeId node, Duration extra);

  // ---- Checks.
  void SetCheckMode(CheckMode mode, Duration sample_interval);
  void SetFailOnFalseDeath(bool on) { options_.fail_on_false_death = on; }

  // ---- Time.
  Time now() const { return now_; }
  // Runs every event up to now() + d.
  void RunFor(Duration d);
  // Runs until `done()` holds (checked now and then every `poll` of simulated time) or `limit`
  // has passed. Returns whether `done()` held. Stops early, returning false, on a failure.
  bool RunUntil(const std::function<bool()>& done, Duration limit,
                Duration poll = std::chrono::milliseconds(100));

  // ---- Observation.
  std::size_t size() const { return nodes_.size(); }  // nodes ever created
  bool IsRunning(NodeId node) const;
  bool IsLeaving(NodeId node) const;
  bool WasRefused(NodeId node) const;  // stopped because the cluster refused its id
  std::uint64_t Generation(NodeId node) const;
  // Running nodes that are not leaving, in id order.
  std::vector<NodeId> Live() const;
  // The core of a running node, else nullptr.
  const membership::Membership* Core(NodeId node) const;
  ClusterView View(NodeId observer) const;  // REQUIRES: IsRunning(observer)
  // What `observer` holds of `subject` (nullopt if it is not running or does not know it),
  // without copying its whole view.
  std::optional<membership::MemberView> Lookup(NodeId observer, NodeId subject) const;
  // Calls into `node`'s core so far (Tick, Receive, ...): its view can only change with one.
  std::uint64_t Calls(NodeId node) const;
  // Whether `observer` sees `subject` as `liveness`; for kUp, also at its current generation.
  bool Sees(NodeId observer, NodeId subject, Liveness liveness) const;
  // Whether every live node other than `subject` Sees(subject, liveness).
  bool AllSee(NodeId subject, Liveness liveness) const;
  // Whether every live node sees every live node UP at its current generation.
  bool Converged() const;
  // Live nodes, and what a live node sees of another live node, as "id:LIVENESS@gen" lists:
  // for failure messages.
  std::string Describe(NodeId observer) const;

  const NetworkStats& network_stats() const { return net_stats_; }
  const DetectorStats& detector_stats() const { return detector_; }
  // False suspicions and deaths per subject id (index id-1).
  const std::vector<std::uint64_t>& suspicions_of() const { return suspicions_of_; }
  const std::vector<std::uint64_t>& deaths_of() const { return deaths_of_; }

  // Hash of every delivered message (time, sender, receiver, kind, bytes), in order.
  std::uint64_t digest() const { return digest_; }
  // Hash of every running node's view.
  std::uint64_t ViewsDigest() const;

  bool ok() const { return failure_.empty(); }
  const std::string& failure() const { return failure_; }
  std::uint64_t seed() const { return options_.seed; }
  const Options& options() const { return options_; }

 private:
  enum class EventKind : std::uint8_t { kTick, kDeliver, kStop, kSample };
  struct Event {
    Time at;
    std::uint64_t seq;  // ties at equal times break in scheduling order
    EventKind kind;
    bool stream;
    std::uint32_t node;     // index of the node concerned (receiver for kDeliver)
    std::uint32_t from;     // kDeliver: index of the sender
    std::uint32_t life;     // kTick, kStop: the node's life the event belongs to
    std::uint32_t payload;  // kDeliver: index into payloads_
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  // What an observer last saw of a subject (check_history).
  struct PairHistory {
    std::uint64_t generation = 0;
    std::uint64_t incarnation = 0;
  };
  struct Node;
  struct Cut {
    std::vector<bool> from, to;  // by node index
  };

  NodeId AddNodeWith(bool joiner);
  void Push(Event e);
  void Dispatch(const Event& e);
  void RunTo(Time t);
  void AfterCall(std::size_t i);
  void Send(std::size_t from, membership::Outgoing&& out);
  void Deliver(const Event& e);
  void Observe(std::size_t observer);
  void StopNode(std::size_t i);
  void StartLife(std::size_t i);
  bool Blocked(std::size_t from, std::size_t to) const;
  bool IndexOf(const Endpoint& e, std::size_t* index) const;
  std::size_t Index(NodeId node) const;  // checked
  std::uint64_t NextRandom() { return rng_(); }
  double NextUnit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  Duration Uniform(Duration lo, Duration hi);
  void Fail(const std::string& what);

  Options options_;
  std::mt19937_64 rng_;  // every network decision, in event order
  Time now_;
  std::uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  std::vector<std::string> payloads_;
  std::vector<std::uint32_t> free_payloads_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Cut> cuts_;
  bool sampling_ = false;  // a kSample event is queued
  NetworkStats net_stats_;
  DetectorStats detector_;
  std::vector<std::uint64_t> suspicions_of_, deaths_of_;
  std::uint64_t digest_ = 0;
  std::string last_delivery_;  // for failure messages
  std::string failure_;
};

// SplitMix64: derives independent seeds from one.
std::uint64_t Mix(std::uint64_t x);

}  // namespace kv::sim
