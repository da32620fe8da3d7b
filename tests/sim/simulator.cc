#include "tests/sim/simulator.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

namespace kv::sim {
namespace {

constexpr Time kNever = Time::max();
constexpr std::uint8_t kUnseen = 0xff;
constexpr std::uint16_t kGossipPort = 7946;
// Node i (index i-1) listens on 10.0.0.0 + i: ids up to 16M fit.
constexpr std::uint32_t kBaseIp = 0x0a000000;
// A core whose NextDeadline() stays at now() this many Ticks in a row is spinning.
constexpr int kMaxTicksAtOneInstant = 10000;

std::string Seconds(Time t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6fs", std::chrono::duration<double>(t).count());
  return buf;
}

}  // namespace

std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Simulator::Node {
  NodeId id = 0;
  Endpoint gossip;
  std::uint64_t generation = 0;
  // Bumped whenever the node stops, so that timer and stop events of an old life are ignored.
  std::uint32_t life = 0;
  bool running = false;
  bool leaving = false;
  bool refused = false;
  std::unique_ptr<membership::Membership> core;
  membership::AppState app;
  std::vector<NodeId> removed;  // tombstones persisted across lives, as kvd does
  std::vector<Time> removed_at;  // when each was removed (kvd keeps wall-clock seconds)
  Time tick_at = kNever;        // when the armed timer fires; kNever: no timer armed
  Time last_tick_at = kNever;
  int ticks_at_last = 0;
  Duration slow{0};
  std::uint64_t calls = 0;
  std::uint64_t self_incarnation = 0;  // as the node's own view last said
  membership::Counters drops;          // the core's counters at the last check
  std::vector<std::uint8_t> seen;      // by subject index: last liveness seen, or kUnseen
  std::vector<PairHistory> history;    // by subject index, with check_history
  // Subjects (by index) this node has been seen to suspect falsely, and since when, sorted:
  // open episodes for longest_suspicion.
  std::vector<std::pair<std::uint32_t, Time>> open_suspicions;
};

Simulator::Simulator(Options options)
    : options_(std::move(options)), rng_(Mix(options_.seed)), now_(options_.start_time) {
  SetCheckMode(options_.check_mode, options_.sample_interval);
}

Simulator::~Simulator() = default;

// ---- Nodes.

NodeId Simulator::AddNode() { return AddNodeWith(/*joiner=*/false); }

NodeId Simulator::AddJoiner() { return AddNodeWith(/*joiner=*/true); }

NodeId Simulator::AddNodeWith(bool joiner) {
  const std::size_t i = nodes_.size();
  auto n = std::make_unique<Node>();
  n->id = static_cast<NodeId>(i + 1);
  n->gossip = Endpoint{kBaseIp + static_cast<std::uint32_t>(i + 1), kGossipPort};
  std::uint64_t x = Mix(options_.seed ^ Mix(n->id));
  for (std::size_t t = 0; t < options_.tokens_per_node; ++t) {
    x = Mix(x);
    n->app.tokens.push_back(x);
  }
  std::sort(n->app.tokens.begin(), n->app.tokens.end());
  n->app.state = membership::NodeState::kNormal;
  if (joiner) {
    n->app.tokens.clear();
    n->app.state = membership::NodeState::kJoining;
  }
  n->app.rack = "r" + std::to_string(i % 3);
  n->app.rpc_address = membership::ToString(Endpoint{n->gossip.ip, 7701});
  nodes_.push_back(std::move(n));
  suspicions_of_.push_back(0);
  deaths_of_.push_back(0);
  StartLife(i);
  return static_cast<NodeId>(i + 1);
}

void Simulator::StartLife(std::size_t i) {
  Node& n = *nodes_[i];
  ++n.generation;
  n.running = true;
  n.leaving = false;
  n.refused = false;
  n.tick_at = kNever;
  n.last_tick_at = kNever;
  n.self_incarnation = 0;
  // A new life learns the cluster afresh: what its old life saw constrains nothing.
  n.seen.clear();
  n.history.clear();
  const std::uint64_t core_seed = Mix(options_.seed ^ Mix(n.id * 0x100000001b3ull + n.generation));
  n.core = std::make_unique<membership::Membership>(options_.config, n.id, n.gossip, n.generation,
                                                    n.app, core_seed, now_);
  std::vector<std::uint32_t> ages;
  for (Time at : n.removed_at) {
    ages.push_back(static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(now_ - at).count()));
  }
  n.core->RestoreRemoved(n.removed, ages);
  n.drops = n.core->counters();
  AfterCall(i);
}

