// GossipAgent: runs a Membership state machine on its own thread behind real sockets.
//
// The membership thread owns a Boost.Asio io_context, a UDP socket for datagrams (probes,
// acks, piggybacked gossip) and a TCP acceptor on the same port for push-pull stream messages
// (one length-prefixed message per connection). Timers follow Membership::NextDeadline().
// Other threads never touch the state machine: they read the latest immutable ClusterView
// (published after every event, at most every few milliseconds) and post requests, whose
// answers come back through callbacks run on the membership thread.
//
// Incoming streams are bounded (StreamLimits): how many are open at once, how many bytes one may
// announce, and how long one may take. Memory follows the bytes that arrived, never the length a
// peer announced. Each refusal is counted in counters().
//
// Thread-safety: every public method may be called from any thread, except that Start and Stop
// must not race each other.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "membership/gossip_seal.h"
#include "membership/membership.h"

namespace kv::membership {

// Bounds on incoming push-pull streams (one TCP connection each).
struct StreamLimits {
  // Connections read at once; beyond, a new one is closed at accept (streams_refused_busy).
  // Push-pull runs every push_pull_interval with one or two members, so a node has a few open.
  std::size_t max_incoming = 16;
  // The largest message taken (streams_refused_oversize). A SYN-ACK carrying every state of a
  // 1,000-node cluster with 128 tokens each is 1.1 MB (membership_transport_test), with 256
  // 2.1 MB: 8 MiB leaves room for about 7,000 nodes of 128 tokens.
  std::uint32_t max_bytes = 8u << 20;
  // An incoming stream not complete by then is closed (streams_timed_out); also the deadline of
  // an outgoing one.
  Duration timeout = std::chrono::seconds(5);
  // Bytes read into memory per step: a stream costs what arrived, rounded up to this.
  std::size_t read_step = 64u << 10;
};

// Gossip encryption (gossip_seal.h). A live cluster moves from plain to sealed gossip without
// stopping, one rolling restart per step: every node kAccept (it holds the key, still sends
// plain), then every node kSeal, then every node kRequire.
enum class SealMode {
  kAccept,   // sends plain; takes plain and sealed messages
  kSeal,     // sends sealed; takes plain and sealed messages
  kRequire,  // sends sealed; takes sealed messages only
};
struct GossipSecurity {
  Keyring keyring;
  SealMode mode = SealMode::kRequire;
};

struct AgentOptions {
  Config config;
  NodeId self = 0;
  Endpoint gossip;  // port 0: any free port (the same for UDP and TCP); ip 0: every address
  // The address other members reach this one at (its identity in gossip), with the bound port;
  // 0: the bound address, which must then not be the wildcard.
  std::uint32_t advertise_ip = 0;
  std::uint64_t generation = 0;
  AppState app;
  std::vector<Endpoint> seeds;
  std::vector<NodeId> removed;  // tombstones known from a previous run
  std::vector<std::uint32_t> removed_ages_s;  // their ages now, parallel (RestoreRemoved)
  std::vector<MemberView> restored;  // members known from a previous run (saved_peers.h)
  std::uint64_t seed = 0;       // randomness of the state machine
  StreamLimits streams;
  // Without it gossip is plain (and a sealed message is dropped as malformed).
  std::optional<GossipSecurity> security;
  // Called on the membership thread when the set of removed ids changes (to persist it), with
  // each one's age in seconds (parallel), and when the cluster says this node itself was
  // removed.
  std::function<void(const std::vector<NodeId>&, const std::vector<std::uint32_t>& ages_s)>
      on_removed_changed;
  std::function<void()> on_refused;
  // Called on the membership thread with each new view before readers can see it (to save the
  // peers, saved_peers.h): whatever a reader sees has been handed to it first. Keep it short.
  std::function<void(const ClusterView&)> on_view;
};

class GossipAgent {
 public:
  explicit GossipAgent(AgentOptions options);
  ~GossipAgent();  // stops without leaving if still running

  // Binds the sockets and starts the membership thread. Returns false with `*error` set if the
  // endpoint cannot be bound.
  bool Start(std::string* error);
  // The gossip endpoint other members reach this one at (after Start): the bound one, or the
  // advertised address with the bound port.
  Endpoint endpoint() const { return identity_; }

  // Replaces the seeds a join still under way tries (kvd resolves seed names again at each
  // attempt); nothing once the join is done. Any thread.
  void Reseed(std::vector<Endpoint> seeds);

  // Announces a graceful leave, keeps gossiping for up to `linger` so the news gets out, then
  // stops the thread.
  void LeaveAndStop(Duration linger);

  std::shared_ptr<const ClusterView> view() const;
  Counters counters() const;
  // The membership tables' sizes as of the latest published view.
  TableStats table_stats() const;

  // The gossip keyring in use; nullopt when gossip is plain (no GossipSecurity).
  std::optional<Keyring> keyring() const;
  // Replaces the keyring (gossip encryption must be on). `done` runs on the membership thread
  // once every message sent after it is sealed with the new primary and opened with the new keys.
  void SetKeyring(Keyring ring, std::function<void()> done);

  // Requests, answered on the membership thread.
  void Remove(NodeId id, std::function<void(bool removed)> done);
  void UpdateApp(AppState app);
  // Changes this node's application state in place (on the membership thread, so concurrent
  // changes of different fields do not undo each other); spreads it if it changed. `done` runs
  // on the membership thread once view() shows the change.
  void MutateApp(std::function<void(AppState&)> change, std::function<void()> done = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Endpoint bound_;
  Endpoint identity_;  // bound_, or advertise_ip with bound_.port
};

}  // namespace kv::membership
