#include "membership/membership.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "membership/check.h"
#include "membership/lifeguard.h"
#include "membership/phi_accrual.h"
#include "membership/rng.h"
#include "membership/sorted_blocks.h"
#include "membership/wire.h"

namespace kv::membership {
namespace {

// Order of liveness claims about one member within one generation, at equal incarnation: a
// claim replaces what this node believes only if (incarnation, rank) is higher. LEFT outranks
// DOWN so that a member that left is never shown DOWN once the news of its leave arrived.
int Rank(Liveness l) {
  switch (l) {
    case Liveness::kUp:
      return 0;
    case Liveness::kSuspect:
      return 1;
    case Liveness::kDown:
      return 2;
    case Liveness::kLeft:
      return 3;
    case Liveness::kRemoved:
      return 4;
  }
  return 0;
}

// How long a ping-req intermediary waits for the target before it nacks: less than the
// requester's own probe timeout, so the nack gets back before the requester's probe period
// ends (the requester sends ping-reqs at probe_timeout and decides at probe_interval).
Duration NackDelay(const Config& c) { return c.probe_timeout * 4 / 5; }

// How many times a node pings a member it has held SUSPECT, unrefuted, for half and for three
// quarters of the suspicion's floor (see suspicion_checks_).
constexpr int kSuspicionChecks = 2;

// Bounds the ping-req relays one node keeps, so a flood of ping-reqs cannot grow memory.
constexpr std::size_t kMaxRelays = 1024;

// How many queued broadcasts one datagram looks at before giving up on filling the rest.
constexpr int kMaxBroadcastScan = 256;

// The smallest thing that could still fit (a tombstone id).
constexpr std::size_t kMinPiggybackBytes = 10;

bool Probeable(Liveness l) { return l == Liveness::kUp || l == Liveness::kSuspect; }

// Every member's application state, packed back to back in one buffer per node (state, load,
// tokens, rack, RPC address, movement fields, dot life, behind a varint length): a large cluster keeps one per member in
// every node, and the unpacked struct is 104 bytes with two strings and a vector, and a separate
// heap block per member would add malloc's header and rounding. Unpacked when sent or viewed.
// A replaced state is left behind as garbage until Compact, which the owner calls when
// NeedsCompaction() and which moves every live state (so it must rewrite every handle).
class AppArena {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;  // the handle of AppState{}

  // Stores `app` in place of the state at `old` (kNone if none) and returns its handle.
  std::uint32_t Put(const AppState& app, std::uint32_t old) {
    if (old != kNone) garbage_ += EntrySize(old);
    if (app == AppState{}) return kNone;
    scratch_.clear();
    scratch_.push_back(static_cast<std::uint8_t>(app.state));
    PutVarint(&scratch_, app.load_bytes);
    PutVarint(&scratch_, app.tokens.size());
    for (std::uint64_t t : app.tokens) PutVarint(&scratch_, t);
    PutString(&scratch_, app.rack);
    PutString(&scratch_, app.rpc_address);
    PutVarint(&scratch_, app.replaces);
    PutVarint(&scratch_, app.removing);
    scratch_.push_back(app.reads_new ? 1 : 0);
    PutVarint(&scratch_, app.dots_life);
    const std::size_t at = bytes_.size();
    KV_MEMBERSHIP_CHECK(at + scratch_.size() + 10 < kNone);
    // Grows by an eighth rather than doubling: this buffer is kept for the node's life.
    if (bytes_.capacity() < at + scratch_.size() + 10) {
      bytes_.reserve(at + at / 8 + scratch_.size() + 256);
    }
    PutVarint(&bytes_, scratch_.size());
    bytes_.insert(bytes_.end(), scratch_.begin(), scratch_.end());
    return static_cast<std::uint32_t>(at);
  }

  AppState Get(std::uint32_t handle) const {
    AppState app;
    if (handle == kNone) return app;
    const std::uint8_t* p = bytes_.data() + handle;
    GetVarint(&p);  // the entry's length
    app.state = static_cast<NodeState>(*p++);
    app.load_bytes = GetVarint(&p);
    app.tokens.resize(GetVarint(&p));
    for (std::uint64_t& t : app.tokens) t = GetVarint(&p);
    app.rack = GetString(&p);
    app.rpc_address = GetString(&p);
    app.replaces = GetVarint(&p);
    app.removing = GetVarint(&p);
    app.reads_new = *p++ != 0;
    app.dots_life = GetVarint(&p);
    return app;
  }

  bool NeedsCompaction() const { return garbage_ > 4096 && garbage_ * 2 > bytes_.size(); }

  // Moves every live state into a fresh buffer: for_each_handle(relocate) must call
  // relocate(handle) on every live handle held, once each.
  template <typename ForEachHandle>
  void Compact(ForEachHandle&& for_each_handle) {
    std::vector<std::uint8_t> fresh;
    fresh.reserve(bytes_.size() - garbage_ + 256);
    for_each_handle([&](std::uint32_t& handle) {
      if (handle == kNone) return;
      const std::size_t n = EntrySize(handle);
      const auto at = static_cast<std::uint32_t>(fresh.size());
      fresh.insert(fresh.end(), bytes_.begin() + handle, bytes_.begin() + handle + n);
      handle = at;
    });
    bytes_.swap(fresh);
    garbage_ = 0;
  }