void Simulator::Join(NodeId node, NodeId seed) {
  const std::size_t i = Index(node);
  if (!nodes_[i]->running) return Fail("Join of a node that is not running");
  nodes_[i]->core->Join({nodes_[Index(seed)]->gossip}, now_);
  AfterCall(i);
}

void Simulator::FormCluster() {
  std::vector<membership::MemberView> all;
  for (const auto& n : nodes_) {
    if (!n->running) continue;
    std::optional<membership::MemberView> self = n->core->Lookup(n->id, now_);
    if (self) all.push_back(std::move(*self));
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i]->running) continue;
    nodes_[i]->core->RestoreMembers(all, now_);
    AfterCall(i);
  }
}

NodeId Simulator::AddAndJoin(NodeId seed) {
  const NodeId id = AddNode();
  Join(id, seed);
  return id;
}

void Simulator::StopNode(std::size_t i) {
  Node& n = *nodes_[i];
  if (!n.running) return;
  n.removed = n.core->Removed();
  n.removed_at.clear();
  for (std::uint32_t age : n.core->RemovedAges()) {
    n.removed_at.push_back(now_ - std::chrono::seconds(age));
  }
  n.running = false;
  n.leaving = false;
  ++n.life;
  n.tick_at = kNever;
  n.core.reset();
  // Open suspicions of this life end here (no longer false), and so do its own.
  n.open_suspicions.clear();
  for (const auto& other : nodes_) {
    auto& open = other->open_suspicions;
    auto it = std::lower_bound(open.begin(), open.end(), static_cast<std::uint32_t>(i),
                               [](const auto& e, std::uint32_t x) { return e.first < x; });
    if (it != open.end() && it->first == i) open.erase(it);
  }
}

void Simulator::Crash(NodeId node) { StopNode(Index(node)); }

void Simulator::Restart(NodeId node, NodeId seed) {
  const std::size_t i = Index(node);
  StopNode(i);
  StartLife(i);
  Join(node, seed);
}

void Simulator::Leave(NodeId node, Duration linger) {
  const std::size_t i = Index(node);
  Node& n = *nodes_[i];
  if (!n.running) return Fail("Leave of a node that is not running");
  n.leaving = true;
  n.core->Leave(now_);
  AfterCall(i);
  Push(Event{now_ + linger, 0, EventKind::kStop, false, static_cast<std::uint32_t>(i), 0, n.life,
             0});
}

bool Simulator::Remove(NodeId at, NodeId subject) {
  const std::size_t i = Index(at);
  if (!nodes_[i]->running) return false;
  const bool removed = nodes_[i]->core->Remove(subject, now_);
  AfterCall(i);
  return removed;
}

// ---- Network faults.

void Simulator::SetLoss(double loss) { options_.network.loss = loss; }

void Simulator::SetDelay(Duration min_delay, Duration max_delay) {
  options_.network.min_delay = min_delay;
  options_.network.max_delay = std::max(min_delay, max_delay);
}

void Simulator::Block(const std::vector<NodeId>& from, const std::vector<NodeId>& to) {
  Cut cut;
  cut.from.assign(nodes_.size(), false);
  cut.to.assign(nodes_.size(), false);
  for (NodeId f : from) cut.from[Index(f)] = true;
  for (NodeId t : to) cut.to[Index(t)] = true;
  cuts_.push_back(std::move(cut));
}

