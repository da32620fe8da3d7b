// Membership: the pure SWIM + Lifeguard + gossip state machine of one node.
//
// It decides who is UP, SUSPECT, DOWN, LEFT or removed, and spreads every member's application
// state (tokens, status, rack, RPC address, load) through the cluster. It owns no socket, no
// clock and no global random source: time comes in as arguments, randomness from the seed given
// at construction, and every message to send comes out of TakeOutgoing(). The same code runs
// behind real UDP/TCP sockets in kvd (membership/asio_transport.h) and in the deterministic
// simulator (tests/sim/).
//
// Protocol (see ../shared/DESIGN.md, "Membership"):
//   - SWIM: every probe interval, probe one member in randomized round-robin order; no ack within
//     the probe timeout, ask k others to probe it (ping-req); still nothing by the end of the
//     interval, suspect it. Suspicion carries the member's incarnation; the member refutes by
//     bumping its incarnation. Unrefuted suspicion becomes DOWN.
//   - Lifeguard: a local health score (0..awareness_max) that grows on missed acks / nacks and
//     shrinks on successful probes stretches this node's own probe interval and timeout;
//     suspicion timeouts start at max and shrink as independent members confirm the suspicion.
//   - Dissemination: updates ride on probes and acks, each retransmitted about
//     retransmit_mult * log(N+1) times, packed into datagrams of at most max_datagram_bytes.
//   - Push-pull: every push_pull_interval, a digest exchange with one random member in
//     Cassandra's SYN/ACK/ACK2 shape (digests of (id, generation, version)), carried as
//     "stream" messages (TCP in kvd) since it can exceed one datagram.
//   - Phi accrual per peer from ack inter-arrival times, shown by `kvtool status`.
//   - Generation: a restarted node comes back with a higher generation and is a new life of the
//     same id; old generations and old incarnations are ignored.
//   - Removal: Remove(id) turns a member into a tombstone (its id alone) that is gossiped with
//     every push-pull; a removed id that shows up again, in any generation, is told so (it sees
//     refused() become true) and ignored. A tombstone expires removed_ttl after the removal, at
//     most max_tombstones are kept (the oldest dropped first); Removed() shrinks with them, so
//     the list kvd persists does too. Tombstones travel with their age (whole seconds,
//     rounded up) and every node keeps the age it first heard, so all drop one at about the
//     same moment (taking the oldest instead aged it with every round trip), and one that arrives
//     already expired is not taken: an expired tombstone does not bounce back from a node that
//     learnt it later. Restored tombstones keep their age: kvd persists each removed id with
//     its removal time by the wall clock (RemovedAges), so a node that was down across the
//     moment of expiry drops it at start like the others (a clock that moved back keeps it
//     longer, never shorter). After that the id is a stranger again: a node coming
//     back with it is taken as a new member, with whatever tokens it announces. The ttl
//     (30 days) is far beyond how long news of a removal is in flight (seconds by piggyback,
//     push_pull_interval by push-pull) and beyond any partition the cluster is meant to ride
//     out; a removed node's data directory must not be started again after it.
//   - Forgetting (Cassandra's expire time, memberlist's reclaim of dead nodes): a member gone
//     from the ring for forget_after is dropped from the tables: REMOVED, LEFT, and DOWN with
//     no ring tokens or with state left (topology.h's Gone()). A DOWN member that owns tokens
//     is never forgotten: it still owns its ranges (hints, repair) until it is removed; nor is
//     an UP or SUSPECT one. A forgotten REMOVED member leaves only its tombstone; a forgotten
//     LEFT or DOWN one leaves a ghost (id, endpoint, generation, incarnation, app version),
//     kept for ghost_ttl, at most max_ghosts (the oldest dropped first), so that stale gossip
//     from a member that has not forgotten it (one partitioned away) cannot bring it back
//     (Cassandra's quarantine): a claim about a ghost's id is refused unless it is of a later
//     generation (a new life) or of the same generation at a higher incarnation or app version
//     (news only the member itself can make: it is alive after all). A push-pull digest that
//     names a ghost's old life is answered with the ghost's state (LEFT, or DOWN), so the
//     stale member learns the end it missed and forgets the member in turn. After ghost_ttl a
//     stale claim is news again: a member partitioned away for longer than that brings back
//     what it last saw of the forgotten member (as Cassandra does past its expire time), which
//     stays until removed, or is forgotten again if gone from the ring.
//
// Wire: Cap'n Proto messages (membership/gossip.capnp), packed, with a version and the cluster
// name. A datagram that does not decode, is larger than max_datagram_bytes, has an unknown
// version or names another cluster is dropped and counted in counters(), never trusted.
//
// Thread-compatible: one owner thread calls everything. View() returns an immutable snapshot
// that may be handed to other threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kv::membership {

