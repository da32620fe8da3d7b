// kvd: one node of the store.
//
// Wiring only: parse flags, open the engine and the node's metadata, serve the client API on
// --listen, run membership on --gossip, join the ring (or replace a dead node) through a ring
// movement (rpc/movement_runner.h), stop cleanly on SIGTERM or SIGINT (finish the writes
// received, close RocksDB; the node keeps its ranges: only `kvtool decommission` leaves). Prints one line on stdout when it is ready:
//   kvd: node 3f2a... generation 4 listening on 127.0.0.1:7701 gossip on 127.0.0.1:7946
// Logs go to stderr. Exit codes: 0 stopped cleanly, 2 bad flags, 1 could not start or was
// removed from the cluster.
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <condition_variable>
#include <cstdarg>
#include <deque>
#include <cstdio>
#include <ctime>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "membership/asio_transport.h"
#include "membership/saved_peers.h"
#include "ring/ring.h"
#include "rpc/client_conn.h"
#include "rpc/client_server.h"
#include "rpc/client_service.h"
#include "repair/hash_tree.h"
#include "repair/store_reader.h"
#include "rpc/cluster_control.h"
#include "rpc/node_services.h"
#include "rpc/tls.h"
#include "rpc/repair_runner.h"
#include "rpc/metrics.h"
#include "rpc/metrics_http.h"
#include "rpc/movement_runner.h"
#include "membership/topology.h"
#include "rpc/coordinator.h"
#include "rpc/connect.h"
#include "rpc/peers.h"
#include "rpc/storage_pool.h"
#include "tools/config_file.h"
#include "tools/log.h"
#include "tools/gossip_key_file.h"
#include "rpc/write_batcher.h"
#include "storage/local_store.h"
#include "storage/meta_writer.h"
#include "storage/node_meta.h"
#include "storage/rocksdb_engine.h"

namespace {

using namespace kv;
namespace mb = kv::membership;

struct Flags {
  std::string data_dir;
  std::string listen = "127.0.0.1:7701";
  std::size_t max_key_bytes = 64 * 1024;
  std::size_t max_value_bytes = 16 * 1024 * 1024;
  bool sync_writes = false;
  int wal_sync_interval_ms = 1000;
  std::size_t storage_threads = 2;
  std::size_t max_siblings = 100;
  std::size_t max_record_bytes = std::size_t{32} << 20;
  std::size_t max_queued_writes = 4096;
  std::size_t max_queued_write_bytes = std::size_t{256} << 20;
  std::size_t max_connections = 4096;
  std::size_t connection_flow_limit_bytes = std::size_t{64} << 20;
  int message_timeout_ms = 30000;
  std::size_t background_threads = 1;
  int background_nice = 0;
  std::size_t storage_max_queued = 1024;
  // Testing only.
  bool testing_lose_unsynced_on_kill = false;
  std::int64_t testing_clock_offset_s = 0;
  // Membership.
  std::string gossip;
  std::string seeds;
  // The address peers and clients reach this node at, when it binds the wildcard (or sits
  // behind a translation): an IPv4 literal or a name resolved at start.
  std::string advertise;
  std::string advertise_ip;                 // `advertise` resolved
  std::vector<mb::Endpoint> seed_endpoints;  // `seeds` resolved at start
  std::vector<std::string> seed_names;       // the seeds given as names (HOST:PORT), if any
  std::vector<bool> seed_from_name;          // parallel to seed_endpoints
  std::string rack;
  std::size_t vnodes = ring::kDefaultVnodes;
  mb::Config config;
  int probe_interval_ms = 1000, probe_timeout_ms = 500, gossip_interval_ms = 200;
  int push_pull_interval_ms = 30000;
  // Membership's bounds (membership/membership.h, asio_transport.h).
  std::int64_t gossip_forget_after_s = 3600, gossip_ghost_ttl_s = 72 * 3600;
  std::int64_t gossip_removed_ttl_s = 30 * 86400;
  std::size_t gossip_max_streams = 16;
  std::uint32_t gossip_max_stream_bytes = 8u << 20;
  int gossip_stream_timeout_ms = 5000;
  // Gossip encryption (membership/gossip_seal.h).
  std::string gossip_key_file;
  std::string gossip_encryption;  // accept | seal | require (default with a key file)
  std::optional<mb::GossipSecurity> gossip_security;  // from the two above
  std::string metrics;  // HOST:PORT of /metrics; empty: none
  // The log (tools/log.h).
  std::string log_level = "info", log_format = "text", log_file;
  std::string config_file;         // --config, re-read at SIGHUP for log-level
  bool log_level_on_command_line = false;  // then SIGHUP leaves the level alone
  // Mutual TLS on the RPC port (rpc/tls.h).
  std::string tls_cert, tls_key, tls_ca, tls_identity = "kv", tls_mode;
  std::shared_ptr<rpc::Tls> tls;  // loaded from the above
  // Replication.
  rpc::ReplicationSettings replication;
  std::string hinted_handoff = "on";
  std::string retry_direct_probe = "on";
  int request_timeout_ms = 2000;
  int handoff_interval_ms = 1000;
  // Anti-entropy.
  int tree_bits = 16;
  double repair_interval_s = 3600;
  std::uint64_t repair_rate_bytes = 64ull << 20;
  std::uint64_t tombstone_grace_s = 10 * 86400;
  double tree_rebuild_interval_s = 86400;
  // Ring movements.
  std::string replace;  // hex id of the dead node this one takes the place of
  std::uint64_t movement_rate_bytes = 32ull << 20;
};

using L = kv::log::Level;

// printf into the log (tools/log.h).
__attribute__((format(printf, 2, 3))) void Logf(L level, const char* format, ...) {
  if (!kv::log::Enabled(level)) return;
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string text(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(text.data(), text.size() + 1, format, again);
  va_end(again);
  kv::log::Write(level, text);
}

class IgnoreErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& e) override {
    kv::log::WriteLimited(L::kError, "task failed", e.getDescription().cStr());
  }
};

int Fail(const std::string& what) {
  Logf(L::kError, "%s", what.c_str());
  return 1;
}

std::string Hex(std::uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, id);
  return buf;
}

// Without --gossip: a cluster of one, as this node sees itself.
class LocalControl final : public rpc::ClusterControl {
 public:
  explicit LocalControl(mb::ClusterView view)
      : view_(std::make_shared<const mb::ClusterView>(std::move(view))) {}
  std::shared_ptr<const mb::ClusterView> View() override { return view_; }
  void Remove(mb::NodeId, std::function<void(bool)> done) override { done(false); }
  std::optional<mb::Counters> GossipCounters() override { return std::nullopt; }
  std::optional<mb::TableStats> GossipTables() override { return std::nullopt; }
  void MutateApp(std::function<void(mb::AppState&)>, std::function<void()> done) override {
    if (done) done();
  }

 private:
  std::shared_ptr<const mb::ClusterView> view_;
};

// `kvtool keyring` on this node (rpc/keyring.h): applies a request to the gossip keyring, the key
// file first, so that what the node gossips with is always what it restarts with. Requests are
// idempotent, as memberlist's keyring is: installing an installed key, using the primary, or
// removing a key that is not there changes nothing and succeeds, so a cluster-wide request that
// some members missed can simply be repeated. Runs on a background pool thread (it syncs the
// file); one request at a time.
std::function<kv::Result<std::vector<std::string>>(rpc::KeyringOp, const std::string&)>
KeyringRequests(mb::GossipAgent* agent, std::string path) {
  auto mu = std::make_shared<std::mutex>();
  return [agent, path, mu](rpc::KeyringOp op,
                           const std::string& bytes) -> kv::Result<std::vector<std::string>> {
    std::lock_guard<std::mutex> lock(*mu);
    std::optional<mb::Keyring> ring = agent->keyring();
    if (!ring) return kv::Status::Unavailable("gossip encryption is off on this node");
    mb::GossipKey key{};
    if (op != rpc::KeyringOp::kList) std::memcpy(key.data(), bytes.data(), key.size());
    const auto& keys = ring->keys();
    const bool installed = std::find(keys.begin(), keys.end(), key) != keys.end();
    std::string error;
    bool changed = false;
    switch (op) {
      case rpc::KeyringOp::kList:
        break;
      case rpc::KeyringOp::kInstall:
        if (installed) break;
        if (!ring->Install(key, &error)) return kv::Status::InvalidArgument(error);
        changed = true;
        break;
      case rpc::KeyringOp::kUse:
        if (!installed) {
          return kv::Status::InvalidArgument("key " + mb::KeyFingerprint(key) +
                                             " is not installed here: install it first");
        }
        if (ring->primary() == key) break;
        if (!ring->Use(key, &error)) return kv::Status::InvalidArgument(error);
        changed = true;
        break;
      case rpc::KeyringOp::kRemove:
        if (!installed) break;
        if (ring->primary() == key) {
          return kv::Status::InvalidArgument("key " + mb::KeyFingerprint(key) +
                                             " is the primary here: use another key first");
        }
        if (!ring->Remove(key, &error)) return kv::Status::InvalidArgument(error);
        changed = true;
        break;
    }
    if (changed) {
      if (!kv::tools::WriteGossipKeyFile(path, *ring, &error)) {
        return kv::Status::IoError("the keyring was not changed: cannot save it: " + error);
      }
      auto applied = std::make_shared<std::promise<void>>();
      auto done = applied->get_future();
      agent->SetKeyring(*ring, [applied]() { applied->set_value(); });
      if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
        return kv::Status::Unavailable(
            "the key file holds the new keyring but gossip did not take it (is it stopping?)");
      }
    }
    std::vector<std::string> out;
    for (const auto& k : ring->keys()) out.push_back(mb::KeyFingerprint(k));
    return out;
  };
}