void Simulator::Partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  Block(a, b);
  Block(b, a);
}

void Simulator::Heal() { cuts_.clear(); }

void Simulator::SetSlow(NodeId node, Duration extra) { nodes_[Index(node)]->slow = extra; }

bool Simulator::Blocked(std::size_t from, std::size_t to) const {
  for (const Cut& c : cuts_) {
    // Nodes created after the cut are on neither side.
    if (from < c.from.size() && to < c.to.size() && c.from[from] && c.to[to]) return true;
  }
  return false;
}

// ---- Checks.

void Simulator::SetCheckMode(CheckMode mode, Duration sample_interval) {
  if (mode == CheckMode::kEveryCall && options_.check_mode != CheckMode::kEveryCall) {
    // Invariant 3 needs every node's own incarnation to be current: refresh them all first
    // (Observe checks invariant 3 only in kEveryCall mode).
    options_.check_mode = CheckMode::kNone;
    for (std::size_t i = 0; i < nodes_.size(); ++i) Observe(i);
  }
  options_.check_mode = mode;
  options_.sample_interval = sample_interval;
  if (mode == CheckMode::kSampled && !sampling_) {
    sampling_ = true;
    Push(Event{now_ + sample_interval, 0, EventKind::kSample, false, 0, 0, 0, 0});
  }
}

void Simulator::Fail(const std::string& what) {
  if (!failure_.empty()) return;  // the first failure is the one to debug
  failure_ = "simulation failed at t=" + Seconds(now_) + " (seed " + std::to_string(options_.seed) +
             "): " + what;
  if (!options_.replay_command.empty()) failure_ += "\n  replay: " + options_.replay_command;
  std::fprintf(stderr, "%s\n", failure_.c_str());
}