using NodeId = std::uint64_t;
// Time since an arbitrary epoch of the caller's monotonic clock (or the simulator's clock).
using Duration = std::chrono::microseconds;
using Time = std::chrono::microseconds;

// An IPv4 UDP/TCP endpoint. Membership traffic is IPv4 only (loopback and test namespaces).
struct Endpoint {
  std::uint32_t ip = 0;  // host byte order: 127.0.0.1 is 0x7f000001
  std::uint16_t port = 0;
  auto operator<=>(const Endpoint&) const = default;
};
std::string ToString(const Endpoint& e);                // "127.0.0.1:7946"
bool ParseEndpoint(std::string_view s, Endpoint* out);  // numeric IPv4 only

// What the failure detector says of a member.
enum class Liveness : std::uint8_t { kUp, kSuspect, kDown, kLeft, kRemoved };
const char* Name(Liveness l);  // "UP", "SUSPECT", "DOWN", "LEFT", "REMOVED"

// What the member says of itself (part of its application state).
enum class NodeState : std::uint8_t { kJoining, kNormal, kLeaving, kLeft };
const char* Name(NodeState s);  // "joining", "normal", "leaving", "left"

// Application state a member gossips about itself. Versioned as a whole: every change bumps
// the member's app version, and the highest (generation, version) wins everywhere.
struct AppState {
  std::vector<std::uint64_t> tokens;  // ring tokens, sorted
  NodeState state = NodeState::kJoining;
  std::string rack;
  std::string rpc_address;       // "HOST:PORT" of the client API
  std::uint64_t load_bytes = 0;  // approximate data size
  // Ring movements this member drives (membership/topology.h says how every node reads them):
  // joining in place of this dead member (kvd --replace); 0 for a plain join.
  std::uint64_t replaces = 0;
  // Re-replicating this dead member's ranges before it is removed (kvtool removenode).
  std::uint64_t removing = 0;
  // The movement this member drives has copied every range: reads use the replicas after it.
  bool reads_new = false;
  // The life of the dots its store issues (storage/dots.h); 0: unknown. Lets a restarted node
  // tell whether its id lived on elsewhere after its last clean stop (ClusterView).
  std::uint64_t dots_life = 0;
  bool operator==(const AppState&) const = default;
};

struct MemberView {
  NodeId id = 0;
  Endpoint gossip;
  std::uint64_t generation = 0;
  std::uint64_t incarnation = 0;
  Liveness liveness = Liveness::kUp;
  AppState app;
  std::uint64_t app_version = 0;
  double phi = 0;  // phi accrual suspicion of this peer as seen locally; 0 for self
};

// An immutable snapshot of what this node believes, sorted by id, self included.
struct ClusterView {
  NodeId self = 0;
  // False after Join(seeds) until a peer has answered a push-pull with its full state: until
  // then the view may be partial, and the node must not coordinate from it.
  bool synced = true;
  // Another life of this node's id was seen elsewhere, at a later generation or at this one with
  // another dot life (its data directory was restored from an older copy, or another process
  // runs with its id): it raised its generation above that one, shown in its own member entry.
  // Its store must not resume anything of an earlier life.
  bool self_restored = false;
  std::vector<MemberView> members;
  const MemberView* Find(NodeId id) const;
};