// The gossip agent's view. At the stop, Detach() (before the agent goes) keeps its last view
// and counters for the requests still answered while the node drains: they must never reach
// an agent that is gone.
class GossipControl final : public rpc::ClusterControl {
 public:
  explicit GossipControl(mb::GossipAgent* agent) : agent_(agent) {}
  void Detach() {
    view_ = agent_->view();
    counters_ = agent_->counters();
    tables_ = agent_->table_stats();
    agent_ = nullptr;
  }
  std::shared_ptr<const mb::ClusterView> View() override {
    return agent_ != nullptr ? agent_->view() : view_;
  }
  void Remove(mb::NodeId id, std::function<void(bool)> done) override {
    if (agent_ == nullptr) {
      done(false);
      return;
    }
    agent_->Remove(id, std::move(done));
  }
  std::optional<mb::Counters> GossipCounters() override {
    return agent_ != nullptr ? agent_->counters() : counters_;
  }
  std::optional<mb::TableStats> GossipTables() override {
    return agent_ != nullptr ? agent_->table_stats() : tables_;
  }
  void MutateApp(std::function<void(mb::AppState&)> change, std::function<void()> done) override {
    if (agent_ == nullptr) {
      if (done) done();
      return;
    }
    agent_->MutateApp(std::move(change), std::move(done));
  }

 private:
  mb::GossipAgent* agent_;  // null once detached
  std::shared_ptr<const mb::ClusterView> view_;
  mb::Counters counters_;
  mb::TableStats tables_;
};

std::atomic<bool> g_refused{false};
std::atomic<bool> g_decommissioned{false};

// Syncs the write-ahead log every `interval` on a thread of its own, so that a machine crash
// loses at most that much of the acknowledged writes (Cassandra's periodic commit log). Stops
// at destruction.
class PeriodicLogSync {
 public:
  PeriodicLogSync(storage::Engine* engine, std::chrono::milliseconds interval)
      : engine_(engine), interval_(interval) {
    if (interval_.count() > 0) thread_ = std::thread([this] { Loop(); });
  }
  ~PeriodicLogSync() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    bool failing = false;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      lock.unlock();
      const Status s = engine_->SyncLog();
      if (!s.ok() && !failing) {
        Logf(L::kError, "syncing the write-ahead log failed: %s",
                     s.ToString().c_str());
      }
      failing = !s.ok();  // said once per run of failures
      lock.lock();
    }
  }

  storage::Engine* const engine_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

// The node's metrics in the Prometheus text format (rpc/metrics.h); on the RPC thread. Names
// follow Prometheus' conventions: kv_ prefix, base units, counters ending in _total; no key or
// client address is a label (peers are labelled by node id).
std::string RenderMetrics(rpc::RequestMetrics& rm, const rpc::Coordinator& coordinator,
                          const rpc::ClientServer& server, const rpc::WriteBatcher& batcher,
                          const rpc::StoragePool& pool, const rpc::StoragePool& background,
                          const storage::LocalStore& store, storage::Engine& engine,
                          rpc::ClusterControl& control, const rpc::PeerPool& peers,
                          const rpc::RepairRunner& repair, const rpc::MovementRunner& movement) {
  using rpc::MetricFamily;
  using T = MetricFamily::Type;
  std::deque<MetricFamily> f;  // a deque: a family stays where it is while others are added
  auto family = [&f](const char* name, const char* help, T type) -> MetricFamily& {
    return f.emplace_back(name, help, type);
  };
  auto latency = [&](const char* op, rpc::Histogram& h) {
    return std::make_pair(MetricFamily::Labels{{"op", op}}, h.Take());
  };
  {
    auto& h = family("kv_coordinator_request_duration_seconds",
                     "Client requests this node coordinated, from arrival to reply", T::kHistogram);
    for (auto [labels, snap] : {latency("get", rm.coordinator_get),
                                latency("put", rm.coordinator_put),
                                latency("delete", rm.coordinator_delete)}) {
      h.Add(snap, labels);
    }
  }
  {
    auto& h = family("kv_replica_request_duration_seconds",
                     "Replica reads and writes this node served for coordinators", T::kHistogram);
    for (auto [labels, snap] :
         {latency("read", rm.replica_read), latency("write", rm.replica_write)}) {
      h.Add(snap, labels);
    }
  }
  family("kv_read_siblings", "Siblings of each key a coordinated read found", T::kHistogram)
      .Add(rm.read_siblings.Take());
  family("kv_read_record_bytes", "Bytes of each record a coordinated read found (values and causal metadata)",
         T::kHistogram)
      .Add(rm.read_record_bytes.Take());
  {
    auto& c = family("kv_client_requests_total",
                     "Client requests coordinated here, by operation and outcome", T::kCounter);
    for (int op = 0; op < 3; ++op) {
      for (int o = 0; o < 7; ++o) {
        c.Add(static_cast<double>(rm.outcomes[op][o].load(std::memory_order_relaxed)),
              {{"op", rpc::kClientOpNames[op]}, {"outcome", rpc::kOutcomeNames[o]}});
      }
    }
  }
  const rpc::CoordinatorCounters& cc = coordinator.counters();
  family("kv_writes_forwarded_total", "Client writes sent on to an owner of the key", T::kCounter)
      .Add(static_cast<double>(cc.forwarded));
  family("kv_read_repairs_total", "Records sent to stale replicas by read repair", T::kCounter)
      .Add(static_cast<double>(cc.read_repairs));
  family("kv_hints_total", "Hints for replicas that did not acknowledge: stored here, delivered, "
         "or expired undelivered", T::kCounter)
      .Add(static_cast<double>(cc.hints_stored), {{"event", "stored"}})
      .Add(static_cast<double>(cc.hints_delivered), {{"event", "delivered"}})
      .Add(static_cast<double>(cc.hints_expired), {{"event", "expired"}});
  {
    auto& g = family("kv_hints_pending", "Hints held here, by the node they are for", T::kGauge);
    for (const auto& [peer, n] : store.HintCounts()) {
      g.Add(static_cast<double>(n), {{"peer", Hex(peer)}});
    }
  }
  family("kv_writes_refused_total", "Client writes refused, by the bound they hit", T::kCounter)
      .Add(static_cast<double>(batcher.refused()), {{"bound", "queue"}})
      .Add(static_cast<double>(store.refused_siblings()), {{"bound", "siblings"}})
      .Add(static_cast<double>(store.refused_record_size()), {{"bound", "record_size"}});
  family("kv_write_queue", "Writes waiting for the disk", T::kGauge)
      .Add(static_cast<double>(batcher.queued()));
  family("kv_write_queue_bytes", "Bytes of the writes waiting for the disk", T::kGauge)
      .Add(static_cast<double>(batcher.queued_bytes()));
  family("kv_storage_jobs_total", "Storage jobs run off the RPC thread, by pool", T::kCounter)
      .Add(static_cast<double>(pool.ran()), {{"pool", "read"}})
      .Add(static_cast<double>(background.ran()), {{"pool", "background"}});
  family("kv_storage_jobs_refused_total", "Storage jobs refused as overloaded, by pool",
         T::kCounter)
      .Add(static_cast<double>(pool.refused()), {{"pool", "read"}})
      .Add(static_cast<double>(background.refused()), {{"pool", "background"}});
  family("kv_storage_jobs_queued", "Storage jobs waiting for a thread, by pool", T::kGauge)
      .Add(static_cast<double>(pool.queued()), {{"pool", "read"}})
      .Add(static_cast<double>(background.queued()), {{"pool", "background"}});
  family("kv_connections_open", "Client and peer connections open", T::kGauge)
      .Add(static_cast<double>(server.open_connections()));
  family("kv_connections_refused_total", "Connections closed at once, by cause", T::kCounter)
      .Add(static_cast<double>(server.refused_connections()), {{"cause", "over_cap"}})
      .Add(static_cast<double>(server.tls_refused()), {{"cause", "tls_handshake"}});
  family("kv_peer_connections_replaced_total",
         "Peer connections retired after a timeout or a failure-detector verdict", T::kCounter)
      .Add(static_cast<double>(peers.replaced()));
  family("kv_storage_live_bytes", "Estimated bytes of live data (RocksDB)", T::kGauge)
      .Add(static_cast<double>(engine.ApproximateBytes()));
  family("kv_storage_pending_compaction_bytes", "Bytes RocksDB estimates compactions must rewrite",
         T::kGauge)
      .Add(static_cast<double>(engine.PendingCompactionBytes()));
  {
    const auto& t = repair.totals();
    family("kv_repair_runs_total", "Repairs run here (not dry runs), by outcome", T::kCounter)
        .Add(static_cast<double>(t.runs_ok), {{"outcome", "ok"}})
        .Add(static_cast<double>(t.runs_incomplete), {{"outcome", "incomplete"}});
    family("kv_repair_tombstones_purged_total", "Tombstones purged by repairs run here",
           T::kCounter)
        .Add(static_cast<double>(t.tombstones_purged));
    auto& keys = family("kv_repair_keys_total", "Records repairs run here moved, by peer and direction",
                        T::kCounter);
    auto& bytes = family("kv_repair_bytes_total",
                         "Record bytes repairs run here moved, by peer and direction", T::kCounter);
    for (const auto& [peer, p] : t.peers) {
      keys.Add(static_cast<double>(p.keys_sent), {{"peer", Hex(peer)}, {"direction", "sent"}})
          .Add(static_cast<double>(p.keys_received), {{"peer", Hex(peer)}, {"direction", "received"}});
      bytes.Add(static_cast<double>(p.bytes_sent), {{"peer", Hex(peer)}, {"direction", "sent"}})
          .Add(static_cast<double>(p.bytes_received),
               {{"peer", Hex(peer)}, {"direction", "received"}});
    }
  }
  {
    const mb::MovementProgress& p = movement.progress();
    family("kv_movement_driving", "1 while this node drives a ring movement", T::kGauge)
        .Add(movement.driving() ? 1 : 0);
    family("kv_movement_copies", "Range copies of the movement driven here (now, else the last)",
           T::kGauge)
        .Add(static_cast<double>(p.copies_done), {{"state", "done"}})
        .Add(static_cast<double>(p.copies_total), {{"state", "total"}});
    family("kv_movement_copied_bytes", "Record bytes copied by that movement", T::kGauge)
        .Add(static_cast<double>(p.bytes_copied));
  }
  if (auto g = control.GossipCounters()) {
    family("kv_gossip_messages_total", "Gossip messages, by kind and direction", T::kCounter)
        .Add(static_cast<double>(g->datagrams_in), {{"kind", "datagram"}, {"direction", "in"}})
        .Add(static_cast<double>(g->datagrams_out), {{"kind", "datagram"}, {"direction", "out"}})
        .Add(static_cast<double>(g->streams_in), {{"kind", "stream"}, {"direction", "in"}})
        .Add(static_cast<double>(g->streams_out), {{"kind", "stream"}, {"direction", "out"}});
    family("kv_gossip_bytes_total", "Gossip bytes on the wire, by direction", T::kCounter)
        .Add(static_cast<double>(g->bytes_in), {{"direction", "in"}})
        .Add(static_cast<double>(g->bytes_out), {{"direction", "out"}});
    family("kv_gossip_dropped_total", "Gossip messages dropped, by cause", T::kCounter)
        .Add(static_cast<double>(g->dropped_malformed), {{"cause", "malformed"}})
        .Add(static_cast<double>(g->dropped_oversize), {{"cause", "oversize"}})
        .Add(static_cast<double>(g->dropped_version), {{"cause", "version"}})
        .Add(static_cast<double>(g->dropped_cluster), {{"cause", "cluster"}})
        .Add(static_cast<double>(g->dropped_removed), {{"cause", "removed"}})
        .Add(static_cast<double>(g->dropped_stale), {{"cause", "stale"}})
        .Add(static_cast<double>(g->dropped_forgotten), {{"cause", "forgotten"}})
        .Add(static_cast<double>(g->dropped_unsealed), {{"cause", "unsealed"}})
        .Add(static_cast<double>(g->dropped_unopened), {{"cause", "unopened"}})
        .Add(static_cast<double>(g->dropped_replayed), {{"cause", "replayed"}});
    family("kv_gossip_suspicions_total", "Members this node began to hold SUSPECT", T::kCounter)
        .Add(static_cast<double>(g->suspicions_started));
    const auto view = control.View();
    std::map<std::string, int> by_status;
    for (mb::Liveness l : {mb::Liveness::kUp, mb::Liveness::kSuspect, mb::Liveness::kDown,
                           mb::Liveness::kLeft, mb::Liveness::kRemoved}) {
      by_status[mb::Name(l)] = 0;
    }
    auto& phi = family("kv_gossip_phi", "Phi accrual suspicion of each peer, as seen here",
                       T::kGauge);
    for (const mb::MemberView& m : view->members) {
      ++by_status[mb::Name(m.liveness)];
      if (m.id != view->self) phi.Add(m.phi, {{"peer", Hex(m.id)}});
    }
    auto& members = family("kv_gossip_members", "Members known here, by status", T::kGauge);
    for (const auto& [status, n] : by_status) members.Add(n, {{"status", status}});
  }
  std::string out;
  for (const MetricFamily& m : f) m.Render(&out);
  return out;
}