// Checks one node's view against what the simulator knows, and counts the transitions of live
// nodes into SUSPECT and DOWN. Invariants:
//   1. The view is the observer's own (self), sorted by id without duplicates, and holds self
//      UP (or LEFT once it leaves) at the observer's current generation.
//   2. Every member is a node the simulator started, at its real gossip endpoint, with a
//      generation it has reached.
//   3. With kEveryCall: no one believes a higher incarnation of a live node than the node
//      itself has announced.
//   4. With check_history: per (observer, subject), the generation never decreases, and
//      within one generation the incarnation never decreases.
//   5. REMOVED is final, and so is LEFT within a generation.
//   6. With fail_on_false_death: no live node is DOWN in anyone's view.
void Simulator::Observe(std::size_t oi) {
  Node& o = *nodes_[oi];
  if (!o.running || !ok()) return;
  const std::string who = "node " + std::to_string(o.id) + "'s view: ";
  if (o.seen.size() < nodes_.size()) o.seen.resize(nodes_.size(), kUnseen);
  if (options_.check_history && o.history.size() < nodes_.size()) {
    o.history.resize(nodes_.size());
  }
  bool saw_self = false;
  NodeId prev = 0;
  // Called once per member of every view checked: nothing is allocated unless it fails.
  o.core->ForEachMember(now_, [&](const membership::MemberView& m) {
    auto fail = [&](const std::string& what) {
      Fail(who + "member " + std::to_string(m.id) + ": " + what);
      return false;
    };
    if (m.id <= prev) {
      Fail(who + "not sorted by id, or a duplicate, at " + Describe(o.id));
      return false;
    }
    prev = m.id;
    if (m.id == 0 || m.id > nodes_.size()) return fail("no such node");
    const std::size_t si = m.id - 1;
    const Node& s = *nodes_[si];
    if (m.gossip != s.gossip) return fail("wrong endpoint " + ToString(m.gossip));
    if (m.generation > s.generation || m.generation == 0) {
      return fail("generation " + std::to_string(m.generation) + ", the node has only " +
                  std::to_string(s.generation));
    }
    if (si == oi) {
      saw_self = true;
      const bool self_ok =
          m.liveness == Liveness::kUp || (o.leaving && m.liveness == Liveness::kLeft);
      if (m.generation != o.generation || !self_ok) {
        return fail("self is " + std::string(Name(m.liveness)) + " at generation " +
                    std::to_string(m.generation));
      }
      if (m.incarnation < o.self_incarnation) return fail("own incarnation went back");
      o.self_incarnation = m.incarnation;
    }
    const bool current = s.running && m.generation == s.generation;
    if (current && si != oi && options_.check_mode == CheckMode::kEveryCall &&
        m.incarnation > s.self_incarnation) {
      return fail("incarnation " + std::to_string(m.incarnation) + " is ahead of the node's own " +
                  std::to_string(s.self_incarnation));
    }
    const std::uint8_t before = o.seen[si];
    if (options_.check_history) {
      PairHistory& h = o.history[si];
      if (m.generation < h.generation) return fail("generation went back");
      if (m.generation == h.generation) {
        if (m.incarnation < h.incarnation) return fail("incarnation went back");
        if (before == static_cast<std::uint8_t>(Liveness::kLeft) && m.liveness != Liveness::kLeft &&
            m.liveness != Liveness::kRemoved) {
          return fail("LEFT became " + std::string(Name(m.liveness)) + " in the same generation");
        }
      }
      h.generation = m.generation;
      h.incarnation = m.incarnation;
    }
    if (before == static_cast<std::uint8_t>(Liveness::kRemoved) &&
        m.liveness != Liveness::kRemoved) {
      return fail("REMOVED became " + std::string(Name(m.liveness)));
    }
    if (current && si != oi && !s.leaving &&
        (m.liveness == Liveness::kSuspect || m.liveness == Liveness::kDown)) {
      const std::optional<membership::MemberView> own = s.core->Lookup(s.id, now_);
      if (own && own->incarnation > m.incarnation) {
        if (m.liveness == Liveness::kDown) {
          ++detector_.stale_down_checks;
        } else {
          ++detector_.stale_suspect_checks;
          auto open = std::lower_bound(o.open_suspicions.begin(), o.open_suspicions.end(),
                                       static_cast<std::uint32_t>(si),
                                       [](const auto& e, std::uint32_t x) { return e.first < x; });
          if (open != o.open_suspicions.end() && open->first == si &&
              now_ - open->second >= std::chrono::seconds(8)) {
            ++detector_.stale_suspect_checks_over_8s;
          }
        }
      }
    }
    const auto now_liveness = static_cast<std::uint8_t>(m.liveness);
    if (now_liveness == before) return true;
    o.seen[si] = now_liveness;
    const auto subject = static_cast<std::uint32_t>(si);
    auto open = std::lower_bound(o.open_suspicions.begin(), o.open_suspicions.end(), subject,
                                 [](const auto& e, std::uint32_t x) { return e.first < x; });
    if (before == static_cast<std::uint8_t>(Liveness::kSuspect) &&
        open != o.open_suspicions.end() && open->first == subject) {
      detector_.longest_suspicion = std::max(detector_.longest_suspicion, now_ - open->second);
      open = o.open_suspicions.erase(open);
    }
    const bool falsely = current && !s.leaving && si != oi;
    if (falsely && m.liveness == Liveness::kSuspect) {
      ++detector_.false_suspicions;
      ++suspicions_of_[si];
      if (open != o.open_suspicions.end() && open->first == subject) {
        open->second = now_;
      } else {
        o.open_suspicions.insert(open, {subject, now_});
      }
    }
    if (falsely && m.liveness == Liveness::kDown) {
      ++detector_.false_deaths;
      ++deaths_of_[si];
      if (options_.fail_on_false_death) return fail("a live node is DOWN");
    }
    return true;
  });
  if (ok() && !saw_self) return Fail(who + "self is missing");
}

// ---- Events.

void Simulator::Push(Event e) {
  e.seq = next_seq_++;
  queue_.push(e);
}