 private:
  std::size_t EntrySize(std::uint32_t handle) const {
    const std::uint8_t* p = bytes_.data() + handle;
    const std::uint64_t n = GetVarint(&p);
    return static_cast<std::size_t>(p - (bytes_.data() + handle)) + n;
  }
  static void PutVarint(std::vector<std::uint8_t>* b, std::uint64_t v) {
    while (v >= 0x80) {
      b->push_back(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    b->push_back(static_cast<std::uint8_t>(v));
  }
  static void PutString(std::vector<std::uint8_t>* b, const std::string& s) {
    PutVarint(b, s.size());
    b->insert(b->end(), s.begin(), s.end());
  }
  static std::uint64_t GetVarint(const std::uint8_t** p) {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const std::uint8_t byte = *(*p)++;
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
    }
  }
  static std::string GetString(const std::uint8_t** p) {
    const std::size_t n = GetVarint(p);
    std::string s(reinterpret_cast<const char*>(*p), n);
    *p += n;
    return s;
  }

  std::vector<std::uint8_t> bytes_;
  std::size_t garbage_ = 0;  // bytes of replaced states
  std::vector<std::uint8_t> scratch_;
};

// One queued piggyback, ordered by key (unique).
struct QueuedBroadcast {
  std::uint64_t key = 0;
  std::uint32_t ref = 0;   // a member slot, or kRemovalRef | index into removal_ids_
  std::uint32_t cost = 0;  // estimated bytes it adds to a datagram
};
struct ByKey {
  bool operator()(const QueuedBroadcast& a, const QueuedBroadcast& b) const {
    return a.key < b.key;
  }
};

// A suspicion's deadline, ordered by (deadline, member id).
struct Deadline {
  Time at{0};
  NodeId id = 0;
};
struct ByDeadline {
  bool operator()(const Deadline& a, const Deadline& b) const {
    return std::tie(a.at, a.id) < std::tie(b.at, b.id);
  }
};

// push_back with growth by an eighth instead of doubling: these vectors hold one slot per member
// in every node, and doubling leaves up to half of them unused for good.
void AppendSlot(std::vector<std::uint32_t>& v, std::uint32_t slot) {
  if (v.size() == v.capacity()) v.reserve(v.size() + v.size() / 8 + 16);
  v.push_back(slot);
}

// SplitMix64's finalizer: spreads node ids over the member index.
std::uint64_t HashId(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

struct Membership::Impl {
  // A running suspicion of one member (Lifeguard): its timeout starts at `max` and shrinks
  // towards `min` as distinct members other than the one that started it confirm it.
  struct Suspicion {
    Time start{0};
    Duration min{0};
    Duration max{0};
    int expected = 0;                // K: confirmations that bring it to `min`
    NodeId initiator = 0;            // who raised it first; does not count as a confirmation
    std::vector<NodeId> confirmers;  // sorted, distinct, never the initiator, size <= expected
    Time deadline{0};
    // The next check (a ping to the suspect, see suspicion_checks_), if one is due.
    Time check_at{0};
    int checks_left = 0;
  };

  // What a member record needs only sometimes: taken from extras_ when the member stops being UP
  // or is first acked, and given back when it is UP again with no phi data.
  struct Extra {
    NodeId accuser = 0;  // the latest member that claimed it suspect or down
    Time since{0};       // when it entered its current liveness (read for DOWN and LEFT)
    std::unique_ptr<Suspicion> suspicion;  // set iff liveness == kSuspect
    PhiAccrual phi;                        // from the first ack
  };

  // One record per member ever heard of, in every node: 10,000 nodes hold 10^8 of them in the
  // simulator, so the layout is kept to 56 bytes (checked below): handles instead of pointers.
  struct Member {
    NodeId id = 0;
    std::uint64_t generation = 0;
    std::uint64_t incarnation = 0;
    // The application state held, at app_version; app_version 0 means none is held for this
    // generation (`app` may still show what an older life announced).
    std::uint64_t app_version = 0;
    std::uint64_t bcast_key = 0;          // its entry in queue_, when queued
    std::uint32_t app = AppArena::kNone;  // its application state in apps_
    std::uint32_t extra = 0;              // 0, or 1 + its index in extras_
    std::uint32_t ip = 0;                 // gossip endpoint
    std::uint16_t port = 0;
    Liveness liveness = Liveness::kUp;
    bool queued : 1 = false;          // news of it is in queue_
    bool bcast_with_app : 1 = false;  // ... and carries its application state

    Endpoint endpoint() const { return Endpoint{ip, port}; }
    void set_endpoint(const Endpoint& e) {
      ip = e.ip;
      port = e.port;
    }
  };
  static_assert(sizeof(Member) <= 56);

  // A queued piggyback refers to a member slot, or (with this bit) to removal_ids_.
  static constexpr std::uint32_t kRemovalRef = 0x80000000u;
  // Queue keys: deaths and departures first, then refutations, then the rest; within each, least
  // sent, then newest, as
  //   class (0, kRefuting or kOrdinary) | transmits << kOrderBits | (kOrderMask - order).
  // Why refutations go first: a suspicion starts a timer of several seconds everywhere it
  // arrives, and its refutation must reach each of those nodes before that timer runs out, or
  // a live member is declared DOWN there. Late suspicion news costs little (its timer starts
  // late); a late or missing refutation costs a false death. When more news arrives than
  // datagrams can carry (a large cluster with loss: every failed probe is news for every node),
  // least-sent-first alone gives each update fewer sends than the retransmit limit, and a node
  // that missed every copy of a refutation keeps its suspicion until the timer fires. Giving
  // refutations precedence keeps their full count of sends; there are never more of them than
  // suspicions, so the rest of the news still gets what is left.
  // Deaths and departures go before even refutations: they are rare and final, and behind a
  // stream of refutations (30% loss) a crashed member's DOWN reached the last nodes of 1,000
  // only 41 s after the first declared it (of 2,000, 118 s while it shared their class: newer
  // refutations kept going ahead of it), and each node waited out its own suspicion timer.
  static constexpr int kOrderBits = 48;
  static constexpr std::uint64_t kOrderMask = (std::uint64_t{1} << kOrderBits) - 1;
  // The class of news: deaths and departures, then refutations, then the rest.
  static constexpr std::uint64_t kRefuting = std::uint64_t{1} << 62;
  static constexpr std::uint64_t kOrdinary = std::uint64_t{2} << 62;
  static constexpr std::uint64_t kClassMask = std::uint64_t{3} << 62;
  static constexpr std::uint64_t kMaxTransmits = (kRefuting >> kOrderBits) - 1;
  static std::uint64_t TransmitsOf(std::uint64_t key) {
    return (key & ~kClassMask) >> kOrderBits;
  }

  struct Probe {
    bool active = false;
    NodeId target = 0;
    std::uint64_t seq = 0;
    Time indirect_at{0};  // no ack by then: ping-req
    Time end_at{0};       // no ack by then: suspect
    bool acked = false;
    bool indirect_sent = false;
    int expected_nacks = 0;
    std::vector<NodeId> nackers;
  };

  // A ping-req this node relays as intermediary.
  struct Relay {
    Endpoint requester;
    std::uint64_t requester_seq = 0;
    Time nack_at{0};
  };

  Impl(Config c, NodeId self, Endpoint gossip, std::uint64_t generation, AppState app,
       std::uint64_t seed, Time now);

  // ---- The member table.
  Member* Find(NodeId id);
  const Member* Find(NodeId id) const;
  Member& At(NodeId id);                  // REQUIRES: known
  std::uint32_t SlotOf(NodeId id) const;  // REQUIRES: known
  // Adds a member not known yet and returns it.
  Member& Add(Member m);
  // Slots in id order.
  const std::vector<std::uint32_t>& ById() const;
  Member& Self() { return slots_[0]; }
  const Member& Self() const { return slots_[0]; }
  // The member's Extra, taken from the pool if it has none.
  Extra& ExtraOf(Member& m);
  Extra* ExtraIf(const Member& m) { return m.extra == 0 ? nullptr : &extras_[m.extra - 1]; }
  const Extra* ExtraIf(const Member& m) const {
    return m.extra == 0 ? nullptr : &extras_[m.extra - 1];
  }
  void DropExtra(Member& m);
  Suspicion* SuspicionOf(const Member& m) {
    Extra* x = ExtraIf(m);
    return x == nullptr ? nullptr : x->suspicion.get();
  }
  // Replaces the member's application state.
  void SetApp(Member& m, const AppState& app);
  void NoteOwnDotsLife(std::uint64_t life) {
    if (life != 0 && std::find(own_dots_lives_.begin(), own_dots_lives_.end(), life) ==
                         own_dots_lives_.end() &&
        own_dots_lives_.size() < 64) {
      own_dots_lives_.push_back(life);
    }
  }
  std::size_t N() const { return n_; }
  void SetLiveness(Member& m, Liveness l, NodeId from, Time now);
  bool Confirm(Member& m, NodeId from);
  void MarkRemoved(NodeId id, Time now);
  // Adds a tombstone learnt at `since` (now, minus its age where it came from); an older one of
  // a tombstone already held replaces its time.
  // `age_known` false: a tombstone restored without its removal time, counted from `since` (the
  // restart) until a peer tells its age.
  void AddTombstone(NodeId id, Time since, bool age_known = true);
  // What a datagram of this node's may hold: the transport adds datagram_overhead to each.
  std::size_t DatagramBudget() const {
    return config_.max_datagram_bytes - config_.datagram_overhead;
  }
  // The tombstones as sent: ids and ages in seconds at now_.
  void FillRemovals(wire::Message* msg) const;
  std::uint32_t AgeSeconds(Time since) const;

  // ---- Forgetting (membership.h, "Forgetting").
  // A forgotten LEFT or DOWN member: enough to refuse stale claims about the life it had.
  struct Ghost {
    std::uint64_t generation = 0;
    std::uint64_t incarnation = 0;
    std::uint64_t app_version = 0;
    Time since{0};  // when it was forgotten
    Endpoint endpoint;
    bool left = false;
  };
  // True if a claim at (generation, incarnation, app_version) says nothing the ghost's member
  // did not already say before it was forgotten: only the member itself raises these.
  static bool Refuses(const Ghost& g, std::uint64_t generation, std::uint64_t incarnation,
                      std::uint64_t app_version) {
    if (generation != g.generation) return generation < g.generation;
    return incarnation <= g.incarnation && app_version <= g.app_version;
  }
  wire::Update GhostState(NodeId id, const Ghost& g) const;
  // True if m left the ring (topology.h's Gone) and may be forgotten once forget_after passed.
  bool Forgettable(const Member& m) const;
  // Expires tombstones and ghosts, and forgets members whose time came.
  void Sweep(Time now);
  // Drops the records at these slots (none is self), leaving ghosts, and renumbers the rest.
  void Forget(const std::vector<std::uint32_t>& gone, Time now);
  // Renumbers removal_ids_ to the tombstones still queued.
  void CompactRemovalIds();
  std::vector<NodeId> RandomMembers(std::size_t k, const auto& eligible);

  // ---- Messages.
  wire::Message Header(wire::Kind kind) const;
  wire::Update StateOf(const Member& m, bool with_app) const;
  wire::Digest DigestOf(const Member& m) const;
  void Push(const Endpoint& to, std::string bytes, bool stream);
  // Sends a datagram to `to` (member `to_id` if known), filled with queued piggybacks while it
  // fits max_datagram_bytes. `forced` updates go first whatever the queue says. Returns false
  // (and sends nothing) if `require_piggyback` and nothing was queued.
  bool SendDatagram(const Endpoint& to, std::optional<NodeId> to_id, wire::Message msg,
                    std::vector<wire::Update> forced = {}, bool require_piggyback = false);
  void SendStream(const Endpoint& to, const wire::Message& msg);
  void SendPing(const Member& target, std::uint64_t seq);
  void SendSyn(const Endpoint& to);
  void SendJoin(Time now);
  void RequestPull(const Endpoint& from, Time now);

  // ---- Dissemination.
  std::size_t Cost(const wire::Update* u, NodeId removal) const;
  // Queues news of m's current state. `refutation`: it is an UP claim at an incarnation higher
  // than one accused (see the queue keys).
  void EnqueueMember(Member& m, bool with_app, bool refutation = false);
  void EnqueueRemoval(NodeId id);
  void EraseBroadcast(Member& m);

  // ---- Input.
  void Receive(const Endpoint& from, std::string_view bytes, bool stream, Time now);
  void ApplyUpdate(const wire::Update& u, const wire::Message& via, Time now);
  void ApplyClaimAboutSelf(const wire::Update& u, const wire::Message& via);
  void Refute(std::uint64_t at_least, bool accused, const wire::Message& via);
  void ApplyRemovals(const wire::Message& m, Time now);
  void HandlePing(const wire::Message& m);
  void HandleAck(const wire::Message& m, Time now);
  void HandleNack(const wire::Message& m);
  void HandlePingReq(const wire::Message& m, Time now);
  void HandleSyn(const wire::Message& m);
  void HandleSynAck(const wire::Message& m);

  // ---- Timers.
  void Tick(Time now);
  void StartProbe(Time now);
  std::optional<NodeId> NextProbeTarget();
  void SendPingReqs();
  void FinishProbe(Time now);
  void SuspectLocally(Member& m, Time now);
  void GossipRound(Time now);
  void PushPullRound();
  Time NextDeadline() const;

  const Config config_;
  const NodeId self_id_;
  Rng rng_;
  Counters counters_;
  std::vector<Outgoing> outgoing_;

  // Every member ever heard of, self included, by slot in order of arrival (self is slot 0);
  // removed ones stay with liveness kRemoved. A deque: records never move and no capacity is
  // left over.
  std::deque<Member> slots_;
  // Open addressing over slots by HashId(id), linear probing, load <= 3/4: 0 is empty, else
  // slot + 1. Only looked up, never iterated, so its layout cannot leak into behaviour.
  std::vector<std::uint32_t> index_;
  // Slots sorted by id: [0, sorted_) in order, the rest appended since and merged on demand.
  mutable std::vector<std::uint32_t> by_id_;
  mutable std::size_t sorted_ = 0;
  // Slots of members other than self that are not removed, in order of arrival: random picks
  // index into it. While nobody was removed it is every slot but self's, 1..size-1, and is not
  // stored (others_all_).
  std::vector<std::uint32_t> others_;
  bool others_all_ = true;
  AppArena apps_;
  std::deque<Extra> extras_;                // a pool: member.extra indexes it
  std::vector<std::uint32_t> free_extras_;  // indexes of extras_ not in use
  std::size_t n_ = 1;                       // members that are not removed, self included
  SortedBlocks<Deadline, ByDeadline> suspicion_deadlines_;  // one per member with a suspicion
  // Checks of suspicions still open: at kSuspicionChecks points before the suspicion's floor,
  // this node pings the suspect itself. A live suspect's answer carries its incarnation and
  // ends a suspicion whose refutation never reached this node (a suspicion and its refutation
  // spread by the same epidemic, and a node can miss every copy of the second); a ping to a
  // suspect also carries the suspicion, so one that had not heard of it refutes. A dead suspect
  // costs each node kSuspicionChecks datagrams and delays nothing.
  SortedBlocks<Deadline, ByDeadline> suspicion_checks_;
  std::map<NodeId, Time> tombstones_;  // removed ids, with when they were removed (by ages)
  std::set<NodeId> ageless_;            // tombstones whose age is not known yet
  std::map<NodeId, Ghost> ghosts_;     // forgotten LEFT and DOWN members
  Time created_at_{0};                 // restored tombstones count from here
  Time now_{0};                        // the latest time passed in: tombstone ages sent
  Time next_sweep_at_{0};
  Duration sweep_every_{0};
  bool left_ = false;
  bool refused_ = false;
  // False from Join with seeds until a peer answered a push-pull with its full state.
  bool synced_ = true;
  bool self_restored_ = false;  // a later life of this id was seen: generation raised above it
  // Every dot life this run's application state has carried (a few: the fresh one, the resumed).
  std::vector<std::uint64_t> own_dots_lives_;
  int health_ = 0;  // Lifeguard local health score, 0..awareness_max

  // Queued piggybacks, least sent first and among those the newest: one per member with news
  // (member.queued) and one per tombstone still being spread.
  SortedBlocks<QueuedBroadcast, ByKey> queue_;
  std::vector<NodeId> removal_ids_;  // tombstones queued so far, by kRemovalRef index
  std::uint64_t broadcast_order_ = 0;
  std::size_t base_bytes_ = 0;  // a datagram with nothing piggybacked, for Cost

  std::uint64_t next_seq_ = 1;
  Probe probe_;
  std::vector<std::uint32_t> probe_list_;  // this round's shuffled order, by slot
  std::size_t probe_index_ = 0;
  std::map<std::uint64_t, Relay> relays_;  // by this node's seq; nack_at grows with the seq

  Time next_probe_at_{0};
  Time next_gossip_at_{0};
  Time next_push_pull_at_{0};

  std::vector<Endpoint> seeds_;
  bool joining_ = false;
  Time next_join_at_{0};
  std::map<Endpoint, Time> last_pull_;  // on-demand pulls, rate-limited per peer
};

// ------------------------------------------------------------------------------------------
// Construction.

Membership::Impl::Impl(Config c, NodeId self, Endpoint gossip, std::uint64_t generation,
                       AppState app, std::uint64_t seed, Time now)
    : config_(std::move(c)), self_id_(self), rng_(seed), created_at_(now), now_(now) {
  KV_MEMBERSHIP_CHECK(config_.probe_interval > Duration(0));
  KV_MEMBERSHIP_CHECK(config_.probe_timeout > Duration(0));
  KV_MEMBERSHIP_CHECK(config_.indirect_probes >= 0 && config_.gossip_fanout >= 0);
  KV_MEMBERSHIP_CHECK(config_.retransmit_mult >= 1 && config_.suspicion_mult >= 1);
  KV_MEMBERSHIP_CHECK(config_.suspicion_max_mult >= 1 && config_.awareness_max >= 0);
  KV_MEMBERSHIP_CHECK(config_.join_retry_interval > Duration(0));
  KV_MEMBERSHIP_CHECK(config_.forget_after >= Duration(0) && config_.ghost_ttl >= Duration(0) &&
                      config_.removed_ttl >= Duration(0));
  // Tables are swept this often: a member is forgotten at most this late.
  sweep_every_ = std::chrono::seconds(10);
  if (config_.forget_after > Duration(0)) {
    sweep_every_ = std::min(sweep_every_, config_.forget_after / 4);
  }
  sweep_every_ = std::max(sweep_every_, config_.probe_interval);
  next_sweep_at_ = now + sweep_every_;

  std::sort(app.tokens.begin(), app.tokens.end());
  Member me;
  me.id = self;
  me.set_endpoint(gossip);
  me.generation = generation;
  me.app_version = 1;
  SetApp(Add(std::move(me)), app);
  NoteOwnDotsLife(app.dots_life);

  base_bytes_ = wire::Encode(Header(wire::Kind::kGossip)).size();
  // The largest datagram with nothing optional in it (a ping-req, plus the one forced update a
  // ping or a refutation carries) must fit, or the configuration cannot work at all.
  {
    wire::Message worst = Header(wire::Kind::kPingReq);
    worst.sender = worst.generation = worst.incarnation = UINT64_MAX;
    worst.endpoint = worst.target_endpoint = Endpoint{UINT32_MAX, UINT16_MAX};
    worst.seq_no = worst.target = UINT64_MAX;
    wire::Update u;
    u.id = u.generation = u.incarnation = u.from = u.app_version = UINT64_MAX;
    u.endpoint = Endpoint{UINT32_MAX, UINT16_MAX};
    u.liveness = Liveness::kDown;
    worst.updates.push_back(u);
    KV_MEMBERSHIP_CHECK(config_.datagram_overhead < config_.max_datagram_bytes);
    KV_MEMBERSHIP_CHECK(wire::Encode(worst).size() <= DatagramBudget());
  }

  // Staggered so that nodes started together do not probe and gossip in lockstep.
  next_probe_at_ = now + Duration(static_cast<Duration::rep>(rng_.Uniform(
                             static_cast<std::uint64_t>(config_.probe_interval.count()))));
  if (config_.gossip_interval > Duration(0)) {
    next_gossip_at_ = now + Duration(static_cast<Duration::rep>(rng_.Uniform(
                                static_cast<std::uint64_t>(config_.gossip_interval.count()))));
  }
  if (config_.push_pull_interval > Duration(0)) {
    next_push_pull_at_ =
        now + Duration(static_cast<Duration::rep>(
                  rng_.Uniform(static_cast<std::uint64_t>(config_.push_pull_interval.count()))));
  }
  EnqueueMember(Self(), true);
}

// ------------------------------------------------------------------------------------------
// The member table.

Membership::Impl::Member* Membership::Impl::Find(NodeId id) {
  return const_cast<Member*>(std::as_const(*this).Find(id));
}

const Membership::Impl::Member* Membership::Impl::Find(NodeId id) const {
  if (index_.empty()) return nullptr;
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = HashId(id) & mask; index_[i] != 0; i = (i + 1) & mask) {
    const Member& m = slots_[index_[i] - 1];
    if (m.id == id) return &m;
  }
  return nullptr;
}

Membership::Impl::Member& Membership::Impl::At(NodeId id) {
  Member* m = Find(id);
  KV_MEMBERSHIP_CHECK(m != nullptr);
  return *m;
}

std::uint32_t Membership::Impl::SlotOf(NodeId id) const {
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = HashId(id) & mask; index_[i] != 0; i = (i + 1) & mask) {
    if (slots_[index_[i] - 1].id == id) return index_[i] - 1;
  }
  KV_MEMBERSHIP_CHECK(false);
  return 0;
}

Membership::Impl::Member& Membership::Impl::Add(Member m) {
  KV_MEMBERSHIP_CHECK(Find(m.id) == nullptr && slots_.size() < kRemovalRef - 1);
  const auto slot = static_cast<std::uint32_t>(slots_.size());
  slots_.push_back(std::move(m));
  if ((slots_.size() + 1) * 4 > index_.size() * 3) {
    std::vector<std::uint32_t> bigger(std::max<std::size_t>(16, index_.size() * 2), 0);
    const std::size_t mask = bigger.size() - 1;
    for (std::uint32_t s = 0; s < slot; ++s) {
      std::size_t i = HashId(slots_[s].id) & mask;
      while (bigger[i] != 0) i = (i + 1) & mask;
      bigger[i] = s + 1;
    }
    index_.swap(bigger);
  }
  const std::size_t mask = index_.size() - 1;
  std::size_t i = HashId(slots_[slot].id) & mask;
  while (index_[i] != 0) i = (i + 1) & mask;
  index_[i] = slot + 1;
  AppendSlot(by_id_, slot);
  return slots_[slot];
}

const std::vector<std::uint32_t>& Membership::Impl::ById() const {
  if (sorted_ < by_id_.size()) {
    auto less = [this](std::uint32_t a, std::uint32_t b) { return slots_[a].id < slots_[b].id; };
    const auto mid = by_id_.begin() + static_cast<std::ptrdiff_t>(sorted_);
    std::sort(mid, by_id_.end(), less);
    std::inplace_merge(by_id_.begin(), mid, by_id_.end(), less);
    sorted_ = by_id_.size();
  }
  return by_id_;
}

Membership::Impl::Extra& Membership::Impl::ExtraOf(Member& m) {
  if (m.extra == 0) {
    if (free_extras_.empty()) {
      KV_MEMBERSHIP_CHECK(extras_.size() < UINT32_MAX - 1);
      extras_.emplace_back();
      m.extra = static_cast<std::uint32_t>(extras_.size());
    } else {
      m.extra = free_extras_.back() + 1;
      free_extras_.pop_back();
    }
  }
  return extras_[m.extra - 1];
}

void Membership::Impl::DropExtra(Member& m) {
  if (m.extra == 0) return;
  Extra& x = extras_[m.extra - 1];
  x.accuser = 0;
  x.since = Time{0};
  x.suspicion.reset();
  x.phi = PhiAccrual();
  free_extras_.push_back(m.extra - 1);
  m.extra = 0;
}

void Membership::Impl::SetApp(Member& m, const AppState& app) {
  m.app = apps_.Put(app, m.app);
  if (apps_.NeedsCompaction()) {
    apps_.Compact([this](const auto& relocate) {
      for (Member& each : slots_) relocate(each.app);
    });
  }
}

void Membership::Impl::SetLiveness(Member& m, Liveness l, NodeId from, Time now) {
  KV_MEMBERSHIP_CHECK(m.liveness != Liveness::kRemoved);
  if (l == Liveness::kSuspect && m.liveness == Liveness::kSuspect && SuspicionOf(m)) {
    // A newer incarnation suspected again: the running timer stands, the claim confirms it.
    if (Confirm(m, from)) ExtraIf(m)->accuser = from;
    return;
  }
  if (l == Liveness::kSuspect) {
    Suspicion s;
    s.start = now;
    s.min = lifeguard::SuspicionMinTimeout(config_.suspicion_mult, N(), config_.probe_interval);
    s.max = lifeguard::SuspicionMaxTimeout(config_.suspicion_max_mult, s.min);
    s.expected = lifeguard::ExpectedConfirmations(config_.indirect_probes, N());
    s.initiator = from;
    s.deadline = now + lifeguard::SuspicionTimeout(s.min, s.max, s.expected, 0);
    suspicion_deadlines_.Insert(Deadline{s.deadline, m.id});
    s.checks_left = kSuspicionChecks;
    s.check_at = now + s.min / 2;
    suspicion_checks_.Insert(Deadline{s.check_at, m.id});
    ++counters_.suspicions_started;
    ExtraOf(m).suspicion = std::make_unique<Suspicion>(std::move(s));
  } else if (Suspicion* s = SuspicionOf(m)) {
    suspicion_deadlines_.Erase(Deadline{s->deadline, m.id});
    if (s->checks_left > 0) suspicion_checks_.Erase(Deadline{s->check_at, m.id});
    if (l == Liveness::kUp) {
      ++counters_.suspicions_refuted;
      counters_.refuted_after_us += static_cast<std::uint64_t>((now - s->start).count());
    }
    ExtraIf(m)->suspicion.reset();
  }
  if (l == Liveness::kSuspect || l == Liveness::kDown) ExtraOf(m).accuser = from;
  if (l == Liveness::kRemoved) {
    --n_;
    if (others_all_) {
      others_all_ = false;
      others_.reserve(slots_.size() - 1);
      for (std::uint32_t slot = 1; slot < slots_.size(); ++slot) others_.push_back(slot);
    }
    auto pos = std::find(others_.begin(), others_.end(), SlotOf(m.id));
    KV_MEMBERSHIP_CHECK(pos != others_.end());
    others_.erase(pos);
    if (probe_.active && probe_.target == m.id) probe_.active = false;
  }
  // The time of a change is read only for DOWN, LEFT (gossip_to_dead, forget_after) and
  // REMOVED members (forget_after).
  if (l != m.liveness && l != Liveness::kUp) ExtraOf(m).since = now;
  m.liveness = l;
  if (l == Liveness::kUp && m.extra != 0 && !ExtraIf(m)->phi.heard()) DropExtra(m);
}

bool Membership::Impl::Confirm(Member& m, NodeId from) {
  Suspicion* sp = SuspicionOf(m);
  if (sp == nullptr) return false;
  Suspicion& s = *sp;
  if (from == s.initiator || static_cast<int>(s.confirmers.size()) >= s.expected) return false;
  auto it = std::lower_bound(s.confirmers.begin(), s.confirmers.end(), from);
  if (it != s.confirmers.end() && *it == from) return false;
  s.confirmers.insert(it, from);
  suspicion_deadlines_.Erase(Deadline{s.deadline, m.id});
  s.deadline = s.start + lifeguard::SuspicionTimeout(s.min, s.max, s.expected,
                                                     static_cast<int>(s.confirmers.size()));
  suspicion_deadlines_.Insert(Deadline{s.deadline, m.id});
  return true;
}

void Membership::Impl::MarkRemoved(NodeId id, Time now) {
  Member* m = Find(id);
  if (m == nullptr || m->liveness == Liveness::kRemoved) return;
  SetLiveness(*m, Liveness::kRemoved, self_id_, now);
  EraseBroadcast(*m);
}

void Membership::Impl::AddTombstone(NodeId id, Time since, bool age_known) {
  if (id == self_id_) return;
  auto [it, added] = tombstones_.emplace(id, since);
  if (!added) {
    // The age first heard stays. Ages travel in whole seconds, rounded up, so a copy of this
    // node's own age that comes back is up to a second older: taking the oldest, each round
    // trip aged the tombstone faster than time (two nodes that push-pull every 2 s dropped an
    // 8 s tombstone after 6). Only a tombstone restored without its age takes the first age a
    // peer tells.
    if (age_known && ageless_.erase(id) != 0) it->second = std::min(it->second, since);
    return;
  }
  if (!age_known) ageless_.insert(id);
  ghosts_.erase(id);  // a tombstone refuses every life
  MarkRemoved(id, now_);
  EnqueueRemoval(id);
}

// Rounded up: a tombstone taken from another node is never younger there than here, so copies
// only age as they spread and every node drops it by the time the oldest copy expires.
std::uint32_t Membership::Impl::AgeSeconds(Time since) const {
  const auto age = std::chrono::ceil<std::chrono::seconds>(now_ - since).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(age, 0, UINT32_MAX));
}

void Membership::Impl::FillRemovals(wire::Message* msg) const {
  msg->removals.clear();
  msg->removal_ages_s.clear();
  msg->removals.reserve(tombstones_.size());
  msg->removal_ages_s.reserve(tombstones_.size());
  for (const auto& [id, since] : tombstones_) {
    msg->removals.push_back(id);
    msg->removal_ages_s.push_back(AgeSeconds(since));
  }
}

// ------------------------------------------------------------------------------------------
// Forgetting.

wire::Update Membership::Impl::GhostState(NodeId id, const Ghost& g) const {
  wire::Update u;
  u.id = id;
  u.endpoint = g.endpoint;
  u.generation = g.generation;
  u.incarnation = g.incarnation;
  u.liveness = g.left ? Liveness::kLeft : Liveness::kDown;
  u.from = g.left ? id : self_id_;
  // No application state, and no version of one: the receiver must not pull what is gone.
  u.app_version = 0;
  return u;
}

bool Membership::Impl::Forgettable(const Member& m) const {
  switch (m.liveness) {
    case Liveness::kRemoved:
    case Liveness::kLeft:
      return true;
    case Liveness::kDown: {
      // As topology.h's Gone(): state left, or no tokens. A DOWN member with tokens still owns
      // its ranges and stays until it is removed.
      if (m.app == AppArena::kNone) return true;
      const AppState app = apps_.Get(m.app);
      return app.state == NodeState::kLeft || app.tokens.empty();
    }
    case Liveness::kUp:
    case Liveness::kSuspect:
      return false;
  }
  return false;
}

void Membership::Impl::Sweep(Time now) {
  next_sweep_at_ = now + sweep_every_;
  // Oldest first beyond the cap, then whatever outlived its ttl.
  auto expire = [&](auto& table, Duration ttl, std::size_t cap, auto since_of,
                    std::uint64_t* counter) {
    std::vector<std::pair<Time, NodeId>> order;
    for (const auto& [id, v] : table) {
      if (ttl > Duration(0) && now - since_of(v) >= ttl) {
        order.emplace_back(Time::min(), id);
      } else if (table.size() > cap) {
        order.emplace_back(since_of(v), id);
      }
    }
    std::sort(order.begin(), order.end());
    std::size_t left = table.size();
    for (const auto& [since, id] : order) {
      if (since != Time::min() && left <= cap) break;
      table.erase(id);
      --left;
      ++*counter;
    }
  };
  expire(tombstones_, config_.removed_ttl, config_.max_tombstones, [](Time t) { return t; },
         &counters_.tombstones_expired);
  std::erase_if(ageless_, [&](NodeId id) { return tombstones_.count(id) == 0; });
  expire(ghosts_, config_.ghost_ttl, config_.max_ghosts, [](const Ghost& g) { return g.since; },
         &counters_.ghosts_expired);

  std::vector<std::uint32_t> gone;
  for (std::uint32_t slot = 1; slot < slots_.size(); ++slot) {
    const Member& m = slots_[slot];
    if (m.liveness == Liveness::kRemoved && tombstones_.count(m.id) == 0) {
      gone.push_back(slot);  // its tombstone expired first (max_tombstones)
      continue;
    }
    if (config_.forget_after == Duration(0) || Probeable(m.liveness)) continue;
    const Extra* x = ExtraIf(m);
    if (x != nullptr && now - x->since >= config_.forget_after && Forgettable(m)) {
      gone.push_back(slot);
    }
  }
  if (!gone.empty()) Forget(gone, now);
  CompactRemovalIds();
}

void Membership::Impl::Forget(const std::vector<std::uint32_t>& gone, Time now) {
  constexpr std::uint32_t kNoSlot = UINT32_MAX;
  std::vector<bool> drop(slots_.size(), false);
  for (std::uint32_t slot : gone) {
    KV_MEMBERSHIP_CHECK(slot != 0 && slot < slots_.size() && !drop[slot]);
    drop[slot] = true;
    Member& m = slots_[slot];
    if (m.liveness != Liveness::kRemoved) {
      --n_;
      // The tombstone (if any) refuses a REMOVED member's every life; the others leave a ghost.
      ghosts_[m.id] = Ghost{m.generation, m.incarnation, m.app_version, now, m.endpoint(),
                            m.liveness == Liveness::kLeft};
    }
    if (probe_.active && probe_.target == m.id) probe_.active = false;
    EraseBroadcast(m);
    DropExtra(m);
    m.app = apps_.Put(AppState{}, m.app);  // its state becomes garbage
    ++counters_.forgotten;
  }
  // Renumber the slots that stay, in order (self stays slot 0).
  std::vector<std::uint32_t> remap(slots_.size(), kNoSlot);
  std::deque<Member> kept;
  for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
    if (drop[slot]) continue;
    remap[slot] = static_cast<std::uint32_t>(kept.size());
    kept.push_back(slots_[slot]);
  }
  ById();  // sorts by_id_, so that it stays sorted below
  std::vector<std::uint32_t> by_id;
  by_id.reserve(kept.size());
  for (std::uint32_t slot : by_id_) {
    if (remap[slot] != kNoSlot) by_id.push_back(remap[slot]);
  }
  by_id_.swap(by_id);
  sorted_ = by_id_.size();
  slots_.swap(kept);