// `host` as a dotted IPv4 address: a literal as is, a name through the resolver (the first
// IPv4 address it gives). For main, at start: it may block on DNS.
Result<std::string> ResolveIpv4(const std::string& host) {
  in_addr literal{};
  if (inet_pton(AF_INET, host.c_str(), &literal) == 1) return host;
  if (host.empty()) return Status::InvalidArgument("an empty host name");
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    return Status::InvalidArgument("cannot resolve '" + host + "' to an IPv4 address: " +
                                   gai_strerror(rc));
  }
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof text);
  freeaddrinfo(found);
  return std::string(text);
}

// Resolves the seeds given as names again at each join attempt, off the gossip thread (DNS may
// block), and hands the join the addresses they have now, until the join is done: a seed that
// moved while this node waited is still found. Stopped and joined by its destructor, which
// must run before the agent goes.
class SeedResolver {
 public:
  SeedResolver(mb::GossipAgent* agent, std::vector<std::string> names,
               std::vector<mb::Endpoint> fixed, std::chrono::milliseconds every)
      : agent_(agent), names_(std::move(names)), fixed_(std::move(fixed)), every_(every),
        thread_([this]() { Loop(); }) {}
  ~SeedResolver() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, every_, [this] { return stop_; })) {
      lock.unlock();
      if (agent_->view()->synced) return;  // joined: nothing more to resolve
      std::vector<mb::Endpoint> seeds = fixed_;
      for (const std::string& name : names_) {
        const auto colon = name.rfind(':');
        auto ip = ResolveIpv4(name.substr(0, colon));
        mb::Endpoint e;
        if (ip.ok() && mb::ParseEndpoint(ip.value() + name.substr(colon), &e)) {
          seeds.push_back(e);
        } else {
          kv::log::WriteLimited(L::kWarning, "seed resolution",
                                "seed " + name + ": " + ip.status().message());
        }
      }
      agent_->Reseed(std::move(seeds));
      lock.lock();
    }
  }

  mb::GossipAgent* agent_;
  const std::vector<std::string> names_;
  const std::vector<mb::Endpoint> fixed_;  // literal seeds and saved peers
  const std::chrono::milliseconds every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is set
};