void Simulator::RunTo(Time t) {
  while (ok() && !queue_.empty() && queue_.top().at <= t) {
    const Event e = queue_.top();
    queue_.pop();
    now_ = e.at;
    Dispatch(e);
  }
  if (ok()) now_ = std::max(now_, t);
}

void Simulator::RunFor(Duration d) { RunTo(now_ + d); }

bool Simulator::RunUntil(const std::function<bool()>& done, Duration limit, Duration poll) {
  const Time end = now_ + limit;
  while (ok()) {
    if (done()) return true;
    if (now_ >= end) return false;
    RunTo(std::min(end, now_ + poll));
  }
  return false;
}

void Simulator::Dispatch(const Event& e) {
  switch (e.kind) {
    case EventKind::kTick: {
      Node& n = *nodes_[e.node];
      // A timer of an old life, or one re-armed since: the adapter's stopped flag and
      // re-arming play the same role.
      if (!n.running || e.life != n.life || e.at != n.tick_at) return;
      n.tick_at = kNever;
      if (e.at == n.last_tick_at) {
        if (++n.ticks_at_last > kMaxTicksAtOneInstant) {
          return Fail("node " + std::to_string(n.id) + ": NextDeadline() stays at now after " +
                      std::to_string(kMaxTicksAtOneInstant) + " Ticks");
        }
      } else {
        n.last_tick_at = e.at;
        n.ticks_at_last = 0;
      }
      n.core->Tick(now_);
      AfterCall(e.node);
      return;
    }
    case EventKind::kDeliver:
      Deliver(e);
      return;
    case EventKind::kStop: {
      Node& n = *nodes_[e.node];
      if (n.running && e.life == n.life) StopNode(e.node);
      return;
    }
    case EventKind::kSample:
      if (options_.check_mode != CheckMode::kSampled) {
        sampling_ = false;
        return;
      }
      for (std::size_t i = 0; i < nodes_.size(); ++i) Observe(i);
      Push(Event{now_ + options_.sample_interval, 0, EventKind::kSample, false, 0, 0, 0, 0});
      return;
  }
}

// What the adapter does after every call into the core: send what it produced, stop if the
// cluster refused the id, and re-arm the timer to NextDeadline().
void Simulator::AfterCall(std::size_t i) {
  Node& n = *nodes_[i];
  ++n.calls;
  for (membership::Outgoing& out : n.core->TakeOutgoing()) Send(i, std::move(out));
  const membership::Counters& c = n.core->counters();
  if (c.dropped_malformed != n.drops.dropped_malformed ||
      c.dropped_oversize != n.drops.dropped_oversize ||
      c.dropped_version != n.drops.dropped_version ||
      c.dropped_cluster != n.drops.dropped_cluster) {
    return Fail("node " + std::to_string(n.id) + " dropped " + last_delivery_ +
                " that another core produced and the network delivered intact (malformed " +
                std::to_string(c.dropped_malformed - n.drops.dropped_malformed) + ", oversize " +
                std::to_string(c.dropped_oversize - n.drops.dropped_oversize) + ", version " +
                std::to_string(c.dropped_version - n.drops.dropped_version) + ", cluster " +
                std::to_string(c.dropped_cluster - n.drops.dropped_cluster) + ")");
  }
  if (n.core->refused()) {  // kvd stops: its id was removed from the cluster
    StopNode(i);
    n.refused = true;
    return;
  }
  Time d = n.core->NextDeadline();
  if (d < now_) d = now_;
  if (d != n.tick_at) {
    n.tick_at = d;
    Push(Event{d, 0, EventKind::kTick, false, static_cast<std::uint32_t>(i), 0, n.life, 0});
  }
  if (options_.check_mode == CheckMode::kEveryCall) Observe(i);
}

Duration Simulator::Uniform(Duration lo, Duration hi) {
  if (hi <= lo) return lo;
  const auto span = static_cast<std::uint64_t>((hi - lo).count()) + 1;
  return lo + Duration(static_cast<Duration::rep>(NextRandom() % span));
}