// Every knob, with LAN defaults (memberlist's DefaultLANConfig, Cassandra's gossip interval).
struct Config {
  std::string cluster_name = "kv";
  Duration probe_interval = std::chrono::milliseconds(1000);
  Duration probe_timeout = std::chrono::milliseconds(500);
  int indirect_probes = 3;  // k members asked to ping-req
  // With the ping-reqs, ping the target directly once more (memberlist sends a TCP ping
  // alongside its indirect probes). With independent loss p per datagram, the direct path then
  // fails with (1-(1-p)^2)^2 instead of 1-(1-p)^2: at p = 10% about five times fewer false
  // suspicions, each of which costs every node of the cluster a suspicion and a refutation to
  // piggyback, for one more datagram per failed first ping.
  bool retry_direct_probe = true;
  int gossip_fanout = 3;  // members each gossip round sends to
  Duration gossip_interval = std::chrono::milliseconds(200);
  int retransmit_mult = 4;     // lambda: each update is sent about lambda*log(N+1) times
  int suspicion_mult = 4;      // suspicion timeout floor = mult * log10(max(N,10)) * interval
  int suspicion_max_mult = 6;  // suspicion timeout starts at max_mult * floor
  int awareness_max = 8;       // Lifeguard local health score ceiling
  Duration push_pull_interval = std::chrono::seconds(30);
  std::size_t max_datagram_bytes = 1400;
  // Bytes the transport adds to each datagram it sends (sealing: gossip_seal.h). This node packs
  // its datagrams to max_datagram_bytes less this, and still takes any up to max_datagram_bytes.
  std::size_t datagram_overhead = 0;
  Duration join_retry_interval = std::chrono::seconds(1);  // re-contact seeds until joined
  // DOWN and LEFT members still receive gossip rounds for this long after the change, so a
  // member declared DOWN by mistake hears it and refutes (memberlist's GossipToTheDeadTime).
  Duration gossip_to_dead = std::chrono::seconds(30);
  // Forgetting (see "Forgetting" and "Removal" above). A member gone from the ring (REMOVED,
  // LEFT, or DOWN without tokens) is dropped from the tables this long after it became so;
  // 0 keeps every member for ever.
  Duration forget_after = std::chrono::hours(1);
  // A forgotten LEFT or DOWN member's ghost is kept this long after it was forgotten, at most
  // max_ghosts of them.
  Duration ghost_ttl = std::chrono::hours(72);
  std::size_t max_ghosts = 10000;
  // A removed id's tombstone is kept this long after the removal (its age travels with it), at
  // most max_tombstones of them; 0 keeps them for ever (with the cap).
  Duration removed_ttl = std::chrono::hours(24 * 30);
  std::size_t max_tombstones = 10000;
};

struct Outgoing {
  Endpoint to;
  std::string bytes;
  bool stream = false;  // true: a push-pull message, sent over TCP (any size)
};

// Inputs dropped and why, and traffic totals. Monotonic.
struct Counters {
  std::uint64_t datagrams_in = 0, datagrams_out = 0, streams_in = 0, streams_out = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0;  // messages' bytes (GossipAgent: on the wire, sealed)
  std::uint64_t dropped_malformed = 0;  // did not decode
  std::uint64_t dropped_oversize = 0;   // larger than max_datagram_bytes
  std::uint64_t dropped_version = 0;    // unknown protocol version
  std::uint64_t dropped_cluster = 0;    // another cluster's name
  std::uint64_t dropped_removed = 0;    // from a removed id
  std::uint64_t dropped_stale = 0;      // from an older generation of a member, or own id
  // Dissemination: what went through the piggyback queue.
  std::uint64_t news_queued = 0;      // news of a member or a tombstone queued to piggyback
  std::uint64_t news_superseded = 0;  // queued news replaced by newer news of the same member
  std::uint64_t news_retired = 0;     // sent as often as the retransmit limit, then dropped
  std::uint64_t piggybacked = 0;      // updates and tombstones carried by datagrams sent
  // Failure detection, as seen by this node.
  std::uint64_t suspicions_started = 0;  // members this node began to hold SUSPECT
  std::uint64_t suspicions_refuted = 0;  // ... that were UP again (refuted, or a new life)
  std::uint64_t suspicions_expired = 0;  // ... whose timeout ran out here (declared DOWN)
  std::uint64_t refuted_after_us = 0;    // summed over suspicions_refuted: how long each ran
  std::uint64_t refutations = 0;         // own incarnation bumps answering an accusation
  std::uint64_t generation_raises = 0;   // own generation raised above a later life seen
  std::uint64_t suspicion_checks = 0;    // pings to members held SUSPECT for long here
  // Forgetting.
  std::uint64_t forgotten = 0;           // member records dropped (forget_after)
  std::uint64_t ghosts_expired = 0;      // ghosts dropped (ghost_ttl or max_ghosts)
  std::uint64_t tombstones_expired = 0;  // tombstones dropped (removed_ttl or max_tombstones)
  std::uint64_t dropped_forgotten = 0;   // claims about a ghost's old life refused
  // Incoming push-pull streams refused by the transport (GossipAgent's StreamLimits); always 0
  // from the pure core, filled in by the agent's counters().
  std::uint64_t streams_refused_busy = 0;      // closed at accept: max_incoming_streams open
  std::uint64_t streams_refused_oversize = 0;  // announced more than max_stream_bytes
  std::uint64_t streams_timed_out = 0;         // not complete within stream_timeout
  // Gossip encryption (the agent's GossipSecurity); always 0 from the pure core.
  std::uint64_t dropped_unsealed = 0;  // plain, where sealed messages are required
  std::uint64_t dropped_unopened = 0;  // sealed, but no installed key opens it (or it is cut)
  std::uint64_t dropped_replayed = 0;  // opened, but let through before or of a past life
};