  // The index, sized for the members that stay (it only grows in Add).
  std::size_t size = 16;
  while ((slots_.size() + 1) * 4 > size * 3) size *= 2;
  index_.assign(size, 0);
  for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
    std::size_t i = HashId(slots_[slot].id) & (size - 1);
    while (index_[i] != 0) i = (i + 1) & (size - 1);
    index_[i] = slot + 1;
  }
  // Random picks: every slot but self's unless some member left is REMOVED.
  others_.clear();
  others_all_ = true;
  for (std::uint32_t slot = 1; slot < slots_.size(); ++slot) {
    if (slots_[slot].liveness == Liveness::kRemoved) others_all_ = false;
  }
  if (!others_all_) {
    for (std::uint32_t slot = 1; slot < slots_.size(); ++slot) {
      if (slots_[slot].liveness != Liveness::kRemoved) others_.push_back(slot);
    }
  }
  others_.shrink_to_fit();
  // This probe round's order, without the forgotten.
  std::size_t index = 0;
  std::vector<std::uint32_t> probe_list;
  for (std::size_t i = 0; i < probe_list_.size(); ++i) {
    const std::uint32_t slot = remap[probe_list_[i]];
    if (slot == kNoSlot) continue;
    if (i < probe_index_) ++index;
    probe_list.push_back(slot);
  }
  probe_list_.swap(probe_list);
  probe_index_ = index;
  // Queued news of members that stay, by their new slots.
  std::vector<QueuedBroadcast> moved;
  queue_.ForEach([&](const QueuedBroadcast& e) {
    if ((e.ref & kRemovalRef) == 0 && remap[e.ref] != e.ref) moved.push_back(e);
    return true;
  });
  for (QueuedBroadcast e : moved) {
    queue_.Erase(e);
    KV_MEMBERSHIP_CHECK(remap[e.ref] != kNoSlot);
    e.ref = remap[e.ref];
    queue_.Insert(e);
  }
  if (apps_.NeedsCompaction()) {
    apps_.Compact([this](const auto& relocate) {
      for (Member& each : slots_) relocate(each.app);
    });
  }
}