void Simulator::Send(std::size_t from, membership::Outgoing&& out) {
  const NetworkOptions& net = options_.network;
  std::size_t to;
  if (!IndexOf(out.to, &to)) {
    return Fail("node " + std::to_string(nodes_[from]->id) + " sent to " + ToString(out.to) +
                (out.stream ? " (stream)" : " (datagram)") + ", where no node listens");
  }
  Duration delay;
  if (out.stream) {
    ++net_stats_.streams_sent;
    net_stats_.stream_bytes_sent += out.bytes.size();
    delay = Uniform(net.stream_min_delay, net.stream_max_delay);
  } else {
    ++net_stats_.datagrams_sent;
    net_stats_.datagram_bytes_sent += out.bytes.size();
    if (out.bytes.size() > options_.config.max_datagram_bytes) {
      return Fail("node " + std::to_string(nodes_[from]->id) + " sent a datagram of " +
                  std::to_string(out.bytes.size()) + " bytes, over max_datagram_bytes");
    }
    if (net.loss > 0 && NextUnit() < net.loss) {
      ++net_stats_.lost;
      return;
    }
    delay = Uniform(net.min_delay, net.max_delay);
  }
  delay += nodes_[to]->slow;
  std::uint32_t slot;
  if (!free_payloads_.empty()) {
    slot = free_payloads_.back();
    free_payloads_.pop_back();
    payloads_[slot] = std::move(out.bytes);
  } else {
    slot = static_cast<std::uint32_t>(payloads_.size());
    payloads_.push_back(std::move(out.bytes));
  }
  Push(Event{now_ + delay, 0, EventKind::kDeliver, out.stream, static_cast<std::uint32_t>(to),
             static_cast<std::uint32_t>(from), 0, slot});
}

void Simulator::Deliver(const Event& e) {
  std::string bytes = std::move(payloads_[e.payload]);
  payloads_[e.payload] = std::string();
  free_payloads_.push_back(e.payload);
  Node& dst = *nodes_[e.node];
  if (!dst.running) {
    ++net_stats_.dropped_dead;
    return;
  }
  if (Blocked(e.from, e.node)) {
    ++net_stats_.dropped_partition;
    return;
  }
  ++net_stats_.delivered;
  Endpoint from = nodes_[e.from]->gossip;
  // An accepted TCP connection reports the peer's ephemeral port, not its gossip port.
  if (e.stream) from.port = static_cast<std::uint16_t>(32768 + NextRandom() % 28232);
  if (options_.record_digest) {
    std::uint64_t h = Mix(digest_ ^ static_cast<std::uint64_t>(now_.count()));
    h = Mix(h ^ (std::uint64_t{e.from} << 32 | e.node) ^ (std::uint64_t{e.stream} << 63));
    h = Mix(h ^ from.port);
    digest_ = XXH3_64bits_withSeed(bytes.data(), bytes.size(), h);
  }
  last_delivery_ = std::string(e.stream ? "a stream message" : "a datagram") + " of " +
                   std::to_string(bytes.size()) + " bytes from node " +
                   std::to_string(nodes_[e.from]->id);
  dst.core->Receive(from, bytes, e.stream, now_);
  AfterCall(e.node);
}

// ---- Observation.

bool Simulator::IndexOf(const Endpoint& e, std::size_t* index) const {
  if (e.port != kGossipPort || e.ip <= kBaseIp || e.ip - kBaseIp > nodes_.size()) return false;
  *index = e.ip - kBaseIp - 1;
  return true;
}

std::size_t Simulator::Index(NodeId node) const {
  if (node == 0 || node > nodes_.size()) {
    std::fprintf(stderr, "kv::sim: no node %llu\n", static_cast<unsigned long long>(node));
    std::abort();
  }
  return node - 1;
}