int Run(const Flags& flags) {
  // Capture the stop signals before any thread exists: RocksDB starts threads in Open, and they
  // inherit the blocked mask, so the signals reach only this thread's event loop.
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  kj::UnixEventPort::captureSignal(SIGHUP);
  // What KJ logs on this thread (the RPC event loop's) goes to the log too.
  kv::log::KjLogRoute kj_logs;

  // Room for the connection cap: the soft limit on open files raised to the hard one, less a
  // reserve for RocksDB's files, the peers' connections and gossip.
  std::size_t max_connections = flags.max_connections;
  {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
      }
      constexpr rlim_t kReserve = 512;
      const std::size_t room =
          rl.rlim_cur > 2 * kReserve ? static_cast<std::size_t>(rl.rlim_cur - kReserve) : 64;
      if (max_connections > room) {
        Logf(L::kWarning, "--max-connections %zu lowered to %zu: this process may open %llu "
                     "files (ulimit -n)",
                     max_connections, room, static_cast<unsigned long long>(rl.rlim_cur));
        max_connections = room;
      }
    }
  }
  storage::RocksDbOptions ro;
  ro.sync_writes = flags.sync_writes;
  ro.lose_unsynced_on_kill = flags.testing_lose_unsynced_on_kill;
  auto engine_or = storage::RocksDbEngine::Open(flags.data_dir, ro);
  if (!engine_or.ok()) return Fail(engine_or.status().ToString());
  storage::Engine& engine = *engine_or.value();
  if (flags.testing_lose_unsynced_on_kill) {
    Logf(L::kWarning, "TESTING: unsynced writes are held in memory; a kill loses them");
  }
  PeriodicLogSync log_sync(&engine, std::chrono::milliseconds(
                                        flags.sync_writes ? 0 : flags.wal_sync_interval_ms));
  // Every wall-clock reading that decides something (tombstone times, purge and hint ages).
  const std::int64_t clock_offset_s = flags.testing_clock_offset_s;
  if (clock_offset_s != 0) {
    Logf(L::kWarning, "TESTING: the clock runs %+lld s off",
                 static_cast<long long>(clock_offset_s));
  }
  const std::function<std::uint64_t()> wall_clock_s = [clock_offset_s]() {
    const std::int64_t t = static_cast<std::int64_t>(std::time(nullptr)) + clock_offset_s;
    return static_cast<std::uint64_t>(std::max<std::int64_t>(t, 1));
  };
  const std::function<std::uint64_t()> wall_clock_ms = [clock_offset_s]() {
    const std::int64_t t = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count() +
                           clock_offset_s * 1000;
    return static_cast<std::uint64_t>(std::max<std::int64_t>(t, 1));
  };
  auto node_id = storage::LoadOrCreateNodeId(engine);
  if (!node_id.ok()) return Fail(node_id.status().ToString());
  auto removed_self = storage::LoadFlag(engine, "removed_self");
  if (!removed_self.ok()) return Fail(removed_self.status().ToString());
  if (removed_self.value()) {
    return Fail("node " + Hex(node_id.value()) +
                " was removed from the cluster (kvtool removenode) and cannot rejoin with this "
                "data directory; start it with an empty one to join as a new node");
  }
  auto generation = storage::BumpGeneration(engine);
  if (!generation.ok()) return Fail(generation.status().ToString());
  const std::size_t vnodes = flags.vnodes;
  const std::uint64_t id = node_id.value();
  kv::log::SetNode(Hex(id));
  auto tokens = storage::LoadOrCreateTokens(engine, [&]() {
    return ring::ChooseTokens(vnodes, id ^ static_cast<std::uint64_t>(getpid()));
  });
  if (!tokens.ok()) return Fail(tokens.status().ToString());
  auto removed = storage::LoadU64List(engine, "removed_ids");
  if (!removed.ok()) return Fail(removed.status().ToString());
  auto removed_at = storage::LoadU64List(engine, "removed_at_ms");
  if (!removed_at.ok()) return Fail(removed_at.status().ToString());

  storage::Limits limits{flags.max_key_bytes, flags.max_value_bytes, flags.tombstone_grace_s,
                         flags.max_siblings, flags.max_record_bytes};
  storage::LocalStore store(&engine, id, limits);
  store.SetClock(wall_clock_s);
  // The dots' life a clean stop saved: offered now, taken once the cluster confirms this is not
  // a restored copy (below). Consumed either way: a crash from here on means a new life.
  auto saved_life = storage::TakeSavedLife(engine);
  if (!saved_life.ok()) return Fail(saved_life.status().ToString());
  store.dots().OfferResume(saved_life.value().dots);
  // The hash tree a clean stop persisted is trusted; otherwise (a crash, a first start) it is
  // built from the data in the background while the node serves, and repairs of this node's
  // ranges wait for it (repair/hash_tree.h). Kept current by every write from here on.
  repair::LiveTree tree(flags.tree_bits, /*ready=*/false);
  store.SetListener(&tree);
  auto tree_loaded = repair::TakePersistedTree(engine, tree);
  if (!tree_loaded.ok()) {
    return Fail("cannot read the persisted hash tree: " + tree_loaded.status().ToString());
  }
  if (tree_loaded.value()) {
    Logf(L::kInfo, "hash tree of 2^%d segments loaded (persisted at the last clean "
                         "stop)", flags.tree_bits);
  }
  // Saves small metadata written from the gossip thread and the RPC thread without making
  // them wait for the fsync.
  storage::MetaWriter meta_writer(&engine, [](const std::string& name, const Status& s) {
    Logf(L::kError, "cannot save %s: %s", name.c_str(), s.ToString().c_str());
  });
  repair::StoreReader repair_reader(&store, &engine, &tree);
  auto io = kj::setupAsyncIo();

  kj::Own<kj::ConnectionReceiver> listener;
  kj::Maybe<kj::Exception> bind_error = kj::runCatchingExceptions([&]() {
    listener = io.provider->getNetwork().parseAddress(flags.listen).wait(io.waitScope)->listen();
  });
  KJ_IF_MAYBE (e, bind_error) {
    return Fail("cannot listen on " + flags.listen + ": " + e->getDescription().cStr());
  }
  std::string host;
  int port = 0;
  (void)rpc::ParseHostPort(flags.listen, true, &host, &port);
  const std::string rpc_address =
      (flags.advertise_ip.empty() ? host : flags.advertise_ip) + ":" +
      std::to_string(listener->getPort());

  // In the ring already (a restart), or the first node of a new cluster: normal, with its
  // tokens. Otherwise it joins: it gossips state joining with no tokens (in no ring) until its
  // join movement claims them.
  auto joined = storage::LoadFlag(engine, "joined");
  if (!joined.ok()) return Fail(joined.status().ToString());
  std::string saved_peers;
  if (Status s = engine.GetMeta("peers", &saved_peers); !s.ok() && !s.IsNotFound()) {
    return Fail("cannot read the saved peers: " + s.ToString());
  }
  std::uint64_t replace_id = 0;
  if (!flags.replace.empty()) replace_id = std::stoull(flags.replace, nullptr, 16);  // checked
  const bool first_node = flags.seeds.empty() && saved_peers.empty() && replace_id == 0;
  if (!joined.value() && (first_node || flags.gossip.empty())) {
    if (Status s = storage::StoreFlag(engine, "joined"); !s.ok()) return Fail(s.ToString());
    joined = true;
  }
  if (joined.value() && replace_id != 0) {
    Logf(L::kWarning, "--replace ignored: this node is in the ring already");
    replace_id = 0;
  }
  mb::AppState app;
  app.rack = flags.rack;
  app.rpc_address = rpc_address;
  app.load_bytes = engine.ApproximateBytes();
  app.dots_life = store.life();
  if (joined.value()) {
    app.tokens = tokens.value();
    app.state = mb::NodeState::kNormal;
  } else {
    app.state = mb::NodeState::kJoining;
  }

  std::unique_ptr<mb::GossipAgent> agent;
  std::unique_ptr<SeedResolver> seed_resolver;  // with seeds given as names, while joining
  std::unique_ptr<rpc::ClusterControl> control;
  GossipControl* gossip_control_ptr = nullptr;
  std::string gossip_line;
  if (!flags.gossip.empty()) {
    mb::AgentOptions ao;
    ao.config = flags.config;
    ao.config.forget_after = std::chrono::seconds(flags.gossip_forget_after_s);
    ao.config.ghost_ttl = std::chrono::seconds(flags.gossip_ghost_ttl_s);
    ao.config.removed_ttl = std::chrono::seconds(flags.gossip_removed_ttl_s);
    ao.streams.max_incoming = flags.gossip_max_streams;
    ao.streams.max_bytes = flags.gossip_max_stream_bytes;
    ao.streams.timeout = std::chrono::milliseconds(flags.gossip_stream_timeout_ms);
    ao.security = flags.gossip_security;
    ao.self = id;
    (void)mb::ParseEndpoint(flags.gossip, &ao.gossip);
    if (!flags.advertise_ip.empty()) {
      mb::Endpoint a;
      (void)mb::ParseEndpoint(flags.advertise_ip + ":0", &a);  // resolved in main
      ao.advertise_ip = a.ip;
    }
    ao.generation = generation.value();
    ao.app = app;
    ao.seeds = flags.seed_endpoints;
    ao.removed = removed.value();
    // Each tombstone keeps its age across the restart (membership.h, "Removal").
    // Ages are rounded up: a tombstone may end a second early here, never late.
    if (removed_at->size() == removed->size()) {
      const std::uint64_t now_ms = wall_clock_ms();
      for (std::uint64_t at : removed_at.value()) {
        const std::uint64_t age_ms = now_ms > at ? now_ms - at : 0;
        ao.removed_ages_s.push_back(
            static_cast<std::uint32_t>(std::min<std::uint64_t>((age_ms + 999) / 1000, UINT32_MAX)));
      }
    } else if (!removed->empty()) {
      Logf(L::kWarning, "%zu removed ids kept without their removal times: each is refused for "
                   "another --gossip-removed-ttl-s",
                   removed->size());
    }
    // The peers known before this restart: the whole ring from the first request on.
    if (!saved_peers.empty()) {
      std::string why;
      if (!mb::DecodeSavedPeers(saved_peers, flags.config.cluster_name, &ao.restored, &why)) {
        Logf(L::kWarning, "ignoring the saved peers: they %s", why.c_str());
        ao.restored.clear();
      }
    }
    // A restarted node syncs with the peers it knew, as with seeds, before it serves: its saved
    // view may be old (a movement may have ended meanwhile).
    for (const auto& m : ao.restored) {
      if (m.id != id && !mb::Gone(m) && m.liveness != mb::Liveness::kRemoved &&
          std::find(ao.seeds.begin(), ao.seeds.end(), m.gossip) == ao.seeds.end()) {
        ao.seeds.push_back(m.gossip);
      }
    }
    ao.seed = id ^ (generation.value() * 0x9e3779b97f4a7c15ull);
    // On the gossip thread: the writes go to the metadata writer's thread, so that probes and
    // acks never wait for an fsync.
    ao.on_removed_changed = [&meta_writer, wall_clock_ms](const std::vector<mb::NodeId>& ids,
                                                          const std::vector<std::uint32_t>& ages) {
      const std::uint64_t now_ms = wall_clock_ms();
      std::vector<std::uint64_t> at;
      for (std::uint32_t age : ages) {
        const std::uint64_t age_ms = std::uint64_t{age} * 1000;
        at.push_back(now_ms > age_ms ? now_ms - age_ms : 0);
      }
      meta_writer.Put("removed_ids", storage::EncodeU64List(ids));
      meta_writer.Put("removed_at_ms", storage::EncodeU64List(at));
    };
    // Saves the peers when who they are changes (not their liveness). A crash just after
    // learning a peer may lose it from the saved list: the restarted node syncs with the peers
    // it saved before it serves, and learns it again from them.
    ao.on_view = [&meta_writer, cluster = flags.config.cluster_name,
                  saved_sig = std::uint64_t{0}](const mb::ClusterView& view) mutable {
      const std::uint64_t sig = mb::SavedPeersSignature(view);
      if (sig == saved_sig) return;
      meta_writer.Put("peers", mb::EncodeSavedPeers(view, cluster));
      saved_sig = sig;
    };
    ao.on_refused = [&engine, id]() {
      (void)storage::StoreFlag(engine, "removed_self");
      Logf(L::kError, "the cluster says node %s was removed (kvtool removenode); refusing to "
                   "run with this data directory",
                   Hex(id).c_str());
      g_refused = true;
      kill(getpid(), SIGTERM);
    };
    const std::vector<mb::Endpoint> seeds_for_join = ao.seeds;
    std::vector<mb::Endpoint> named_at_start;
    for (std::size_t i = 0; i < flags.seed_endpoints.size(); ++i) {
      if (flags.seed_from_name[i]) named_at_start.push_back(flags.seed_endpoints[i]);
    }
    agent = std::make_unique<mb::GossipAgent>(std::move(ao));
    std::string error;
    if (!agent->Start(&error)) return Fail(error);
    auto gossip_control = std::make_unique<GossipControl>(agent.get());
    gossip_control_ptr = gossip_control.get();
    control = std::move(gossip_control);
    gossip_line = " gossip on " + mb::ToString(agent->endpoint());
    if (!flags.seed_names.empty()) {
      // The seeds resolved at start from names are left out: each attempt resolves them anew.
      std::vector<mb::Endpoint> fixed;
      for (const mb::Endpoint& s : seeds_for_join) {
        if (std::find(named_at_start.begin(), named_at_start.end(), s) == named_at_start.end()) {
          fixed.push_back(s);
        }
      }
      seed_resolver = std::make_unique<SeedResolver>(
          agent.get(), flags.seed_names, std::move(fixed),
          std::chrono::duration_cast<std::chrono::milliseconds>(flags.config.join_retry_interval));
    }
  } else {
    mb::ClusterView view;
    view.self = id;
    mb::MemberView self;
    self.id = id;
    self.generation = generation.value();
    self.app = app;
    view.members.push_back(self);
    control = std::make_unique<LocalControl>(std::move(view));
  }

  // A message may hold a key and two records at the record cap (a merge of two sides of a
  // partition that each reached it), plus envelope.
  const std::size_t max_message = limits.max_key_bytes + 2 * limits.max_record_bytes + 64 * 1024;
  rpc::WriteBatcher batcher(&store, {flags.max_queued_writes, flags.max_queued_write_bytes});
  // Storage work never runs on this (the RPC) thread: client and replica reads on `pool`;
  // repair and movement steps, purges, hint scans, cleanup and tree rebuilds on `background`,
  // so that a repair scanning everything does not queue ahead of the reads.
  // With --background-nice, where the cores are short, bulk work yields to the requests clients
  // wait for instead of sharing the CPU with them equally. Not the default: with 10, two joins
  // under writes in a TSan build missed a test's 90 s deadline (the cause is not confirmed).
  rpc::StoragePool pool({flags.storage_threads, flags.storage_max_queued, "kv-read", 0});
  rpc::StoragePool background({flags.background_threads, flags.storage_max_queued,
                               "kv-background", flags.background_nice});
  std::atomic<bool> stopping{false};  // cancels a tree rebuild's scan at the stop
  // Outgoing connections leave from the listen address, so peers see this node's own address.
  rpc::PeerPool::Options peer_options;
  peer_options.tls = flags.tls.get();
  rpc::PeerPool peers(io, rpc::SourceHostOf(flags.listen), max_message, peer_options);
  rpc::CoordinatorOptions co;
  co.replication = flags.replication;
  co.request_timeout = flags.request_timeout_ms * kj::MILLISECONDS;
  co.handoff_interval = flags.handoff_interval_ms * kj::MILLISECONDS;
  co.hint_ttl_s = flags.tombstone_grace_s;  // see CoordinatorOptions::hint_ttl_s
  co.clock_s = wall_clock_s;
  rpc::Coordinator coordinator(&store, &pool, &background, &batcher, control.get(), &peers, co);
  auto handoff = coordinator.RunHandoff().eagerlyEvaluate([](kj::Exception&& e) {
    Logf(L::kError, "hinted handoff stopped: %s", e.getDescription().cStr());
  });
  rpc::RepairRunner::Options ro_repair;
  ro_repair.tree_bits = flags.tree_bits;
  ro_repair.n = flags.replication.n;
  ro_repair.timeout = flags.request_timeout_ms * 5 * kj::MILLISECONDS;
  ro_repair.rate_bytes_per_s = flags.repair_rate_bytes;
  ro_repair.tombstone_grace_s = flags.tombstone_grace_s;
  ro_repair.clock = wall_clock_s;
  rpc::RepairRunner repair_runner(&background, &repair_reader, id, control.get(), &peers,
                                  ro_repair);
  rpc::MovementRunner::Options mo;
  mo.tree_bits = flags.tree_bits;
  mo.n = static_cast<std::size_t>(flags.replication.n);
  mo.timeout = flags.request_timeout_ms * 5 * kj::MILLISECONDS;
  mo.rate_bytes_per_s = flags.movement_rate_bytes;
  rpc::MovementRunner movement(&background, &repair_reader, id, control.get(), &peers, mo,
                               [&meta_writer](const std::string& encoded) {
                                 meta_writer.Put("movement", encoded);
                                 return Status::Ok();
                               });
  // Starts a movement this node drives, resuming its checkpoint if an earlier run left one.
  IgnoreErrors log_errors;
  kj::TaskSet movement_tasks(log_errors);
  std::function<Status(mb::MovementKind, mb::NodeId)> start_movement =
      [&](mb::MovementKind kind, mb::NodeId subject) -> Status {
    if (!agent) return Status::Unavailable("ring movements need --gossip");
    if (kind == mb::MovementKind::kDecommission || kind == mb::MovementKind::kRemove) {
      // (Removing the dead driver of a stalled movement is allowed: it supersedes it.)
      if (auto mv = mb::MovementOf(*control->View());
          mv && mv->driver != id &&
          !(kind == mb::MovementKind::kRemove && mv->driver == subject &&
            mv->kind != mb::MovementKind::kRemove)) {
        return Status::Unavailable("refused: another movement is in progress: " +
                                   mb::Describe(*mv));
      }
    }
    mb::MovementDriver::Options d;
    d.kind = kind;
    d.self = id;
    d.subject = subject;
    d.n = static_cast<std::size_t>(flags.replication.n);
    d.tokens = tokens.value();
    d.retry_interval = std::chrono::milliseconds(std::max(50, flags.probe_interval_ms / 2));
    d.barrier_timeout = std::chrono::seconds(60);
    mb::MovementCheckpoint resumed;
    std::string saved;
    if (engine.GetMeta("movement", &saved).ok() && !saved.empty() &&
        !mb::DecodeCheckpoint(saved, &resumed)) {
      Logf(L::kWarning, "ignoring a malformed movement checkpoint");
    }
    if (!resumed.done.empty() && resumed.kind == kind && resumed.subject == subject) {
      Logf(L::kInfo, "resuming the %s: %zu copies done before", mb::Name(kind),
                   resumed.done.size());
    }
    return movement.Start(d, resumed, [&, kind, subject](mb::MovementKind, const Status& s) {
      if (!s.ok()) {
        Logf(L::kError, "%s of %s failed and was withdrawn: %s", mb::Name(kind),
                     Hex(subject).c_str(), s.ToString().c_str());
        if (kind == mb::MovementKind::kJoin || kind == mb::MovementKind::kReplace) {
          // Try again later: the node has nothing to serve from until it has joined.
          movement_tasks.add(io.provider->getTimer().afterDelay(10 * kj::SECONDS).then([&, kind, subject]() {
            Status again = start_movement(kind, subject);
            if (!again.ok()) Logf(L::kError, "%s", again.ToString().c_str());
          }));
        }
        return;
      }
      const mb::MovementProgress& p = movement.last_progress();
      Logf(L::kInfo, "%s of %s complete: %zu range copies, %llu bytes of records copied",
                   mb::Name(kind), Hex(subject).c_str(), p.copies_total,
                   static_cast<unsigned long long>(p.bytes_copied));
      if (kind == mb::MovementKind::kJoin || kind == mb::MovementKind::kReplace) {
        if (kind == mb::MovementKind::kReplace) {
          auto view = control->View();
          if (const mb::MemberView* self = view->Find(id)) {
            (void)storage::StoreU64List(engine, "tokens", self->app.tokens);
          }
        }
        if (Status f = storage::StoreFlag(engine, "joined"); !f.ok()) {
          Logf(L::kError, "cannot record the join: %s", f.ToString().c_str());
        }
      } else if (kind == mb::MovementKind::kDecommission) {
        // Its ranges are with their new replicas: leave (LEFT) and stop.
        g_decommissioned = true;
        kill(getpid(), SIGTERM);
      }
    });
  };
  rpc::NodeServices services;
  services.movement = agent ? &movement : nullptr;
  if (agent && flags.gossip_security) {
    services.keyring = KeyringRequests(agent.get(), flags.gossip_key_file);
  }
  if (agent) services.start_movement = start_movement;
  // A new node serves nothing before it holds the cluster's state (it would coordinate from a
  // partial view). A node that was in the ring already restarts with its saved view: it waits
  // for a peer's state a few seconds at most, then serves from the saved view (its peers may
  // all be down).
  const auto started = std::chrono::steady_clock::now();
  const bool was_in_ring = joined.value();
  services.serving = [&control, started, was_in_ring]() -> Status {
    if (control->View()->synced) return Status::Ok();
    if (was_in_ring && std::chrono::steady_clock::now() - started > std::chrono::seconds(5)) {
      return Status::Ok();
    }
    return Status::Unavailable(was_in_ring
                                   ? "restarting: waiting for the cluster's state from a peer"
                                   : "not joined yet: waiting for the cluster's state from a seed");
  };
  // The saved life is taken once a peer answered with the cluster's state and nobody knows a
  // life of this node after the stop that saved it (membership's self_restored: the directory
  // is a restored copy, and that life may have issued dots its records lack); alone (no
  // gossip) at once. If nobody answers within the 5 s the gate waits, or the node turns out to
  // be a restored copy, the fresh life stays.
  std::function<kj::Promise<void>()> decide_life = [&]() -> kj::Promise<void> {
    auto view = control->View();
    const bool waited_out = std::chrono::steady_clock::now() - started > std::chrono::seconds(5);
    if (!agent || view->synced || waited_out) {
      if (view->self_restored) {
        const mb::MemberView* self = view->Find(id);
        const std::uint64_t raised = self != nullptr ? self->generation : 0;
        Logf(L::kWarning, "node %s lived on after the state of this data directory (restored "
                     "from an older copy?): generation raised to %llu, and its writes take a new "
                     "dot life",
                     Hex(id).c_str(), static_cast<unsigned long long>(raised));
        if (raised != 0) (void)storage::StoreU64List(engine, "generation", {raised});
      } else if ((!agent || view->synced) && saved_life.value().dots.life != 0 &&
                 store.dots().ConfirmResume()) {
        Logf(L::kInfo, "resumed the dot life of the last clean stop");
        if (agent) {
          const std::uint64_t life = store.life();
          agent->MutateApp([life](mb::AppState& a) { a.dots_life = life; });
        }
      }
      return kj::READY_NOW;
    }
    return io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).then(decide_life);
  };
  auto deciding_life = decide_life().eagerlyEvaluate(nullptr);
  services.store = &store;
  services.pool = &pool;
  services.background = &background;
  services.cluster = control.get();
  services.batcher = &batcher;
  services.coordinator = &coordinator;
  services.repair_reader = &repair_reader;
  services.repair = &repair_runner;
  services.peers = &peers;
  services.tree_bits = flags.tree_bits;
  rpc::RequestMetrics request_metrics;
  services.metrics = &request_metrics;
  rpc::ClientServer* server_ptr = nullptr;  // set once the server exists, below
  services.counters = [&]() {
    const rpc::CoordinatorCounters& c = coordinator.counters();
    const rpc::ClientServer& server = *server_ptr;
    std::vector<std::pair<std::string, std::uint64_t>> out{
        {"writes_forwarded", c.forwarded},
        {"read_repairs", c.read_repairs},
        {"hints_stored", c.hints_stored},
        {"hints_delivered", c.hints_delivered},
        {"hints_expired", c.hints_expired},
        {"peer_connections_replaced", peers.replaced()},
        {"writes_queued", batcher.queued()},
        {"writes_queued_bytes", batcher.queued_bytes()},
        {"writes_refused_overloaded", batcher.refused()},
        {"writes_refused_sibling_cap", store.refused_siblings()},
        {"writes_refused_record_size", store.refused_record_size()},
        {"connections_open", server.open_connections()},
        {"connections_refused_over_cap", server.refused_connections()},
        {"connections_failed", server.failed_connections()},
        {"accept_failures", server.accept_failures()},
        {"tls_handshakes_refused", server.tls_refused()},
        {"tls_calls_permission_denied", server.permission_denied()},
        {"tls_plain_connections", server.plain_connections()},
        {"storage_jobs_run", pool.ran()},
        {"storage_jobs_queued", pool.queued()},
        {"storage_jobs_refused_overloaded", pool.refused()},
        {"background_jobs_run", background.ran()},
        {"background_jobs_queued", background.queued()},
        {"background_jobs_refused_overloaded", background.refused()},
        {"metadata_writes", meta_writer.written()},
    };
    // Gossip's bounds (membership/membership.h, asio_transport.h).
    if (auto g = control->GossipCounters()) {
      out.insert(out.end(), {
          {"gossip_suspicions_started", g->suspicions_started},
          {"gossip_members_forgotten", g->forgotten},
          {"gossip_ghosts_expired", g->ghosts_expired},
          {"gossip_tombstones_expired", g->tombstones_expired},
          {"gossip_dropped_forgotten", g->dropped_forgotten},
          {"gossip_streams_refused_busy", g->streams_refused_busy},
          {"gossip_streams_refused_oversize", g->streams_refused_oversize},
          {"gossip_streams_timed_out", g->streams_timed_out},
          {"gossip_dropped_unsealed", g->dropped_unsealed},
          {"gossip_dropped_unopened", g->dropped_unopened},
          {"gossip_dropped_replayed", g->dropped_replayed},
      });
    }
    if (auto t = control->GossipTables()) {  // gauges: the tables' sizes now
      out.insert(out.end(), {
          {"gossip_members", t->members},
          {"gossip_tombstones", t->tombstones},
          {"gossip_ghosts", t->ghosts},
      });
    }
    return out;
  };
  rpc::ClientServer::Options so;
  so.max_connections = max_connections;
  so.flow_limit_bytes = flags.connection_flow_limit_bytes;
  so.message_timeout = flags.message_timeout_ms * kj::MILLISECONDS;
  rpc::ClientServer server(kj::heap<rpc::ClientService>(services), max_message,
                           io.provider->getTimer(), so, flags.tls.get());
  server_ptr = &server;

  // /metrics (--metrics), served on this thread: everything read here lives on it, or is
  // atomic.
  kj::Own<rpc::MetricsServer> metrics_server;
  kj::Promise<void> metrics_serving = kj::READY_NOW;
  if (!flags.metrics.empty()) {
    kj::Own<kj::ConnectionReceiver> metrics_listener;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      metrics_listener =
          io.provider->getNetwork().parseAddress(flags.metrics).wait(io.waitScope)->listen();
    })) {
      return Fail("--metrics " + flags.metrics + ": " + e->getDescription().cStr());
    }
    auto render = [&]() {
      return RenderMetrics(request_metrics, coordinator, server, batcher, pool, background,
                           store, engine, *control, peers, repair_runner, movement);
    };
    metrics_server = kj::heap<rpc::MetricsServer>(io.provider->getTimer(),
                                                  kj::mv(metrics_listener), render);
    metrics_serving = metrics_server->Run().eagerlyEvaluate([](kj::Exception&& e) {
      Logf(L::kError, "metrics endpoint stopped: %s", e.getDescription().cStr());
    });
    Logf(L::kInfo, "metrics on %s:%u", flags.metrics.substr(0, flags.metrics.rfind(':')).c_str(),
         static_cast<unsigned>(metrics_server->port()));
  }

  // Background anti-entropy: every interval, jittered by up to a tenth either way, unless a
  // repair is already running (one at a time per node).
  std::mt19937_64 jitter_rng(id ^ generation.value());
  std::function<kj::Promise<void>()> periodic = [&]() -> kj::Promise<void> {
    const double base = flags.repair_interval_s;
    const double jitter = std::uniform_real_distribution<double>(-0.1, 0.1)(jitter_rng);
    const auto delay = static_cast<std::int64_t>(base * (1 + jitter) * 1000) * kj::MILLISECONDS;
    return io.provider->getTimer().afterDelay(delay).then([&]() -> kj::Promise<void> {
      if (repair_runner.running()) return periodic();
      return repair_runner.Run(false).then([&](rpc::RepairSummary&& s) {
        std::uint64_t moved = 0;
        for (const auto& [peer, t] : s.peers) moved += t.keys_sent + t.keys_received;
        Logf(L::kInfo, "background repair: %zu of %zu ranges, %llu keys moved, %llu tombstones "
                     "purged, %s",
                     s.ranges_compared, s.ranges_total, static_cast<unsigned long long>(moved),
                     static_cast<unsigned long long>(s.tombstones_purged),
                     s.status.ToString().c_str());
        return periodic();
      });
    });
  };
  // A rebuild of the hash tree from the data, on the background pool (writes go on meanwhile).
  auto rebuild_tree = [&]() -> kj::Promise<void> {
    const auto t0 = std::chrono::steady_clock::now();
    const bool was_ready = tree.ready();
    return background
        .Run<Result<std::size_t>>(
            [&store, &engine, &tree, &stopping]() {
              return repair::RebuildLive(store, engine, tree, &stopping);
            })
        .then([t0, was_ready](Result<std::size_t>&& differ) {
          const double secs =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (!differ.ok()) {
            Logf(L::kError, "hash tree rebuild failed: %s",
                         differ.status().ToString().c_str());
          } else if (!was_ready) {
            Logf(L::kInfo, "hash tree built from the data in %.2f s", secs);
          } else if (differ.value() > 0) {
            Logf(L::kWarning, "hash tree rebuilt in %.2f s: %zu segments had drifted from the "
                         "data (corruption?); the next repairs compare the data as it is",
                         secs, differ.value());
          }
        });
  };
  std::function<kj::Promise<void>()> rebuild = [&]() -> kj::Promise<void> {
    const auto delay =
        static_cast<std::int64_t>(flags.tree_rebuild_interval_s * 1000) * kj::MILLISECONDS;
    return io.provider->getTimer().afterDelay(delay).then([&]() {
      return rebuild_tree().then([&]() { return rebuild(); });
    });
  };
  // Without a persisted tree, the first build starts now.
  kj::Promise<void> first_build =
      tree.ready() ? kj::Promise<void>(kj::READY_NOW) : rebuild_tree().eagerlyEvaluate(nullptr);
  kj::Promise<void> rebuilding = kj::READY_NOW;
  if (flags.tree_rebuild_interval_s > 0) rebuilding = rebuild().eagerlyEvaluate(nullptr);
  kj::Promise<void> repairing = kj::READY_NOW;
  if (flags.repair_interval_s > 0 && agent) {
    repairing = periodic().eagerlyEvaluate([](kj::Exception&& e) {
      Logf(L::kError, "background repair stopped: %s", e.getDescription().cStr());
    });
  }
  auto accepting = server.Listen(*listener).eagerlyEvaluate([](kj::Exception&& e) {
    kv::log::WriteLimited(L::kError, "accept failed",
                          std::string("accept failed: ") + e.getDescription().cStr());
  });

  // Keeps the gossiped load current.
  std::function<kj::Promise<void>()> refresh = [&]() -> kj::Promise<void> {
    return io.provider->getTimer().afterDelay(200 * kj::MILLISECONDS).then([&]() {
      if (agent) {
        const std::uint64_t load = engine.ApproximateBytes();
        if (load / (1 << 20) != app.load_bytes / (1 << 20)) {  // spread MiB-level changes
          app.load_bytes = load;
          agent->MutateApp([load](mb::AppState& a) { a.load_bytes = load; });
        }
      }
      return refresh();
    });
  };
  auto refreshing = refresh().eagerlyEvaluate(nullptr);
  if (agent && !joined.value()) {
    const mb::MovementKind kind = replace_id != 0 ? mb::MovementKind::kReplace : mb::MovementKind::kJoin;
    if (Status s = start_movement(kind, replace_id != 0 ? replace_id : id); !s.ok()) {
      return Fail(s.ToString());
    }
  }

  std::printf("kvd: node %s generation %" PRIu64 " listening on %s%s\n", Hex(id).c_str(),
              generation.value(), rpc_address.c_str(), gossip_line.c_str());
  std::fflush(stdout);
  (void)sd_notify(0, "READY=1\nSTATUS=serving");  // under systemd (Type=notify); else nothing

  // SIGHUP reopens the log file (after logrotate moved it away) and re-reads log-level from
  // the config file (unless --log-level was given); every other setting needs a restart.
  std::function<kj::Promise<void>()> on_hangup = [&]() -> kj::Promise<void> {
    return io.unixEventPort.onSignal(SIGHUP).then([&](siginfo_t) {
      const Status s = kv::log::Reopen();
      if (s.ok()) {
        Logf(L::kInfo, "caught SIGHUP: log reopened");
      } else {
        Logf(L::kError, "caught SIGHUP: %s", s.ToString().c_str());
      }
      if (!flags.config_file.empty() && !flags.log_level_on_command_line) {
        auto entries = kv::tools::ReadConfigFile(flags.config_file);
        std::string text = "info";  // the default, when the file has none
        if (entries.ok()) {
          for (const auto& e : entries.value()) {
            if (e.key == "log-level") text = e.value;
          }
        }
        kv::log::Level level = kv::log::Level::kInfo;
        if (entries.ok() && kv::log::ParseLevel(text, &level)) {
          kv::log::SetLevel(level);
          Logf(L::kWarning, "caught SIGHUP: log level %s, from %s", text.c_str(),
               flags.config_file.c_str());
        } else {
          Logf(L::kError, "caught SIGHUP: %s; the log level stays as it was",
               entries.ok() ? ("log-level '" + text + "' is not debug, info, warning or error").c_str()
                            : entries.status().message().c_str());
        }
      }
      return on_hangup();
    });
  };
  auto hangups = on_hangup().eagerlyEvaluate(nullptr);
  auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
  siginfo_t info = stop.wait(io.waitScope);
  (void)sd_notify(0, "STOPPING=1");
  Logf(L::kInfo, "caught %s, stopping",
               info.si_signo == SIGTERM ? "SIGTERM" : "SIGINT");
  // Each step of the stop, timed: a stop that takes long says where.
  auto stop_mark = std::chrono::steady_clock::now();
  auto stop_step = [&stop_mark](const char* what) {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - stop_mark).count();
    if (s > 1) Logf(L::kInfo, "stopping: %s took %.1f s", what, s);
    stop_mark = now;
  };

  hangups = nullptr;
  refreshing = nullptr;
  deciding_life = nullptr;
  handoff = nullptr;
  repairing = nullptr;
  rebuilding = nullptr;
  stopping = true;  // a rebuild's scan stops early; the tree stays as it was
  first_build = nullptr;
  // The generation the dots' life is saved with: raised, if this node turned out restored.
  std::uint64_t stop_generation = generation.value();
  if (const mb::MemberView* self = control->View()->Find(id)) stop_generation = self->generation;
  // A stop keeps the node's ranges (the others see it DOWN and keep hints for it); only a
  // decommission leaves: then linger a few gossip rounds so the LEFT news gets out.
  if (agent) {
    seed_resolver.reset();
    if (g_decommissioned && !g_refused)
      agent->LeaveAndStop(
          std::max(flags.config.gossip_interval * 5, mb::Duration(std::chrono::milliseconds(500))));
    gossip_control_ptr->Detach();
    agent.reset();
    stop_step("leaving gossip");
  }
  // Refuse new requests, apply the writes already received, send every reply ready to go,
  // then close every connection and the database.
  server.service().BeginShutdown();
  server.service().Drain().wait(io.waitScope);
  io.waitScope.poll();
  stop_step("applying the writes received");
  // Storage jobs still queued (repair merges, purges) finish; nothing writes after this.
  pool.Stop();
  background.Stop();
  io.waitScope.poll();
  meta_writer.Flush();
  stop_step("finishing storage jobs");
  // A clean stop: every write is made durable, the hash tree persisted (trusted at the next
  // start), then the dots' life is saved for the next start.
  if (!g_decommissioned && !g_refused) {
    Status synced = engine.SyncLog();
    if (synced.ok()) {
      if (Status t = repair::PersistTree(engine, tree); !t.ok()) {
        Logf(L::kWarning, "could not persist the hash tree (the next start rebuilds it): "
                             "%s", t.ToString().c_str());
      }
    }
    // A generation raised after start (a restored copy found out late) is kept, so that the
    // next start bumps above it.
    if (synced.ok() && stop_generation > generation.value()) {
      synced = storage::StoreU64List(engine, "generation", {stop_generation});
    }
    if (synced.ok()) synced = storage::SaveLife(engine, {store.dots().State(), stop_generation});
    if (!synced.ok()) {
      Logf(L::kWarning, "could not save the dot life (the next start takes a new one): %s",
                   synced.ToString().c_str());
    }
  }
  accepting = nullptr;
  listener = nullptr;
  peers.Clear();
  return g_refused ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"kvd: a node of the kv store"};
  // Every option knows its default, for --print-config.
  app.option_defaults()->always_capture_default();
  std::string config_file;
  bool print_config = false;
  app.add_option("--config", config_file,
                 "TOML file of settings: each key a flag without its dashes (data-dir = ...); "
                 "flags given here win over it");
  app.add_flag("--print-config", print_config,
               "Print the effective settings (defaults, the file, flags) as a config file and "
               "exit");
  app.add_option("--data-dir", flags.data_dir,
                 "Directory for this node's RocksDB data (required)");
  app.add_option("--listen", flags.listen, "HOST:PORT for the client API (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--max-key-bytes", flags.max_key_bytes, "Largest key accepted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--max-value-bytes", flags.max_value_bytes, "Largest value accepted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{256} << 20));
  app.add_flag("--sync-writes", flags.sync_writes,
               "fsync the WAL before acknowledging each write batch (default: WAL without fsync)");
  app.add_option("--wal-sync-interval-ms", flags.wal_sync_interval_ms,
                 "Without --sync-writes: fsync the WAL this often, bounding what a machine crash "
                 "can lose (0: only when RocksDB flushes)")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  auto* b = app.add_option_group("bounds (each hit is counted in kvtool stats)");
  b->add_option("--max-siblings", flags.max_siblings,
                "Concurrent values a key may hold; a write past it is refused (read the key and "
                "write with its context)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16));
  b->add_option("--max-record-bytes", flags.max_record_bytes,
                "Bytes a key's values may take together; a write past it is refused (at least "
                "--max-value-bytes plus 64 KiB)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 16, std::size_t{1} << 30));
  b->add_option("--max-queued-writes", flags.max_queued_writes,
                "Writes waiting for the disk past which new ones are refused as overloaded")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  b->add_option("--max-queued-write-bytes", flags.max_queued_write_bytes,
                "Bytes of keys and values waiting for the disk past which writes are refused as "
                "overloaded")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 16, std::size_t{1} << 40));
  b->add_option("--max-connections", flags.max_connections,
                "Client and peer connections open at once; more are closed at once")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  b->add_option("--connection-flow-limit-bytes", flags.connection_flow_limit_bytes,
                "Per connection: bytes of requests received and not yet answered before the "
                "node stops reading from it")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 20, std::size_t{1} << 34));
  b->add_option("--message-timeout-ms", flags.message_timeout_ms,
                "Per connection: how long a request may stay half-sent before the connection "
                "is closed")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  app.add_option("--storage-threads", flags.storage_threads,
                 "Threads that run reads, scans and repair steps off the RPC thread")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}));
  app.add_option("--background-threads", flags.background_threads,
                 "Threads that run repair, movement, hint, cleanup and tree-rebuild storage work")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}));
  app.add_option("--background-nice", flags.background_nice,
                 "Nice levels the background threads run below the others (10: client requests "
                 "first where cores are short; repairs and movements then take longer under load)")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  app.add_option("--storage-max-queued", flags.storage_max_queued,
                 "Reads and scans waiting for a storage thread past which requests are refused "
                 "as overloaded")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  auto* t = app.add_option_group("testing (never in production)");
  t->add_flag("--testing-lose-unsynced-on-kill", flags.testing_lose_unsynced_on_kill,
              "TESTING ONLY: hold unsynced writes in process memory, so that killing the process "
              "loses them as a power loss would");
  t->add_option("--testing-clock-offset-s", flags.testing_clock_offset_s,
                "TESTING ONLY: run the wall clock this many seconds off (negative: behind)")
      ->check(CLI::Range(std::int64_t{-86400 * 365}, std::int64_t{86400 * 365}));
  auto* g = app.add_option_group("membership");
  g->add_option("--gossip", flags.gossip,
                "IPv4:PORT for gossip, UDP and TCP (port 0: any free port); without it the "
                "node runs alone");
  g->add_option("--seeds", flags.seeds,
                "Comma-separated HOST:PORT gossip addresses to join (IPv4 addresses or names, "
                "resolved at start)");
  g->add_option("--rack", flags.rack, "Rack name, for rack-aware placement");
  g->add_option("--cluster-name", flags.config.cluster_name,
                "Gossip from other cluster names is dropped")
      ->capture_default_str();
  g->add_option("--vnodes", flags.vnodes, "Ring tokens chosen at first start")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  g->add_option("--probe-interval-ms", flags.probe_interval_ms)
      ->capture_default_str()
      ->check(CLI::Range(10, 600000));
  g->add_option("--probe-timeout-ms", flags.probe_timeout_ms)
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  g->add_option("--indirect-probes", flags.config.indirect_probes, "k members asked to ping-req")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  g->add_option("--retry-direct-probe", flags.retry_direct_probe,
                "on: a ping left unanswered is sent once more with the ping-reqs")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  g->add_option("--gossip-fanout", flags.config.gossip_fanout)
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  g->add_option("--gossip-interval-ms", flags.gossip_interval_ms)
      ->capture_default_str()
      ->check(CLI::Range(10, 600000));
  g->add_option("--suspicion-mult", flags.config.suspicion_mult)
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  g->add_option("--retransmit-mult", flags.config.retransmit_mult)
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  g->add_option("--push-pull-interval-ms", flags.push_pull_interval_ms)
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  g->add_option("--gossip-forget-after-s", flags.gossip_forget_after_s,
                "Members gone from the ring (LEFT, removed, DOWN without tokens) are dropped from "
                "the tables after this long (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{365} * 86400));
  g->add_option("--gossip-ghost-ttl-s", flags.gossip_ghost_ttl_s,
                "How long a forgotten member's last life is remembered, to refuse stale gossip "
                "of it")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{365} * 86400));
  g->add_option("--gossip-removed-ttl-s", flags.gossip_removed_ttl_s,
                "How long a removed id stays refused (0: for ever, within the tombstone cap)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3650} * 86400));
  g->add_option("--gossip-max-streams", flags.gossip_max_streams,
                "Incoming push-pull connections open at once; more are closed at accept")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
  g->add_option("--gossip-max-stream-bytes", flags.gossip_max_stream_bytes,
                "Largest push-pull message taken (8 MiB: a cluster of about 7,000 nodes)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint32_t{64} << 10, std::uint32_t{1} << 30));
  g->add_option("--gossip-stream-timeout-ms", flags.gossip_stream_timeout_ms,
                "A push-pull connection not complete by then is closed")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  g->add_option("--gossip-key-file", flags.gossip_key_file,
                "Seal gossip with AES-256-GCM: a file (mode 600) of base64 keys from kvtool "
                "keygen, one per line, the first sealing, every one opening");
  g->add_option("--gossip-encryption", flags.gossip_encryption,
                "With a key file: require (default) takes sealed gossip only; seal sends sealed "
                "and takes plain too; accept sends plain and takes both. A running cluster "
                "moves to sealed gossip by rolling restarts: accept, then seal, then require")
      ->check(CLI::IsMember({"accept", "seal", "require"}));
  auto* tg = app.add_option_group("tls");
  tg->add_option("--tls-cert", flags.tls_cert,
                "Mutual TLS on the RPC port: this node's certificate (PEM), common name "
                "node:IDENTITY and IDENTITY as a DNS name (tools/certs.sh makes them)");
  tg->add_option("--tls-key", flags.tls_key, "Its private key (PEM)");
  tg->add_option("--tls-ca", flags.tls_ca, "The cluster CA (PEM): the only one trusted");
  tg->add_option("--tls-identity", flags.tls_identity,
                "The cluster identity every node certificate names; peers are verified against "
                "it, never against anything heard through gossip")
      ->capture_default_str();
  tg->add_option("--tls-mode", flags.tls_mode,
                "require (default) takes TLS only; connect takes TLS and plain and dials peers "
                "with TLS; accept takes both and dials in plain. A running cluster moves to "
                "TLS by rolling restarts: accept, then connect, then require")
      ->check(CLI::IsMember({"accept", "connect", "require"}));
  app.add_option("--advertise", flags.advertise,
                 "The address peers and clients reach this node at (an IPv4 address or a name, "
                 "resolved at start), with the ports --listen and --gossip bind; required when "
                 "they bind 0.0.0.0");
  app.add_option("--metrics", flags.metrics,
                 "HOST:PORT to serve Prometheus metrics on, at /metrics (port 0: any free port, "
                 "logged); empty: none");
  auto* lg = app.add_option_group("log");
  lg->add_option("--log-level", flags.log_level, "Least level logged")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  lg->add_option("--log-format", flags.log_format,
                 "text: TIME LEVEL node=ID message, one line per event; json: one object per "
                 "line with ts, level, node and msg")
      ->check(CLI::IsMember({"text", "json"}));
  lg->add_option("--log-file", flags.log_file,
                 "Append the log to this file instead of stderr; SIGHUP reopens it");
  auto* r = app.add_option_group("replication");
  r->add_option("--n", flags.replication.n, "Replicas per key (N)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  r->add_option("--r", flags.replication.r, "Replies a read waits for by default (R)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  r->add_option("--w", flags.replication.w, "Acknowledgements a write waits for by default (W)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  r->add_option("--hinted-handoff", flags.hinted_handoff,
                "on: DOWN replicas' writes go to stand-ins as hints, and replicas that time out "
                "get hints; off: neither (repair alone brings them back)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  r->add_option("--request-timeout-ms", flags.request_timeout_ms,
                "Bound on each replica call of a read or write")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  r->add_option("--handoff-interval-ms", flags.handoff_interval_ms,
                "How often hints for members that are UP again are handed off")
      ->capture_default_str()
      ->check(CLI::Range(10, 600000));
  auto* ae = app.add_option_group("anti-entropy");
  ae->add_option("--tree-bits", flags.tree_bits,
                 "Hash tree of 2^bits token segments (every node of a cluster must agree)")
      ->capture_default_str()
      ->check(CLI::Range(8, 22));
  ae->add_option("--repair-interval-s", flags.repair_interval_s,
                 "Background repair every this many seconds, +-10% jitter (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 30 * 86400.0));
  ae->add_option("--repair-rate-bytes", flags.repair_rate_bytes,
                 "Repair traffic limit in bytes per second (0: unlimited)")
      ->capture_default_str();
  ae->add_option("--tree-rebuild-interval-s", flags.tree_rebuild_interval_s,
                 "Rebuild the hash tree from the data this often, to catch disk corruption; "
                 "writes go on during the scan (0: only at start)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 365 * 86400.0));
  auto* mv = app.add_option_group("ring movements");
  mv->add_option("--replace", flags.replace,
                 "Join in place of this dead node (its id in hex, from kvtool status): take its "
                 "tokens and copy its ranges from the other replicas");
  mv->add_option("--movement-rate-bytes", flags.movement_rate_bytes,
                 "Pace of the copies of a join, decommission, replace or removenode, in bytes "
                 "per second (0: unlimited)")
      ->capture_default_str();
  ae->add_option("--tombstone-grace-s", flags.tombstone_grace_s,
                 "Tombstones older than this are purged after a repair confirmed every replica "
                 "of their range holds them; hints older than this are dropped undelivered "
                 "(0: never)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kvd: %s (see kvd --help)\n", e.what());
    return 2;
  }
  const std::vector<std::string> not_settings = {"help", "config", "print-config"};
  flags.config_file = config_file;
  flags.log_level_on_command_line = app.get_option("--log-level")->count() > 0;
  if (!config_file.empty()) {
    auto entries = kv::tools::ReadConfigFile(config_file);
    kv::Status s = entries.ok() ? kv::tools::ApplyConfig(&app, entries.value(), config_file,
                                                         not_settings)
                                : entries.status();
    if (!s.ok()) {
      std::fprintf(stderr, "kvd: %s\n", s.message().c_str());
      return 2;
    }
  }
  if (print_config) {
    std::fputs(kv::tools::PrintConfig(app, not_settings).c_str(), stdout);
    return 0;
  }
  if (flags.data_dir.empty()) {
    std::fprintf(stderr, "kvd: --data-dir is required (or data-dir in the --config file)\n");
    return 2;
  }
  if (flags.max_record_bytes < flags.max_value_bytes + 64 * 1024) {
    std::fprintf(stderr,
                 "kvd: --max-record-bytes %zu is too small for one value of --max-value-bytes "
                 "%zu (it must be at least that plus 64 KiB)\n",
                 flags.max_record_bytes, flags.max_value_bytes);
    return 2;
  }
  std::string host;
  int port = 0;
  if (kv::Status s = kv::rpc::ParseHostPort(flags.listen, true, &host, &port); !s.ok()) {
    std::fprintf(stderr, "kvd: --listen: %s\n", s.message().c_str());
    return 2;
  }
  if (!flags.metrics.empty()) {
    std::string metrics_host;
    int metrics_port = 0;
    if (kv::Status s = kv::rpc::ParseHostPort(flags.metrics, true, &metrics_host, &metrics_port);
        !s.ok()) {
      std::fprintf(stderr, "kvd: --metrics: %s\n", s.message().c_str());
      return 2;
    }
  }
  mb::Endpoint e;
  if (!flags.gossip.empty() && !mb::ParseEndpoint(flags.gossip, &e)) {
    std::fprintf(stderr, "kvd: --gossip: '%s' is not IPv4:PORT\n", flags.gossip.c_str());
    return 2;
  }
  // A wildcard bind says nothing peers could dial: it needs an advertised address.
  const bool wildcard = host == "0.0.0.0" || (!flags.gossip.empty() && e.ip == 0);
  if (wildcard && flags.advertise.empty()) {
    std::fprintf(stderr,
                 "kvd: --listen %s%s%s binds every address: give --advertise with the address "
                 "peers and clients reach this node at\n",
                 flags.listen.c_str(), flags.gossip.empty() ? "" : " / --gossip ",
                 flags.gossip.c_str());
    return 2;
  }
  if (!flags.advertise.empty()) {
    auto ip = ResolveIpv4(flags.advertise);
    if (!ip.ok()) {
      std::fprintf(stderr, "kvd: --advertise: %s\n", ip.status().message().c_str());
      return 2;
    }
    if (ip.value() == "0.0.0.0") {
      std::fprintf(stderr, "kvd: --advertise: 0.0.0.0 is not an address peers can reach\n");
      return 2;
    }
    flags.advertise_ip = ip.value();
  }
  std::stringstream seeds(flags.seeds);
  for (std::string s; std::getline(seeds, s, ',');) {
    const auto colon = s.rfind(':');
    const std::string seed_host = colon == std::string::npos ? s : s.substr(0, colon);
    auto ip = ResolveIpv4(seed_host);
    if (!ip.ok() || !mb::ParseEndpoint(ip.value() + s.substr(colon == std::string::npos ? s.size() : colon), &e) ||
        e.port == 0) {
      std::fprintf(stderr, "kvd: --seeds: '%s' is not HOST:PORT%s%s\n", s.c_str(),
                   ip.ok() ? "" : ": ", ip.ok() ? "" : ip.status().message().c_str());
      return 2;
    }
    flags.seed_endpoints.push_back(e);
    flags.seed_from_name.push_back(ip.value() != seed_host);
    if (ip.value() != seed_host) flags.seed_names.push_back(s);
  }
  if (!flags.replace.empty()) {
    const bool hex = flags.replace.size() <= 16 &&
                     flags.replace.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
    if (!hex || std::stoull(flags.replace, nullptr, 16) == 0) {
      std::fprintf(stderr, "kvd: --replace: '%s' is not a node id (16 hex digits)\n",
                   flags.replace.c_str());
      return 2;
    }
    if (flags.seeds.empty()) {
      std::fprintf(stderr, "kvd: --replace needs --seeds\n");
      return 2;
    }
  }
  const int tls_files = !flags.tls_cert.empty() + !flags.tls_key.empty() + !flags.tls_ca.empty();
  if (tls_files != 0 && tls_files != 3) {
    std::fprintf(stderr, "kvd: TLS needs all three of --tls-cert, --tls-key and --tls-ca\n");
    return 2;
  }
  if (!flags.tls_mode.empty() && tls_files == 0) {
    std::fprintf(stderr, "kvd: --tls-mode needs --tls-cert, --tls-key and --tls-ca\n");
    return 2;
  }
  if (tls_files == 3) {
    rpc::TlsSettings ts;
    ts.cert_file = flags.tls_cert;
    ts.key_file = flags.tls_key;
    ts.ca_file = flags.tls_ca;
    ts.identity = flags.tls_identity;
    if (!flags.tls_mode.empty()) (void)rpc::ParseTlsMode(flags.tls_mode, &ts.mode);
    auto tls = rpc::Tls::Load(ts);
    if (!tls.ok()) {
      std::fprintf(stderr, "kvd: %s\n", tls.status().message().c_str());
      return 2;
    }
    flags.tls = std::move(tls.value());
  }
  if (!flags.gossip_encryption.empty() && flags.gossip_key_file.empty()) {
    std::fprintf(stderr, "kvd: --gossip-encryption needs --gossip-key-file\n");
    return 2;
  }
  if (!flags.gossip_key_file.empty()) {
    if (flags.gossip.empty()) {
      std::fprintf(stderr, "kvd: --gossip-key-file needs --gossip\n");
      return 2;
    }
    std::string error;
    auto ring = kv::tools::LoadGossipKeyFile(flags.gossip_key_file, &error);
    if (!ring) {
      std::fprintf(stderr, "kvd: --gossip-key-file: %s\n", error.c_str());
      return 2;
    }
    mb::SealMode mode = mb::SealMode::kRequire;
    if (flags.gossip_encryption == "accept") mode = mb::SealMode::kAccept;
    if (flags.gossip_encryption == "seal") mode = mb::SealMode::kSeal;
    flags.gossip_security = mb::GossipSecurity{std::move(*ring), mode};
  }
  if (!flags.seeds.empty() && flags.gossip.empty()) {
    std::fprintf(stderr, "kvd: --seeds needs --gossip\n");
    return 2;
  }
  if (flags.probe_timeout_ms >= flags.probe_interval_ms) {
    std::fprintf(stderr, "kvd: --probe-timeout-ms must be below --probe-interval-ms\n");
    return 2;
  }
  if (flags.replication.r > flags.replication.n || flags.replication.w > flags.replication.n) {
    std::fprintf(stderr, "kvd: --r and --w must not exceed --n\n");
    return 2;
  }
  kv::log::Options log_options;
  (void)kv::log::ParseLevel(flags.log_level, &log_options.level);
  (void)kv::log::ParseFormat(flags.log_format, &log_options.format);
  log_options.file = flags.log_file;
  if (kv::Status s = kv::log::Configure(log_options); !s.ok()) {
    std::fprintf(stderr, "kvd: --log-file: %s\n", s.message().c_str());
    return 2;
  }
  flags.replication.hinted_handoff = flags.hinted_handoff == "on";
  flags.config.retry_direct_probe = flags.retry_direct_probe == "on";
  flags.config.probe_interval = std::chrono::milliseconds(flags.probe_interval_ms);
  flags.config.probe_timeout = std::chrono::milliseconds(flags.probe_timeout_ms);
  flags.config.gossip_interval = std::chrono::milliseconds(flags.gossip_interval_ms);
  flags.config.push_pull_interval = std::chrono::milliseconds(flags.push_pull_interval_ms);
  const int rc = Run(flags);
  if (rc == 0) kv::log::Write(L::kInfo, "stopped");
  return rc;
}