void Membership::Impl::CompactRemovalIds() {
  std::vector<QueuedBroadcast> queued;
  queue_.ForEach([&](const QueuedBroadcast& e) {
    if ((e.ref & kRemovalRef) != 0) queued.push_back(e);
    return true;
  });
  if (removal_ids_.size() <= 2 * queued.size() + 64) return;
  std::vector<NodeId> ids;
  ids.reserve(queued.size());
  for (QueuedBroadcast e : queued) {
    queue_.Erase(e);
    ids.push_back(removal_ids_[e.ref & ~kRemovalRef]);
    e.ref = static_cast<std::uint32_t>(ids.size() - 1) | kRemovalRef;
    queue_.Insert(e);
  }
  removal_ids_.swap(ids);
}

// Up to k distinct members other than self for which eligible(member) holds, drawn at random
// (memberlist's kRandomNodes: bounded rejection sampling, no full scan).
std::vector<NodeId> Membership::Impl::RandomMembers(std::size_t k, const auto& eligible) {
  std::vector<NodeId> out;
  const std::size_t n = others_all_ ? slots_.size() - 1 : others_.size();
  for (std::size_t tries = 0; tries < 3 * n && out.size() < k; ++tries) {
    const std::uint64_t pick = rng_.Uniform(n);
    const Member& m = slots_[others_all_ ? pick + 1 : others_[pick]];
    if (std::find(out.begin(), out.end(), m.id) != out.end()) continue;
    if (eligible(m)) out.push_back(m.id);
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Building and sending messages.

wire::Message Membership::Impl::Header(wire::Kind kind) const {
  const Member& me = Self();
  wire::Message m;
  m.cluster = config_.cluster_name;
  m.sender = self_id_;
  m.generation = me.generation;
  m.incarnation = me.incarnation;
  m.endpoint = me.endpoint();
  m.app_version = me.app_version;
  m.kind = kind;
  return m;
}

wire::Update Membership::Impl::StateOf(const Member& m, bool with_app) const {
  wire::Update u;
  u.id = m.id;
  u.endpoint = m.endpoint();
  u.generation = m.generation;
  u.incarnation = m.incarnation;
  u.liveness = m.liveness;
  // SUSPECT and DOWN always come with an accuser (SetLiveness).
  u.from = (m.liveness == Liveness::kSuspect || m.liveness == Liveness::kDown) ? ExtraIf(m)->accuser
                                                                               : m.id;
  u.app_version = m.app_version;
  u.has_app = with_app && m.app_version > 0;
  if (u.has_app) u.app = apps_.Get(m.app);
  return u;
}

wire::Digest Membership::Impl::DigestOf(const Member& m) const {
  return wire::Digest{m.id, m.generation, m.incarnation, m.liveness, m.app_version};
}

void Membership::Impl::Push(const Endpoint& to, std::string bytes, bool stream) {
  if (stream) {
    ++counters_.streams_out;
  } else {
    KV_MEMBERSHIP_CHECK(bytes.size() <= DatagramBudget());
    ++counters_.datagrams_out;
  }
  counters_.bytes_out += bytes.size();
  outgoing_.push_back(Outgoing{to, std::move(bytes), stream});
}

bool Membership::Impl::SendDatagram(const Endpoint& to, std::optional<NodeId> to_id,
                                    wire::Message msg, std::vector<wire::Update> forced,
                                    bool require_piggyback) {
  // A recipient this node believes suspect or down hears so first: it refutes at once if it is
  // alive, instead of waiting for the news to reach it by chance.
  if (to_id && *to_id != self_id_) {
    const Member* m = Find(*to_id);
    if (m != nullptr && (m->liveness == Liveness::kSuspect || m->liveness == Liveness::kDown)) {
      const bool already = std::any_of(forced.begin(), forced.end(),
                                       [&](const wire::Update& u) { return u.id == *to_id; });
      if (!already) forced.push_back(StateOf(*m, false));
    }
  }
  msg.updates = std::move(forced);
  msg.removals.clear();
  msg.removal_ages_s.clear();
  const std::size_t forced_count = msg.updates.size();
  std::string bytes = wire::Encode(msg);
  while (bytes.size() > DatagramBudget() && !msg.updates.empty()) {
    msg.updates.pop_back();  // cannot happen with the sizes checked at construction
    bytes = wire::Encode(msg);
  }
  KV_MEMBERSHIP_CHECK(bytes.size() <= DatagramBudget());

  // Pick queued broadcasts by estimated size, then confirm with the real encoding.
  std::size_t budget = DatagramBudget() - bytes.size();
  std::vector<QueuedBroadcast> picked;
  int scanned = 0;
  queue_.ForEach([&](const QueuedBroadcast& e) {
    if (budget < kMinPiggybackBytes || ++scanned > kMaxBroadcastScan) return false;
    if (forced_count > 0 && (e.ref & kRemovalRef) == 0) {
      const NodeId id = slots_[e.ref].id;
      if (std::any_of(msg.updates.begin(), msg.updates.begin() + forced_count,
                      [&](const wire::Update& u) { return u.id == id; })) {
        return true;  // a fresher copy is forced in already
      }
    }
    if (e.cost > budget) return true;
    budget -= e.cost;
    picked.push_back(e);
    return true;
  });
  while (true) {
    msg.updates.resize(forced_count);
    msg.removals.clear();
    msg.removal_ages_s.clear();
    for (const QueuedBroadcast& e : picked) {
      if ((e.ref & kRemovalRef) != 0) {
        const NodeId id = removal_ids_[e.ref & ~kRemovalRef];
        auto t = tombstones_.find(id);
        msg.removals.push_back(id);
        msg.removal_ages_s.push_back(t == tombstones_.end() ? 0 : AgeSeconds(t->second));
      } else {
        const Member& m = slots_[e.ref];
        msg.updates.push_back(StateOf(m, m.bcast_with_app));
      }
    }
    bytes = wire::Encode(msg);
    if (bytes.size() <= DatagramBudget() || picked.empty()) break;
    picked.pop_back();  // the estimate was short: give up the last pick
  }
  KV_MEMBERSHIP_CHECK(bytes.size() <= DatagramBudget());
  if (require_piggyback && picked.empty() && forced_count == 0) return false;

  const int limit = lifeguard::RetransmitLimit(config_.retransmit_mult, N());
  counters_.piggybacked += picked.size();
  for (const QueuedBroadcast& e : picked) {
    queue_.Erase(e);
    const auto transmits = static_cast<int>(TransmitsOf(e.key)) + 1;
    Member* m = (e.ref & kRemovalRef) != 0 ? nullptr : &slots_[e.ref];
    if (transmits >= limit) {
      ++counters_.news_retired;
      if (m != nullptr) m->queued = false;
    } else {
      KV_MEMBERSHIP_CHECK(static_cast<std::uint64_t>(transmits) < kMaxTransmits);
      const std::uint64_t key = e.key + (std::uint64_t{1} << kOrderBits);
      queue_.Insert(QueuedBroadcast{key, e.ref, e.cost});
      if (m != nullptr) m->bcast_key = key;
    }
  }
  Push(to, std::move(bytes), false);
  return true;
}

void Membership::Impl::SendStream(const Endpoint& to, const wire::Message& msg) {
  Push(to, wire::Encode(msg), true);
}

void Membership::Impl::SendPing(const Member& target, std::uint64_t seq) {
  wire::Message msg = Header(wire::Kind::kPing);
  msg.seq_no = seq;
  msg.target = target.id;
  SendDatagram(target.endpoint(), target.id, std::move(msg));
}

void Membership::Impl::SendSyn(const Endpoint& to) {
  wire::Message msg = Header(wire::Kind::kSyn);
  msg.digests.reserve(n_);
  for (std::uint32_t slot : ById()) {
    const Member& m = slots_[slot];
    if (m.liveness != Liveness::kRemoved) msg.digests.push_back(DigestOf(m));
  }
  FillRemovals(&msg);
  SendStream(to, msg);
}

void Membership::Impl::SendJoin(Time now) {
  for (const Endpoint& seed : seeds_) {
    wire::Message ping = Header(wire::Kind::kPing);
    ping.seq_no = next_seq_++;
    ping.any_target = true;
    SendDatagram(seed, std::nullopt, std::move(ping));
    SendSyn(seed);
  }
  next_join_at_ = now + config_.join_retry_interval;
}

// A peer announced an application state newer than the one held, without the state itself (it
// did not fit a datagram): fetch it with a push-pull, at most once per probe interval per peer.
void Membership::Impl::RequestPull(const Endpoint& from, Time now) {
  auto it = last_pull_.find(from);
  if (it != last_pull_.end() && now - it->second < config_.probe_interval) return;
  if (last_pull_.size() > 64) {
    std::erase_if(last_pull_,
                  [&](const auto& e) { return now - e.second >= config_.probe_interval; });
  }
  last_pull_[from] = now;
  SendSyn(from);
}

// ------------------------------------------------------------------------------------------
// Dissemination queue.

// Estimated bytes one update (or tombstone, when u is null) adds to a datagram: the growth of a
// bare datagram when it alone is added. Packing works word by word, so sizes nearly add up; the
// first element also pays for its list, which makes the estimate err on the large side.
std::size_t Membership::Impl::Cost(const wire::Update* u, NodeId removal) const {
  wire::Message msg = Header(wire::Kind::kGossip);
  if (u != nullptr) {
    msg.updates.push_back(*u);
  } else {
    msg.removals.push_back(removal);
    msg.removal_ages_s.push_back(AgeSeconds(Time{0}));  // as large as an age gets here
  }
  const std::size_t size = wire::Encode(msg).size();
  return size > base_bytes_ ? size - base_bytes_ : 1;
}

void Membership::Impl::EnqueueMember(Member& m, bool with_app, bool refutation) {
  // News that replaces a queued application state must carry it on: not everyone has it yet.
  if (m.queued && m.bcast_with_app) with_app = true;
  // Likewise a refutation replaced by news that still says UP (an application change).
  if (m.queued && (m.bcast_key & kClassMask) == kRefuting && m.liveness == Liveness::kUp) {
    refutation = true;
  }
  if (m.queued) ++counters_.news_superseded;
  EraseBroadcast(m);
  ++counters_.news_queued;
  const std::uint64_t order = ++broadcast_order_;
  KV_MEMBERSHIP_CHECK(order < kOrderMask);
  wire::Update u = StateOf(m, with_app);
  bool b_with_app = u.has_app;
  std::size_t cost = Cost(&u, 0);
  if (u.has_app && base_bytes_ + cost > DatagramBudget()) {
    // Too large to piggyback: send the liveness alone; receivers pull the state (RequestPull).
    u = StateOf(m, false);
    b_with_app = false;
    cost = Cost(&u, 0);
  }
  m.queued = true;
  m.bcast_with_app = b_with_app;
  const bool final_news = m.liveness == Liveness::kDown || m.liveness == Liveness::kLeft;
  m.bcast_key = (final_news ? 0 : refutation ? kRefuting : kOrdinary) |
                (kOrderMask - order);  // transmits 0
  queue_.Insert(QueuedBroadcast{m.bcast_key, SlotOf(m.id),
                                static_cast<std::uint32_t>(std::min<std::size_t>(
                                    cost, std::numeric_limits<std::uint32_t>::max()))});
}

// Called once per tombstone (AddTombstone), so a removal is never queued twice.
void Membership::Impl::EnqueueRemoval(NodeId id) {
  const std::uint64_t order = ++broadcast_order_;
  KV_MEMBERSHIP_CHECK(order < kOrderMask && removal_ids_.size() < kRemovalRef);
  const auto ref = static_cast<std::uint32_t>(removal_ids_.size()) | kRemovalRef;
  removal_ids_.push_back(id);
  ++counters_.news_queued;
  queue_.Insert(QueuedBroadcast{kOrdinary | (kOrderMask - order), ref,
                                static_cast<std::uint32_t>(Cost(nullptr, id))});
}

void Membership::Impl::EraseBroadcast(Member& m) {
  if (!m.queued) return;
  queue_.Erase(QueuedBroadcast{m.bcast_key, 0, 0});
  m.queued = false;
}

// ------------------------------------------------------------------------------------------
// Input.

void Membership::Impl::Receive(const Endpoint& from, std::string_view bytes, bool stream,
                               Time now) {
  now_ = now;
  if (stream) {
    ++counters_.streams_in;
  } else {
    ++counters_.datagrams_in;
  }
  counters_.bytes_in += bytes.size();
  if (refused_) return;  // this node is out of the cluster for good
  if (bytes.size() > (stream ? wire::kMaxStreamBytes : config_.max_datagram_bytes)) {
    ++counters_.dropped_oversize;
    return;
  }
  wire::Message msg;
  const auto result =
      wire::Decode(bytes,
                   stream ? wire::kStreamTraversalWords
                          : wire::DatagramTraversalWords(config_.max_datagram_bytes),
                   &msg);
  if (result == wire::DecodeResult::kVersion) {
    ++counters_.dropped_version;
    return;
  }
  if (result != wire::DecodeResult::kOk) {
    ++counters_.dropped_malformed;
    return;
  }
  if (msg.cluster != config_.cluster_name) {
    ++counters_.dropped_cluster;
    return;
  }
  if (tombstones_.count(msg.sender) != 0) {
    ++counters_.dropped_removed;
    wire::Message notice = Header(wire::Kind::kRemovedNotice);
    notice.target = msg.sender;
    Push(msg.endpoint, wire::Encode(notice), false);  // no piggybacks: it is not one of us
    return;
  }
  if (msg.sender == self_id_) {
    ++counters_.dropped_stale;  // our own echo, or another process with this id
    return;
  }
  if (const Member* m = Find(msg.sender); m != nullptr && msg.generation < m->generation) {
    ++counters_.dropped_stale;  // from a previous life of a member that has restarted
    return;
  }
  (void)from;  // replies go to the sender's gossip endpoint: a stream arrives from another port

  joining_ = false;  // somebody in the cluster talks to us
  if (msg.kind == wire::Kind::kRemovedNotice) {
    if (msg.target == self_id_) refused_ = true;
    return;
  }

  // The sender is alive at the (generation, incarnation) it sends with.
  wire::Update claim;
  claim.id = msg.sender;
  claim.endpoint = msg.endpoint;
  claim.generation = msg.generation;
  claim.incarnation = msg.incarnation;
  claim.liveness = Liveness::kUp;
  claim.from = msg.sender;
  ApplyUpdate(claim, msg, now);

  ApplyRemovals(msg, now);
  if (refused_) return;
  for (const wire::Update& u : msg.updates) ApplyUpdate(u, msg, now);
  for (const wire::Update& u : msg.states) ApplyUpdate(u, msg, now);

  // The sender holds a newer application state of its own than we do, and did not send it
  // (it did not fit): fetch it. A push-pull exchange already carries it.
  const bool push_pull = msg.kind == wire::Kind::kSyn || msg.kind == wire::Kind::kSynAck ||
                         msg.kind == wire::Kind::kAck2;
  if (const Member* m = Find(msg.sender); !push_pull && m != nullptr &&
                                          m->generation == msg.generation &&
                                          msg.app_version > m->app_version) {
    RequestPull(msg.endpoint, now);
  }

  switch (msg.kind) {
    case wire::Kind::kPing:
      HandlePing(msg);
      break;
    case wire::Kind::kAck:
      HandleAck(msg, now);
      break;
    case wire::Kind::kNack:
      HandleNack(msg);
      break;
    case wire::Kind::kPingReq:
      HandlePingReq(msg, now);
      break;
    case wire::Kind::kSyn:
      HandleSyn(msg);
      break;
    case wire::Kind::kSynAck:
      HandleSynAck(msg);
      break;
    case wire::Kind::kGossip:
    case wire::Kind::kAck2:
    case wire::Kind::kRemovedNotice:
      break;
  }
}

// Merges one claim about a member. Liveness and application state are ordered separately:
// (generation, incarnation, rank) and (generation, app_version). Anything older is ignored;
// anything newer is taken and queued for re-gossip.
void Membership::Impl::ApplyUpdate(const wire::Update& u, const wire::Message& via, Time now) {
  if (tombstones_.count(u.id) != 0) return;  // a removed id never comes back
  if (u.id == self_id_) {
    ApplyClaimAboutSelf(u, via);
    return;
  }
  Member* found = Find(u.id);
  if (found == nullptr) {
    if (auto g = ghosts_.find(u.id); g != ghosts_.end()) {
      if (Refuses(g->second, u.generation, u.incarnation, u.app_version)) {
        ++counters_.dropped_forgotten;  // stale news of a member forgotten here
        return;
      }
      ghosts_.erase(g);  // a new life, or news from the member itself: it is back
    }
    Member fresh;
    fresh.id = u.id;
    fresh.set_endpoint(u.endpoint);
    fresh.generation = u.generation;
    fresh.incarnation = u.incarnation;
    fresh.liveness = Liveness::kUp;
    if (u.has_app) fresh.app_version = u.app_version;
    Member& m = Add(std::move(fresh));
    if (u.has_app) SetApp(m, u.app);
    if (!others_all_) AppendSlot(others_, static_cast<std::uint32_t>(slots_.size() - 1));
    ++n_;
    if (u.liveness != Liveness::kUp) SetLiveness(m, u.liveness, u.from, now);
    EnqueueMember(m, u.has_app);
    if (!u.has_app && u.app_version > 0) RequestPull(via.endpoint, now);
    return;
  }
  Member& m = *found;
  if (m.liveness == Liveness::kRemoved) return;  // (also kept out by the tombstone check above)
  if (u.generation < m.generation) return;       // a previous life
  bool changed = false;
  bool app_changed = false;
  bool refutation = false;
  if (u.generation > m.generation) {
    // A restart: a new life replaces the old one whatever state that was in. The old
    // application state stays on show (so the ring does not lose the node's tokens while the
    // new state is on its way) but counts as not held (app_version 0).
    m.generation = u.generation;
    m.set_endpoint(u.endpoint);
    m.incarnation = u.incarnation;
    m.app_version = 0;
    if (Extra* x = ExtraIf(m)) x->phi = PhiAccrual();
    if (m.liveness == Liveness::kSuspect) SetLiveness(m, Liveness::kUp, u.from, now);
    SetLiveness(m, u.liveness, u.from, now);
    changed = true;
  } else if (m.liveness == Liveness::kLeft) {
    // LEFT is final within a generation: only a new life brings the member back. A leaving
    // member that outbid an accusation stays LEFT at its newer incarnation.
    if (u.liveness == Liveness::kLeft && u.incarnation > m.incarnation) {
      m.incarnation = u.incarnation;
      changed = true;
    }
  } else if (std::pair(u.incarnation, Rank(u.liveness)) >
             std::pair(m.incarnation, Rank(m.liveness))) {
    if (m.liveness == Liveness::kSuspect && u.liveness == Liveness::kSuspect) {
      // Suspected again at a newer incarnation: the running timer stands.
      m.incarnation = u.incarnation;
      Confirm(m, u.from);
      ExtraIf(m)->accuser = u.from;
    } else {
      // Within a life only an accusation makes a member bump its incarnation: an UP claim at a
      // higher one is a refutation, wherever it finds us (we may not have heard the accusation,
      // others have).
      refutation = u.liveness == Liveness::kUp && u.incarnation > m.incarnation;
      m.incarnation = u.incarnation;
      SetLiveness(m, u.liveness, u.from, now);
    }
    changed = true;
  } else if (u.liveness == Liveness::kSuspect && m.liveness == Liveness::kSuspect &&
             u.incarnation == m.incarnation) {
    // An independent confirmation shortens the timeout, and is passed on once.
    if (Confirm(m, u.from)) {
      ExtraIf(m)->accuser = u.from;
      changed = true;
    }
  }
  if (u.has_app && u.app_version > m.app_version) {
    SetApp(m, u.app);
    m.app_version = u.app_version;
    changed = app_changed = true;
  } else if (!u.has_app && u.app_version > m.app_version) {
    RequestPull(via.endpoint, now);
  }
  if (changed) EnqueueMember(m, app_changed, refutation);
}

// Claims about this node: an accusation at the current incarnation or later is refuted by
// outbidding it; anything older, or about another life of this id, is ignored.
void Membership::Impl::ApplyClaimAboutSelf(const wire::Update& u, const wire::Message& via) {
  Member& me = Self();
  // Another life of this id is known elsewhere: a later generation, or this generation with a
  // dot life this run never had (0: a node that does not know the field). This node runs on a data directory restored from an older copy, or another
  // process has its id. Everyone would ignore it as a previous life, or mix its state with the
  // other's: it takes a generation above that one, and says so (ClusterView::self_restored).
  const bool later = u.generation > me.generation;
  const bool other_life =
      u.generation == me.generation && u.has_app && u.app.dots_life != 0 &&
      std::find(own_dots_lives_.begin(), own_dots_lives_.end(), u.app.dots_life) ==
          own_dots_lives_.end();
  if (later || other_life) {
    self_restored_ = true;
    ++counters_.generation_raises;
    me.generation = u.generation + 1;
    me.incarnation = 0;
    base_bytes_ = wire::Encode(Header(wire::Kind::kGossip)).size();
    EnqueueMember(me, true);
    SendDatagram(via.endpoint, via.sender, Header(wire::Kind::kGossip), {StateOf(me, false)});
    return;
  }
  if (u.generation != me.generation || u.incarnation < me.incarnation) return;
  const bool accused = u.liveness == Liveness::kSuspect || u.liveness == Liveness::kDown ||
                       (u.liveness == Liveness::kLeft && !left_);
  if (accused || u.incarnation > me.incarnation) Refute(u.incarnation, accused, via);
}

void Membership::Impl::Refute(std::uint64_t at_least, bool accused, const wire::Message& via) {
  Member& me = Self();
  me.incarnation = std::max(me.incarnation, at_least) + 1;
  // Lifeguard: being suspected is a hint that this node is the slow one.
  if (accused) {
    health_ = lifeguard::ApplyHealthDelta(health_, 1, config_.awareness_max);
    ++counters_.refutations;
  }
  EnqueueMember(me, false, /*refutation=*/accused);
  // Answer the accuser directly: it learns at once, and spreads the refutation with its own.
  SendDatagram(via.endpoint, via.sender, Header(wire::Kind::kGossip), {StateOf(me, false)});
}

void Membership::Impl::ApplyRemovals(const wire::Message& m, Time now) {
  for (std::size_t i = 0; i < m.removals.size(); ++i) {
    const NodeId id = m.removals[i];
    const Duration age =
        std::chrono::seconds(m.removal_ages_s.empty() ? 0 : m.removal_ages_s[i]);
    // Expired where it comes from, or it would be here: not taken back (it was dropped here,
    // or this node never needed it). Its own removal still refuses this node.
    if (id != self_id_ && config_.removed_ttl > Duration(0) && age >= config_.removed_ttl) {
      continue;
    }
    if (id == self_id_) {
      refused_ = true;
    } else {
      AddTombstone(id, now - age, /*age_known=*/!m.removal_ages_s.empty());
    }
  }
}

void Membership::Impl::HandlePing(const wire::Message& m) {
  if (!m.any_target && m.target != self_id_) return;  // meant for an earlier owner of the address
  wire::Message ack = Header(wire::Kind::kAck);
  ack.seq_no = m.seq_no;
  SendDatagram(m.endpoint, m.sender, std::move(ack));
}

void Membership::Impl::HandleAck(const wire::Message& m, Time now) {
  if (probe_.active && m.seq_no == probe_.seq) {
    if (probe_.acked) return;
    probe_.acked = true;
    health_ = lifeguard::ApplyHealthDelta(health_, -1, config_.awareness_max);
    if (Member* target = Find(probe_.target)) ExtraOf(*target).phi.Arrival(now);
    return;
  }
  auto r = relays_.find(m.seq_no);
  if (r == relays_.end()) return;  // late, or for a join ping
  wire::Message ack = Header(wire::Kind::kAck);
  ack.seq_no = r->second.requester_seq;
  const Endpoint to = r->second.requester;
  relays_.erase(r);
  SendDatagram(to, std::nullopt, std::move(ack));
}

void Membership::Impl::HandleNack(const wire::Message& m) {
  if (!probe_.active || probe_.acked || m.seq_no != probe_.seq) return;
  if (std::find(probe_.nackers.begin(), probe_.nackers.end(), m.sender) == probe_.nackers.end()) {
    probe_.nackers.push_back(m.sender);
  }
}

void Membership::Impl::HandlePingReq(const wire::Message& m, Time now) {
  if (m.target == self_id_) {  // asked to probe ourselves: we are the answer
    wire::Message ack = Header(wire::Kind::kAck);
    ack.seq_no = m.seq_no;
    SendDatagram(m.endpoint, m.sender, std::move(ack));
    return;
  }
  if (tombstones_.count(m.target) != 0 || relays_.size() >= kMaxRelays) return;
  const std::uint64_t seq = next_seq_++;
  relays_[seq] = Relay{m.endpoint, m.seq_no, now + NackDelay(config_)};
  wire::Message ping = Header(wire::Kind::kPing);
  ping.seq_no = seq;
  ping.target = m.target;
  SendDatagram(m.target_endpoint, m.target, std::move(ping));
}

// SYN: answer with the states the sender lacks or holds older, and ask for those it holds newer.
void Membership::Impl::HandleSyn(const wire::Message& m) {
  wire::Message ack = Header(wire::Kind::kSynAck);
  // Their digests by id, the first of any duplicates.
  std::vector<const wire::Digest*> theirs;
  theirs.reserve(m.digests.size());
  for (const wire::Digest& d : m.digests) theirs.push_back(&d);
  auto by_id = [](const wire::Digest* a, const wire::Digest* b) { return a->id < b->id; };
  std::stable_sort(theirs.begin(), theirs.end(), by_id);
  theirs.erase(
      std::unique(theirs.begin(), theirs.end(),
                  [](const wire::Digest* a, const wire::Digest* b) { return a->id == b->id; }),
      theirs.end());
  for (const wire::Digest* d : theirs) {
    if (tombstones_.count(d->id) != 0) continue;  // they learn of the removal from ack.removals
    const Member* found = Find(d->id);
    if (found == nullptr) {
      auto g = ghosts_.find(d->id);
      if (g != ghosts_.end() && Refuses(g->second, d->generation, d->incarnation, d->app_version)) {
        // They still hold a life forgotten here: tell them how it ended, so they forget it too.
        ++counters_.dropped_forgotten;
        ack.states.push_back(GhostState(d->id, g->second));
      } else {
        ack.digests.push_back(*d);
      }
      continue;
    }
    const Member& mine = *found;
    bool mine_newer = false;
    bool theirs_newer = false;
    if (mine.generation != d->generation) {
      (mine.generation > d->generation ? mine_newer : theirs_newer) = true;
    } else {
      const auto a = std::pair(mine.incarnation, Rank(mine.liveness));
      const auto b = std::pair(d->incarnation, Rank(d->liveness));
      if (a > b) mine_newer = true;
      if (b > a) theirs_newer = true;
      if (mine.app_version > d->app_version) mine_newer = true;
      if (d->app_version > mine.app_version) theirs_newer = true;
    }
    // The sender's own state at its generation goes back to it too: a node started on a restored
    // copy of its directory learns of the life its id lived on with (ApplyClaimAboutSelf).
    const bool of_sender = d->id == m.sender && mine.generation == d->generation;
    if (mine_newer || of_sender) ack.states.push_back(StateOf(mine, true));
    if (theirs_newer) ack.digests.push_back(DigestOf(mine));
  }
  for (std::uint32_t slot : ById()) {
    const Member& mine = slots_[slot];
    auto pos = std::lower_bound(theirs.begin(), theirs.end(), mine.id,
                                [](const wire::Digest* d, NodeId id) { return d->id < id; });
    const bool they_have = pos != theirs.end() && (*pos)->id == mine.id;
    if (mine.liveness != Liveness::kRemoved && !they_have) {
      ack.states.push_back(StateOf(mine, true));
    }
  }
  FillRemovals(&ack);
  SendStream(m.endpoint, ack);
}

// ACK: its states were merged by Receive; now send what it asked for.
void Membership::Impl::HandleSynAck(const wire::Message& m) {
  synced_ = true;  // its states were applied before this handler runs
  wire::Message ack2 = Header(wire::Kind::kAck2);
  for (const wire::Digest& d : m.digests) {
    const Member* mine = Find(d.id);
    if (mine == nullptr || mine->liveness == Liveness::kRemoved) continue;
    ack2.states.push_back(StateOf(*mine, true));
  }
  if (!ack2.states.empty()) SendStream(m.endpoint, ack2);
}

// ------------------------------------------------------------------------------------------
// Timers.

void Membership::Impl::Tick(Time now) {
  now_ = now;
  if (refused_) return;
  if (now >= next_sweep_at_) Sweep(now);
  // Ping-req relays whose target stayed silent: tell the requester we tried.
  while (!relays_.empty() && relays_.begin()->second.nack_at <= now) {
    wire::Message nack = Header(wire::Kind::kNack);
    nack.seq_no = relays_.begin()->second.requester_seq;
    const Endpoint to = relays_.begin()->second.requester;
    relays_.erase(relays_.begin());
    SendDatagram(to, std::nullopt, std::move(nack));
  }

  if (probe_.active && !probe_.acked && !probe_.indirect_sent && now >= probe_.indirect_at &&
      now < probe_.end_at) {
    SendPingReqs();
  }
  if (probe_.active && now >= probe_.end_at) FinishProbe(now);
  if (!probe_.active && now >= next_probe_at_) StartProbe(now);

  // Suspicions open for long: ask the suspect itself (suspicion_checks_).
  while (!suspicion_checks_.empty() && suspicion_checks_.front().at <= now) {
    const Deadline due = suspicion_checks_.front();
    suspicion_checks_.Erase(due);
    Member& m = At(due.id);
    Suspicion& s = *SuspicionOf(m);
    if (--s.checks_left > 0) {
      s.check_at =
          s.start + s.min * (kSuspicionChecks + 2 - s.checks_left) / (2 * kSuspicionChecks);
      suspicion_checks_.Insert(Deadline{s.check_at, m.id});
    }
    ++counters_.suspicion_checks;
    SendPing(m, next_seq_++);  // no probe waits for its ack: its header is the answer
  }

  // Unrefuted suspicions become DOWN (each removes its own entry from the set).
  while (!suspicion_deadlines_.empty() && suspicion_deadlines_.front().at <= now) {
    Member& m = At(suspicion_deadlines_.front().id);
    ++counters_.suspicions_expired;
    SetLiveness(m, Liveness::kDown, self_id_, now);
    EnqueueMember(m, false);
  }

  if (config_.gossip_interval > Duration(0) && now >= next_gossip_at_) {
    GossipRound(now);
    next_gossip_at_ = now + config_.gossip_interval;
  }
  if (config_.push_pull_interval > Duration(0) && now >= next_push_pull_at_) {
    PushPullRound();
    next_push_pull_at_ = now + lifeguard::PushPullInterval(config_.push_pull_interval, N());
  }
  if ((joining_ || !synced_) && now >= next_join_at_) SendJoin(now);
}

void Membership::Impl::StartProbe(Time now) {
  next_probe_at_ = now + lifeguard::ScaleByHealth(config_.probe_interval, health_);
  if (left_) return;  // a leaving node accuses nobody
  const std::optional<NodeId> target = NextProbeTarget();
  if (!target) return;
  probe_ = Probe{};
  probe_.active = true;
  probe_.target = *target;
  probe_.seq = next_seq_++;
  probe_.indirect_at = now + lifeguard::ScaleByHealth(config_.probe_timeout, health_);
  probe_.end_at = next_probe_at_;
  SendPing(At(*target), probe_.seq);
}

// Randomized round-robin: every probe-able member once per round, in a fresh random order each
// round, so each is probed within 2N - 1 periods at worst (SWIM section 4.3).
std::optional<NodeId> Membership::Impl::NextProbeTarget() {
  for (int pass = 0; pass < 2; ++pass) {
    while (probe_index_ < probe_list_.size()) {
      const Member& m = slots_[probe_list_[probe_index_++]];
      if (Probeable(m.liveness)) return m.id;
    }
    probe_list_.clear();
    probe_list_.reserve(n_);
    probe_index_ = 0;
    for (std::uint32_t slot : ById()) {
      if (slot != 0 && Probeable(slots_[slot].liveness)) probe_list_.push_back(slot);
    }
    rng_.Shuffle(probe_list_);
  }
  return std::nullopt;
}

void Membership::Impl::SendPingReqs() {
  probe_.indirect_sent = true;
  const Member& target = At(probe_.target);
  const std::vector<NodeId> helpers = RandomMembers(
      static_cast<std::size_t>(config_.indirect_probes),
      [&](const Member& m) { return m.id != probe_.target && m.liveness == Liveness::kUp; });
  probe_.expected_nacks = static_cast<int>(helpers.size());
  for (NodeId id : helpers) {
    wire::Message req = Header(wire::Kind::kPingReq);
    req.seq_no = probe_.seq;
    req.target = target.id;
    req.target_endpoint = target.endpoint();
    SendDatagram(At(id).endpoint(), id, std::move(req));
  }
  // Same seq: an ack to either ping ends the probe.
  if (config_.retry_direct_probe) SendPing(target, probe_.seq);
}

void Membership::Impl::FinishProbe(Time now) {
  probe_.active = false;
  if (probe_.acked) return;
  Member* target = Find(probe_.target);
  if (target == nullptr || !Probeable(target->liveness)) return;
  // Lifeguard: missing nacks mean this node's own network or scheduling is the problem; with
  // nobody to ask, any failed probe counts against it.
  int delta = 1;
  if (probe_.expected_nacks > 0) {
    delta = std::max(0, probe_.expected_nacks - static_cast<int>(probe_.nackers.size()));
  }
  health_ = lifeguard::ApplyHealthDelta(health_, delta, config_.awareness_max);
  SuspectLocally(*target, now);
}

void Membership::Impl::SuspectLocally(Member& m, Time now) {
  if (m.liveness == Liveness::kUp) {
    SetLiveness(m, Liveness::kSuspect, self_id_, now);
    EnqueueMember(m, false);
    // Tell the suspect at once (a datagram to a suspect carries its suspicion first): if it is
    // alive it refutes straight back to us, without waiting for the news to reach it through
    // piggyback queues that may be full.
    SendDatagram(m.endpoint(), m.id, Header(wire::Kind::kGossip));
  } else if (m.liveness == Liveness::kSuspect && Confirm(m, self_id_)) {
    ExtraIf(m)->accuser = self_id_;
    EnqueueMember(m, false);
  }
}

void Membership::Impl::GossipRound(Time now) {
  if (queue_.empty()) return;
  const std::vector<NodeId> targets =
      RandomMembers(static_cast<std::size_t>(config_.gossip_fanout), [&](const Member& m) {
        if (Probeable(m.liveness)) return true;
        return (m.liveness == Liveness::kDown || m.liveness == Liveness::kLeft) &&
               now - ExtraIf(m)->since < config_.gossip_to_dead;
      });
  for (NodeId id : targets) {
    if (!SendDatagram(At(id).endpoint(), id, Header(wire::Kind::kGossip), {}, true)) break;
  }
}

void Membership::Impl::PushPullRound() {
  const auto up = RandomMembers(1, [](const Member& m) { return m.liveness == Liveness::kUp; });
  if (!up.empty()) SendSyn(At(up[0]).endpoint());
  // Reconnect: also sync with one member believed DOWN. After a partition heals, both sides
  // hold the other DOWN and nobody probes DOWN members; this is how they find each other again.
  const auto down = RandomMembers(1, [](const Member& m) { return m.liveness == Liveness::kDown; });
  if (!down.empty()) SendSyn(At(down[0]).endpoint());
  // Nobody else is UP: go back to the seeds.
  if (up.empty() && !seeds_.empty()) SendSyn(seeds_[rng_.Uniform(seeds_.size())]);
}

Time Membership::Impl::NextDeadline() const {
  if (refused_) return Time::max();
  Time t = next_probe_at_;
  if (probe_.active) {
    t = std::min(t, probe_.end_at);
    if (!probe_.acked && !probe_.indirect_sent) t = std::min(t, probe_.indirect_at);
  }
  if (!suspicion_deadlines_.empty()) t = std::min(t, suspicion_deadlines_.front().at);
  if (!suspicion_checks_.empty()) t = std::min(t, suspicion_checks_.front().at);
  if (config_.gossip_interval > Duration(0)) t = std::min(t, next_gossip_at_);
  if (config_.push_pull_interval > Duration(0)) t = std::min(t, next_push_pull_at_);
  if (joining_ || !synced_) t = std::min(t, next_join_at_);
  if (!relays_.empty()) t = std::min(t, relays_.begin()->second.nack_at);
  return std::min(t, next_sweep_at_);
}

// ------------------------------------------------------------------------------------------
// The public face.

Membership::Membership(Config config, NodeId self, Endpoint gossip, std::uint64_t generation,
                       AppState app, std::uint64_t seed, Time now)
    : impl_(std::make_unique<Impl>(std::move(config), self, gossip, generation, std::move(app),
                                   seed, now)) {}

Membership::~Membership() = default;

void Membership::Join(const std::vector<Endpoint>& seeds, Time now) {
  Impl& s = *impl_;
  if (s.refused_) return;
  s.seeds_.clear();
  for (const Endpoint& e : seeds) {
    if (e != s.Self().endpoint() &&
        std::find(s.seeds_.begin(), s.seeds_.end(), e) == s.seeds_.end()) {
      s.seeds_.push_back(e);
    }
  }
  s.joining_ = !s.seeds_.empty();
  if (s.joining_) {
    s.synced_ = false;
    s.SendJoin(now);
  }
}

bool Membership::synced() const { return impl_->synced_; }

void Membership::Receive(const Endpoint& from, std::string_view bytes, bool stream, Time now) {
  impl_->Receive(from, bytes, stream, now);
}

void Membership::Tick(Time now) { impl_->Tick(now); }

std::vector<Outgoing> Membership::TakeOutgoing() {
  std::vector<Outgoing> out;
  out.swap(impl_->outgoing_);
  return out;
}

Time Membership::NextDeadline() const { return impl_->NextDeadline(); }

void Membership::UpdateApp(const AppState& app, Time /*now*/) {
  Impl& s = *impl_;
  Impl::Member& me = s.Self();
  AppState sorted = app;
  std::sort(sorted.tokens.begin(), sorted.tokens.end());
  s.SetApp(me, sorted);
  s.NoteOwnDotsLife(sorted.dots_life);
  ++me.app_version;
  s.EnqueueMember(me, true);
}

void Membership::Leave(Time now) {
  Impl& s = *impl_;
  if (s.left_ || s.refused_) return;
  s.left_ = true;
  s.probe_.active = false;
  Impl::Member& me = s.Self();
  ++me.incarnation;
  me.liveness = Liveness::kLeft;
  s.ExtraOf(me).since = now;
  AppState app = s.apps_.Get(me.app);
  app.state = NodeState::kLeft;
  s.SetApp(me, app);
  ++me.app_version;
  s.EnqueueMember(me, true);
  s.GossipRound(now);  // start spreading the news now rather than at the next round
}

bool Membership::Remove(NodeId id, Time now) {
  Impl& s = *impl_;
  s.now_ = now;
  if (id == s.self_id_) return false;
  const Impl::Member* m = s.Find(id);
  if (m == nullptr || m->liveness == Liveness::kUp || m->liveness == Liveness::kRemoved) {
    return false;
  }
  s.AddTombstone(id, now);
  return true;
}

void Membership::RestoreMembers(const std::vector<MemberView>& members, Time now) {
  Impl& s = *impl_;
  for (const MemberView& v : members) {
    if (v.id == s.self_id_ || s.tombstones_.count(v.id) != 0 || s.Find(v.id) != nullptr ||
        v.liveness == Liveness::kRemoved) {
      continue;
    }
    if (auto g = s.ghosts_.find(v.id);
        g != s.ghosts_.end() &&
        Impl::Refuses(g->second, v.generation, v.incarnation, v.app_version)) {
      continue;
    }
    Impl::Member fresh;
    fresh.id = v.id;
    fresh.set_endpoint(v.gossip);
    fresh.generation = v.generation;
    fresh.incarnation = v.incarnation;
    fresh.app_version = v.app_version;
    Impl::Member& m = s.Add(std::move(fresh));
    if (!s.others_all_) AppendSlot(s.others_, static_cast<std::uint32_t>(s.slots_.size() - 1));
    ++s.n_;
    if (v.app_version > 0) s.SetApp(m, v.app);
    if (v.liveness != Liveness::kUp) s.SetLiveness(m, v.liveness, s.self_id_, now);
  }
}

void Membership::RestoreRemoved(const std::vector<NodeId>& ids,
                                const std::vector<std::uint32_t>& ages_s) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const bool known = i < ages_s.size();
    const Duration age = std::chrono::seconds(known ? ages_s[i] : 0);
    if (impl_->config_.removed_ttl.count() > 0 && age >= impl_->config_.removed_ttl) continue;
    impl_->AddTombstone(ids[i], impl_->created_at_ - age, known);
  }
}