bool Simulator::IsRunning(NodeId node) const { return nodes_[Index(node)]->running; }
bool Simulator::IsLeaving(NodeId node) const { return nodes_[Index(node)]->leaving; }
bool Simulator::WasRefused(NodeId node) const { return nodes_[Index(node)]->refused; }
std::uint64_t Simulator::Generation(NodeId node) const { return nodes_[Index(node)]->generation; }
std::uint64_t Simulator::Calls(NodeId node) const { return nodes_[Index(node)]->calls; }

const membership::Membership* Simulator::Core(NodeId node) const {
  return nodes_[Index(node)]->core.get();
}

ClusterView Simulator::View(NodeId observer) const {
  const Node& n = *nodes_[Index(observer)];
  if (!n.running) return ClusterView{};
  return n.core->View(now_);
}

std::vector<NodeId> Simulator::Live() const {
  std::vector<NodeId> out;
  for (const auto& n : nodes_) {
    if (n->running && !n->leaving) out.push_back(n->id);
  }
  return out;
}

std::optional<membership::MemberView> Simulator::Lookup(NodeId observer, NodeId subject) const {
  const Node& o = *nodes_[Index(observer)];
  if (!o.running) return std::nullopt;
  return o.core->Lookup(subject, now_);
}

bool Simulator::Sees(NodeId observer, NodeId subject, Liveness liveness) const {
  const std::optional<membership::MemberView> m = Lookup(observer, subject);
  if (!m || m->liveness != liveness) return false;
  return liveness != Liveness::kUp || m->generation == Generation(subject);
}

bool Simulator::AllSee(NodeId subject, Liveness liveness) const {
  for (const auto& n : nodes_) {
    if (!n->running || n->leaving || n->id == subject) continue;
    if (!Sees(n->id, subject, liveness)) return false;
  }
  return true;
}

bool Simulator::Converged() const {
  const std::vector<NodeId> live = Live();
  for (NodeId o : live) {
    // Both in id order: walk the view against the live list.
    std::size_t next = 0;
    bool good = true;
    nodes_[o - 1]->core->ForEachMember(now_, [&](const membership::MemberView& m) {
      if (next == live.size() || m.id < live[next]) return true;  // not a live node
      if (m.id > live[next] || m.liveness != Liveness::kUp || m.generation != Generation(m.id)) {
        good = false;  // a live node missing, or not UP at its current generation
        return false;
      }
      ++next;
      return true;
    });
    if (!good || next != live.size()) return false;
  }
  return true;
}

std::string Simulator::Describe(NodeId observer) const {
  const Node& o = *nodes_[Index(observer)];
  if (!o.running) return "node " + std::to_string(observer) + " is not running";
  std::string out = "node " + std::to_string(observer) + " sees [";
  for (const membership::MemberView& m : o.core->View(now_).members) {
    out += " " + std::to_string(m.id) + ":" + Name(m.liveness) + "@" +
           std::to_string(m.generation) + "." + std::to_string(m.incarnation);
  }
  out += " ]; live:";
  for (NodeId id : Live()) out += " " + std::to_string(id) + "@" + std::to_string(Generation(id));
  return out;
}

std::uint64_t Simulator::ViewsDigest() const {
  std::uint64_t h = 0;
  auto add = [&h](std::uint64_t x) { h = Mix(h ^ x); };
  for (const auto& n : nodes_) {
    if (!n->running) continue;
    add(n->id);
    for (const membership::MemberView& m : n->core->View(now_).members) {
      add(m.id);
      add(m.gossip.ip);
      add(m.generation);
      add(m.incarnation);
      add(static_cast<std::uint64_t>(m.liveness));
      add(m.app_version);
      add(static_cast<std::uint64_t>(m.app.state));
      add(m.app.load_bytes);
      for (std::uint64_t t : m.app.tokens) add(t);
      std::uint64_t phi_bits;
      static_assert(sizeof phi_bits == sizeof m.phi);
      std::memcpy(&phi_bits, &m.phi, sizeof phi_bits);
      add(phi_bits);
    }
  }
  return h;
}

}  // namespace kv::sim
