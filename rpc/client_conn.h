// BlockingClient: a synchronous client of one kvd's client API, for kvtool and tests.
//
// Owns a KJ event loop: create, use and destroy it on one thread, and have no other KJ loop on
// that thread. Every call is bounded by the timeout given at Connect. Transport failures come
// back as Unavailable ("node unreachable: ..."), expiries as Timeout; server-side outcomes
// keep their own codes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rpc/keyring_op.h"
#include "rpc/replica_plan.h"
#include "storage/status.h"

namespace kv::rpc {

struct GetReply {
  Status status;
  std::vector<std::string> siblings;  // live values
  std::string context;                // opaque; empty if the key was never written
};

struct WriteReply {
  Status status;
  std::string context;  // the context after the write
};

struct MemberInfo {
  std::uint64_t id = 0;
  std::string rpc, gossip, status, state, rack;
  std::uint64_t generation = 0, incarnation = 0, load = 0;
  double phi = 0, owns = 0;
  std::uint32_t tokens = 0;
  std::uint64_t hints = 0;  // hints the answering node holds for this member
  double last_repair = 0;   // seconds since the epoch; 0: none known
  std::uint64_t repair_keys_moved = 0;
};

// A ring movement as the answering node sees it (rpc/replica.capnp MovementInfo).
struct MovementView {
  bool active = false;
  std::string kind, description;
  std::uint64_t driver = 0, subject = 0;
  bool reads_new = false;
  bool progress = false;  // the fields below came from the driver
  std::string phase, note;
  std::uint64_t copies_done = 0, copies_total = 0, bytes_copied = 0;
  std::string outcome;  // the last movement the answering node drove: "done" or why it failed
};

struct StatusReply {
  Status status;
  std::vector<MemberInfo> members;
  MovementView movement;
};

struct CleanupReply {
  Status status;
  std::uint64_t keys_deleted = 0, bytes_freed = 0;
};

// One member's answer to a keyring request (KvClient.keyring).
struct KeyringNodeInfo {
  std::uint64_t id = 0;
  std::string address;
  Status status;
  std::vector<std::string> keys;  // fingerprints, the primary first
};
struct KeyringReply {
  Status status;
  std::vector<KeyringNodeInfo> nodes;  // the asked node first
};

struct RingRangeInfo {
  std::uint64_t begin = 0, end = 0;
  std::vector<std::uint64_t> replicas;
};

struct RingReply {
  Status status;
  std::vector<RingRangeInfo> ranges;
  std::vector<MemberInfo> members;
};

struct StatsReply {
  Status status;
  bool gossip = false;
  std::vector<std::pair<std::string, std::uint64_t>> counters;  // gossip's: name, value
  std::vector<std::pair<std::string, std::uint64_t>> node;      // the rest: name, value
};

struct RepairPeerInfo {
  std::uint64_t id = 0;
  std::uint64_t keys_sent = 0, keys_received = 0, bytes_sent = 0, bytes_received = 0;
};

struct RepairReply {
  Status status;  // of the request; the run's own outcome is `outcome`
  Status outcome;
  bool dry_run = false;
  std::uint64_t ranges_total = 0, ranges_compared = 0;
  std::vector<std::string> skipped;
  std::uint64_t nodes_exchanged = 0, leaves_differing = 0, keys_differing = 0, bytes_on_wire = 0;
  std::uint64_t tombstones_purged = 0;
  double elapsed_s = 0;
  std::vector<RepairPeerInfo> peers;
};

struct RepairProgressInfo {
  std::uint64_t ranges_total = 0, ranges_done = 0, keys_moved = 0, bytes_moved = 0;
  double elapsed_s = 0;
};

class Tls;  // tls.h

class BlockingClient {
 public:
  // `host_port` is "HOST:PORT". Fails with Unavailable if the node cannot be reached in time.
  // A non-empty `source_host` (an IPv4 literal) is the address the connection leaves from.
  // With `tls` (it must outlive the client), the connection goes through its handshake: the
  // node must hold a certificate of the cluster CA naming the identity (a failed handshake is
  // Unavailable, saying why).
  static Result<std::unique_ptr<BlockingClient>> Connect(const std::string& host_port,
                                                         std::chrono::milliseconds timeout,
                                                         const std::string& source_host = "",
                                                         Tls* tls = nullptr);
  ~BlockingClient();

  // `local`: the node's own record, with no coordination.
  GetReply Get(std::string_view key, Consistency consistency = Consistency::kDefault,
               bool local = false);
  WriteReply Put(std::string_view key, std::string_view value, std::string_view context,
                 Consistency consistency = Consistency::kDefault);
  WriteReply Delete(std::string_view key, std::string_view context,
                    Consistency consistency = Consistency::kDefault);
  StatusReply ClusterStatus();
  RingReply Ring(std::uint32_t replicas);
  Status RemoveNode(std::uint64_t id);
  Status Decommission();
  CleanupReply Cleanup();
  // `key`: 32 bytes, empty for kList.
  KeyringReply Keyring(KeyringOp op, const std::string& key);
  StatsReply Stats();
  // Runs a repair on the node and waits for it (no overall timeout: each progress poll is
  // bounded instead); `on_progress` is called about every `every`.
  RepairReply Repair(bool dry_run, std::chrono::milliseconds every,
                     const std::function<void(const RepairProgressInfo&)>& on_progress);

 private:
  struct Impl;
  explicit BlockingClient(std::unique_ptr<Impl> impl);
  // Sends the put or delete request `make(client)` builds and collects the reply.
  template <typename MakeRequest>
  WriteReply Write(MakeRequest&& make);
  std::unique_ptr<Impl> impl_;
};

// Whether `s` says the node could not be reached or its connection failed (the transport, not
// the node, failed the call): Unavailable "node unreachable: ...", as Connect and the calls
// return it.
bool IsUnreachable(const Status& s);

// Parses "HOST:PORT" with a numeric port in 1..65535 (0 allowed when `allow_zero`).
Status ParseHostPort(const std::string& s, bool allow_zero, std::string* host, int* port);

}  // namespace kv::rpc