std::vector<std::uint32_t> Membership::RemovedAges() const {
  std::vector<std::uint32_t> ages;
  ages.reserve(impl_->tombstones_.size());
  for (const auto& [id, since] : impl_->tombstones_) ages.push_back(impl_->AgeSeconds(since));
  return ages;
}

std::vector<NodeId> Membership::Removed() const {
  std::vector<NodeId> ids;
  ids.reserve(impl_->tombstones_.size());
  for (const auto& [id, since] : impl_->tombstones_) ids.push_back(id);
  return ids;
}

bool Membership::refused() const { return impl_->refused_; }

namespace {

// What View shows of one member, without the application state.
template <typename I, typename M>
void FillView(const I& s, const M& m, Time now, MemberView* v) {
  v->id = m.id;
  v->gossip = m.endpoint();
  v->generation = m.generation;
  v->incarnation = m.incarnation;
  v->liveness = m.liveness;
  v->app_version = m.app_version;
  const auto* x = s.ExtraIf(m);
  v->phi = x == nullptr ? 0 : x->phi.Phi(now);
}

}  // namespace

ClusterView Membership::View(Time now) const {
  const Impl& s = *impl_;
  ClusterView view;
  view.self = s.self_id_;
  view.synced = s.synced_;
  view.self_restored = s.self_restored_;
  view.members.reserve(s.slots_.size());
  for (std::uint32_t slot : s.ById()) {
    const Impl::Member& m = s.slots_[slot];
    MemberView v;
    FillView(s, m, now, &v);
    v.app = s.apps_.Get(m.app);
    view.members.push_back(std::move(v));
  }
  return view;
}

std::optional<MemberView> Membership::Lookup(NodeId id, Time now) const {
  const Impl::Member* m = impl_->Find(id);
  if (m == nullptr) return std::nullopt;
  MemberView v;
  FillView(*impl_, *m, now, &v);
  v.app = impl_->apps_.Get(m->app);
  return v;
}

void Membership::ForEachMember(Time now, const std::function<bool(const MemberView&)>& f) const {
  const Impl& s = *impl_;
  MemberView v;
  for (std::uint32_t slot : s.ById()) {
    FillView(s, s.slots_[slot], now, &v);
    if (!f(v)) return;
  }
}

const Counters& Membership::counters() const { return impl_->counters_; }

TableStats Membership::table_stats() const {
  return TableStats{impl_->slots_.size(), impl_->tombstones_.size(), impl_->ghosts_.size()};
}

QueueStats Membership::queue_stats() const {
  QueueStats q;
  q.depth = impl_->queue_.size();
  impl_->queue_.ForEach([&](const QueuedBroadcast& e) {
    const std::uint64_t transmits = Impl::TransmitsOf(e.key);
    q.unsent += transmits == 0;
    q.transmits += transmits;
    return true;
  });
  return q;
}

}  // namespace kv::membership