// The size of the tables at one instant (a gauge).
struct TableStats {
  std::size_t members = 0;     // member records, self and REMOVED ones included
  std::size_t tombstones = 0;  // removed ids
  std::size_t ghosts = 0;      // forgotten LEFT and DOWN members
};

// The piggyback queue at one instant (a gauge, unlike Counters).
struct QueueStats {
  std::size_t depth = 0;        // queued news
  std::size_t unsent = 0;       // ... not sent even once yet
  std::uint64_t transmits = 0;  // times the queued news was sent so far, summed
};

class Membership {
 public:
  // `generation` must be higher than any this id used before (kvd persists and bumps it).
  // `seed` drives every random choice.
  Membership(Config config, NodeId self, Endpoint gossip, std::uint64_t generation, AppState app,
             std::uint64_t seed, Time now);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Contacts the seeds (any one reachable is enough) and keeps retrying until joined. The view
  // says synced once one of them has sent its full state.
  void Join(const std::vector<Endpoint>& seeds, Time now);
  // False from Join until a seed has sent its full state (as View().synced, in constant time).
  bool synced() const;
  // A datagram (stream == false) or a push-pull message (stream == true) from `from`.
  void Receive(const Endpoint& from, std::string_view bytes, bool stream, Time now);
  // Advances timers: probes, suspicion timeouts, gossip and push-pull rounds.
  void Tick(Time now);
  // Messages to send since the last call.
  std::vector<Outgoing> TakeOutgoing();
  // When Tick must next be called at the latest.
  Time NextDeadline() const;

  // Changes this node's application state; it spreads with a bumped version.
  void UpdateApp(const AppState& app, Time now);
  // Graceful leave: announces state left / liveness LEFT and spreads it. Keep ticking for a
  // few gossip intervals before stopping so it gets out.
  void Leave(Time now);
  // Removes a member for good (it must not be UP). The tombstone is gossiped and kept for
  // removed_ttl. Returns false (and does nothing) for self, unknown ids or UP members.
  bool Remove(NodeId id, Time now);
  // Tombstones known at start (kvd persists removed ids and when each was removed). `ages_s`,
  // parallel to `ids`, is how old each was at construction time; without it (or for an id past
  // its end) the removed_ttl runs from the construction time. One already past removed_ttl is
  // not taken.
  void RestoreRemoved(const std::vector<NodeId>& ids, const std::vector<std::uint32_t>& ages_s = {});
  // Members known from elsewhere (a view persisted by an earlier run, or a simulated cluster
  // that starts formed), taken as they are without being gossiped as news. Self, removed ids
  // and members already known are skipped; the rest are probed, and corrected by push-pull,
  // like any member.
  void RestoreMembers(const std::vector<MemberView>& members, Time now);
  std::vector<NodeId> Removed() const;
  // Each tombstone's age in seconds at the last event's time, parallel to Removed().
  std::vector<std::uint32_t> RemovedAges() const;
  // True once the cluster has told this node that its id was removed. The node must stop.
  bool refused() const;

  ClusterView View(Time now) const;
  // One member (self included) as View(now) would show it; nullopt if unknown. Constant time:
  // for callers that need one member of a large cluster.
  std::optional<MemberView> Lookup(NodeId id, Time now) const;
  // Calls f for every member in id order, as View(now) would show it but with `app` left empty,
  // while f returns true. For checks that walk every member of a large cluster, where copying
  // each member's application state would be most of the cost.
  void ForEachMember(Time now, const std::function<bool(const MemberView&)>& f) const;
  const Counters& counters() const;
  QueueStats queue_stats() const;
  TableStats table_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kv::membership
