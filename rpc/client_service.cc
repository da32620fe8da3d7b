#include "rpc/client_service.h"

#include <kj/debug.h>

#include <cstdio>
#include <string_view>

#include "rpc/bytes.h"
#include "rpc/keyring.h"
#include "membership/topology.h"
#include "ring/movement.h"
#include "rpc/replica_service.h"
#include "storage/codec.h"

namespace kv::rpc {
namespace {

// An empty context means "saw nothing".
Result<storage::CausalContext> ClientContext(capnp::Data::Reader bytes) {
  if (bytes.size() == 0) return storage::CausalContext();
  return storage::DecodeContext(View(bytes));
}

}  // namespace

namespace {

// The consistency a request asked for; false for a level this build does not know.
bool FromWire(wire::Consistency c, Consistency* out) {
  if (static_cast<std::uint16_t>(c) > static_cast<std::uint16_t>(wire::Consistency::ALL)) {
    return false;
  }
  *out = static_cast<Consistency>(c);
  return true;
}

Status UnknownConsistency() { return Status::InvalidArgument("unknown consistency level"); }

// Fills a get reply from a record: its live siblings and its context.
void FillGet(const Status& status, const storage::Record& record,
             wire::KvClient::GetResults::Builder results) {
  if (!status.ok()) {
    ToWire(status, results.initStatus());
    return;
  }
  const auto& siblings = record.siblings();
  std::size_t live = 0;
  for (const auto& s : siblings) live += s.tombstone ? 0 : 1;
  auto out = results.initSiblings(live);
  std::size_t i = 0;
  for (const auto& s : siblings) {
    if (s.tombstone) continue;
    out[i++].setValue(Bytes(s.value));
  }
  if (!record.empty()) results.setContext(Bytes(storage::EncodeContext(record.context())));
  ToWire(live == 0 ? Status::NotFound("key not found") : Status::Ok(), results.initStatus());
}

}  // namespace

ClientService::ClientService(const NodeServices& node)
    : node_(node),
      store_(node.store),
      cluster_(node.cluster),
      batcher_(node.batcher),
      coordinator_(node.coordinator),
      replica_(kj::heap<ReplicaService>(node, &shutting_down_)) {}

namespace {

void FillSummary(const RepairSummary& s, wire::RepairSummary::Builder out) {
  ToWire(s.status, out.initStatus());
  out.setDryRun(s.dry_run);
  out.setRangesTotal(s.ranges_total);
  out.setRangesCompared(s.ranges_compared);
  auto skipped = out.initSkipped(s.skipped.size());
  for (std::size_t i = 0; i < s.skipped.size(); ++i) skipped.set(i, s.skipped[i]);
  out.setNodesExchanged(s.nodes_exchanged);
  out.setLeavesDiffering(s.leaves_differing);
  out.setKeysDiffering(s.keys_differing);
  out.setBytesOnWire(s.bytes_on_wire);
  out.setElapsed(s.elapsed_s);
  out.setTombstonesPurged(s.tombstones_purged);
  auto peers = out.initPeers(s.peers.size());
  std::size_t i = 0;
  for (const auto& [id, t] : s.peers) {
    peers[i].setId(id);
    peers[i].setKeysSent(t.keys_sent);
    peers[i].setKeysReceived(t.keys_received);
    peers[i].setBytesSent(t.bytes_sent);
    peers[i].setBytesReceived(t.bytes_received);
    ++i;
  }
}

// One repair run, as the client sees it: progress while it runs, the summary at the end.
class RepairJobServer final : public wire::RepairJob::Server {
 public:
  RepairJobServer(RepairRunner* runner, kj::Promise<RepairSummary> run)
      : runner_(runner), run_(run.then([this](RepairSummary&& s) {
          summary_ = std::move(s);
          done_ = true;
        }).fork()) {}

 protected:
  kj::Promise<void> progress(ProgressContext context) override {
    auto r = context.getResults();
    const RepairProgress& p = runner_->progress();
    r.setRangesTotal(p.ranges_total);
    r.setRangesDone(p.ranges_done);
    r.setKeysMoved(p.keys_moved);
    r.setBytesMoved(p.bytes_moved);
    r.setElapsed(p.elapsed_s);
    r.setDone(done_);
    return kj::READY_NOW;
  }
  kj::Promise<void> wait(WaitContext context) override {
    return run_.addBranch().then([this, context]() mutable {
      FillSummary(summary_, context.getResults().initSummary());
    });
  }

 private:
  RepairRunner* const runner_;
  bool done_ = false;
  RepairSummary summary_;
  kj::ForkedPromise<void> run_;
};

}  // namespace

kj::Promise<void> ClientService::repair(RepairContext context) {
  auto results = context.getResults();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), results.initStatus());
    return kj::READY_NOW;
  }
  if (node_.repair == nullptr) {
    ToWire(Status::Unavailable("anti-entropy is off on this node"), results.initStatus());
    return kj::READY_NOW;
  }
  if (node_.repair->running()) {
    ToWire(Status::Overloaded("a repair is already running on this node"), results.initStatus());
    return kj::READY_NOW;
  }
  results.setJob(kj::heap<RepairJobServer>(node_.repair, node_.repair->Run(context.getParams().getDryRun())));
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

ClientService::~ClientService() = default;

kj::Promise<void> ClientService::replica(ReplicaContext context) {
  context.getResults().setReplica(replica_);
  return kj::READY_NOW;
}

Status ClientService::Refusal() const {
  if (shutting_down_) return Status::Unavailable("node is shutting down");
  if (node_.serving) return node_.serving();
  return Status::Ok();
}

kj::Promise<void> ClientService::get(GetContext context) {
  auto params = context.getParams();
  if (Status s = Refusal(); !s.ok() && !params.getLocal()) {
    ToWire(s, context.getResults().initStatus());
    return kj::READY_NOW;
  }
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  const std::string_view key = View(params.getKey());
  if (Status s = storage::CheckKey(key, store_->limits()); !s.ok()) {
    ToWire(s, context.getResults().initStatus());
    return kj::READY_NOW;
  }
  if (params.getLocal()) {
    storage::LocalStore* store = store_;
    return RunOn<Result<storage::Record>>(
               node_.pool, [store, k = std::string(key)]() { return store->Read(k); })
        .then([context](Result<storage::Record>&& record) mutable {
          FillGet(record.status(), record.ok() ? record.value() : storage::Record(),
                  context.getResults());
        });
  }
  Consistency c;
  if (!FromWire(params.getConsistency(), &c)) {
    ToWire(UnknownConsistency(), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  RequestMetrics* metrics = node_.metrics;
  const auto start = std::chrono::steady_clock::now();
  return coordinator_->Read(std::string(key), c)
      .then([context, metrics, start](Coordinator::ReadOutcome&& out) mutable {
        std::size_t live = 0;
        for (const auto& s : out.record.siblings()) live += s.tombstone ? 0 : 1;
        RecordClientRequest(metrics, ClientOp::kGet, start,
                            out.status.ok() && live == 0 ? Status::NotFound("") : out.status);
        if (metrics != nullptr && out.status.ok() && live > 0) {
          metrics->read_siblings.Observe(static_cast<double>(live));
          metrics->read_record_bytes.Observe(static_cast<double>(storage::ApproxBytes(out.record)));
        }
        FillGet(out.status, out.record, context.getResults());
      });
}

namespace {

template <typename Context>
kj::Promise<void> ReplyWrite(kj::Promise<Coordinator::WriteOutcome> outcome, Context context,
                             RequestMetrics* metrics, ClientOp op) {
  const auto start = std::chrono::steady_clock::now();
  return outcome.then([context, metrics, op, start](Coordinator::WriteOutcome&& out) mutable {
    RecordClientRequest(metrics, op, start, out.status);
    auto results = context.getResults();
    if (!out.context.empty()) results.setContext(Bytes(out.context));
    ToWire(out.status, results.initStatus());
  });
}

}  // namespace

kj::Promise<void> ClientService::put(PutContext context) {
  auto params = context.getParams();
  auto fail = [&](const Status& s) {
    ToWire(s, context.getResults().initStatus());
    return kj::READY_NOW;
  };
  if (Status s = Refusal(); !s.ok()) return fail(s);
  Coordinator::WriteRequest req;
  if (!FromWire(params.getConsistency(), &req.consistency)) return fail(UnknownConsistency());
  Result<storage::CausalContext> seen = ClientContext(params.getContext());
  if (!seen.ok()) return fail(seen.status());
  req.kind = storage::WriteOp::Kind::kPut;
  req.key = View(params.getKey());
  if (Status s = storage::CheckKey(req.key, store_->limits()); !s.ok()) return fail(s);
  req.value = View(params.getValue());
  if (Status s = storage::CheckValue(req.value, store_->limits()); !s.ok()) return fail(s);
  req.seen = std::move(seen.value());
  return ReplyWrite(coordinator_->Write(std::move(req), false), context, node_.metrics,
                    ClientOp::kPut);
}

kj::Promise<void> ClientService::delete_(DeleteContext context) {
  auto params = context.getParams();
  auto fail = [&](const Status& s) {
    ToWire(s, context.getResults().initStatus());
    return kj::READY_NOW;
  };
  if (Status s = Refusal(); !s.ok()) return fail(s);
  Coordinator::WriteRequest req;
  if (!FromWire(params.getConsistency(), &req.consistency)) return fail(UnknownConsistency());
  req.key = View(params.getKey());
  if (Status s = storage::CheckKey(req.key, store_->limits()); !s.ok()) return fail(s);
  if (params.getContext().size() == 0) {
    req.kind = storage::WriteOp::Kind::kDeleteSeen;
  } else {
    Result<storage::CausalContext> seen = ClientContext(params.getContext());
    if (!seen.ok()) return fail(seen.status());
    req.kind = storage::WriteOp::Kind::kDelete;
    req.seen = std::move(seen.value());
  }
  return ReplyWrite(coordinator_->Write(std::move(req), false), context, node_.metrics,
                    ClientOp::kDelete);
}

std::shared_ptr<const ring::Ring> RingFromView(const membership::ClusterView& view) {
  return membership::TopologyOf(view).read;
}

namespace {

void FillMembers(const membership::ClusterView& view, const ring::Ring& ring,
                 const std::map<std::uint64_t, std::uint64_t>& hints,
                 capnp::List<wire::Member>::Builder out) {
  for (std::size_t i = 0; i < view.members.size(); ++i) {
    const auto& m = view.members[i];
    auto b = out[i];
    b.setId(m.id);
    b.setRpc(m.app.rpc_address);
    b.setGossip(membership::ToString(m.gossip));
    b.setStatus(membership::Name(m.liveness));
    b.setState(membership::Name(m.app.state));
    b.setGeneration(m.generation);
    b.setIncarnation(m.incarnation);
    b.setPhi(m.phi);
    b.setTokens(static_cast<std::uint32_t>(m.app.tokens.size()));
    b.setOwns(ring.OwnershipShare(m.id));
    b.setLoad(m.app.load_bytes);
    b.setRack(m.app.rack);
    auto h = hints.find(m.id);
    b.setHints(h == hints.end() ? 0 : h->second);
  }
}

}  // namespace

kj::Promise<void> ClientService::status(StatusContext context) {
  auto results = context.getResults();
  auto view = cluster_->View();
  auto ring = RingFromView(*view);
  auto members = results.initMembers(view->members.size());
  FillMembers(*view, *ring, store_->HintCounts(), members);
  ToWire(Status::Ok(), results.initStatus());
  kj::Vector<kj::Promise<void>> asks;
  // The movement under way, with its progress as its driver reports it.
  auto movement = membership::MovementOf(*view);
  if (node_.movement != nullptr) node_.movement->Describe(results.initMovement());
  if (movement && movement->driver != view->self && node_.peers != nullptr) {
    if (const membership::MemberView* d = view->Find(movement->driver);
        d != nullptr && !d->app.rpc_address.empty() && d->liveness == membership::Liveness::kUp) {
      auto req = node_.peers->Get(d->id, d->app.rpc_address).movementRequest();
      asks.add(node_.peers->timer()
                   .timeoutAfter(500 * kj::MILLISECONDS, req.send())
                   .then(
                       [context](capnp::Response<wire::KvReplica::MovementResults>&& r) mutable {
                         auto info = r.getMovement();
                         if (!info.getProgress()) return;
                         auto out = context.getResults().getMovement();
                         out.setProgress(true);
                         out.setPhase(info.getPhase());
                         out.setNote(info.getNote());
                         out.setCopiesDone(info.getCopiesDone());
                         out.setCopiesTotal(info.getCopiesTotal());
                         out.setBytesCopied(info.getBytesCopied());
                       },
                       [](kj::Exception&&) {}));
    }
  }
  // Each UP member's last repair, asked of it directly (bounded; a member that does not answer
  // in time shows none).
  for (std::size_t i = 0; i < view->members.size(); ++i) {
    const auto& m = view->members[i];
    if (m.id == view->self) {
      if (node_.repair != nullptr) {
        const RepairSummary& last = node_.repair->last();
        std::uint64_t moved = 0;
        for (const auto& [peer, t] : last.peers) moved += t.keys_sent + t.keys_received;
        members[i].setLastRepair(last.finished_at);
        members[i].setRepairKeysMoved(moved);
      }
      continue;
    }
    if (node_.peers == nullptr || m.liveness != membership::Liveness::kUp ||
        m.app.rpc_address.empty()) {
      continue;
    }
    auto req = node_.peers->Get(m.id, m.app.rpc_address).repairInfoRequest();
    asks.add(node_.peers->timer()
                 .timeoutAfter(500 * kj::MILLISECONDS, req.send())
                 .then(
                     [context, i](capnp::Response<wire::KvReplica::RepairInfoResults>&& r) mutable {
                       auto out = context.getResults().getMembers()[i];
                       out.setLastRepair(r.getFinishedAt());
                       out.setRepairKeysMoved(r.getKeysMoved());
                     },
                     [](kj::Exception&&) {}));
  }
  return kj::joinPromises(asks.releaseAsArray());
}

kj::Promise<void> ClientService::ring(RingContext context) {
  auto results = context.getResults();
  std::uint32_t n = context.getParams().getReplicas();
  if (n == 0) n = static_cast<std::uint32_t>(coordinator_->options().replication.n);
  if (n > 16) {
    ToWire(Status::InvalidArgument("replicas must be 0..16"), results.initStatus());
    return kj::READY_NOW;
  }
  auto view = cluster_->View();
  auto ring = RingFromView(*view);
  const auto ranges = ring->Ranges(n);
  auto out = results.initRanges(ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    out[i].setBegin(ranges[i].range.begin);
    out[i].setEnd(ranges[i].range.end);
    auto reps = out[i].initReplicas(ranges[i].replicas.size());
    for (std::size_t j = 0; j < ranges[i].replicas.size(); ++j) reps.set(j, ranges[i].replicas[j]);
  }
  FillMembers(*view, *ring, store_->HintCounts(), results.initMembers(view->members.size()));
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::removeNode(RemoveNodeContext context) {
  const membership::NodeId id = context.getParams().getId();
  auto view = cluster_->View();
  const membership::MemberView* m = view->Find(id);
  Status refusal;
  if (id == view->self) {
    refusal = Status::InvalidArgument("cannot remove the node you are talking to");
  } else if (m == nullptr) {
    refusal = Status::InvalidArgument("no member with that id");
  } else if (m->liveness == membership::Liveness::kUp ||
             m->liveness == membership::Liveness::kSuspect) {
    refusal = Status::InvalidArgument(std::string("the node is ") + membership::Name(m->liveness) +
                                      "; stop it first: removenode removes dead nodes only");
  }
  if (!refusal.ok()) {
    ToWire(refusal, context.getResults().initStatus());
    return kj::READY_NOW;
  }
  // A member in the ring holds data: its ranges are re-replicated first (a movement). One that
  // never finished joining holds none and goes at once.
  const auto ring = RingFromView(*view);
  bool in_ring = false;
  for (const auto& node : ring->nodes()) in_ring |= node.id == id;
  if (in_ring) {
    Status s = node_.start_movement
                   ? node_.start_movement(membership::MovementKind::kRemove, id)
                   : Status::Unavailable("ring movements are off on this node");
    ToWire(s, context.getResults().initStatus());
    return kj::READY_NOW;
  }
  // The membership thread answers; a cross-thread fulfiller wakes this loop.
  auto paf = kj::newPromiseAndCrossThreadFulfiller<bool>();
  auto fulfiller =
      std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<bool>>>(kj::mv(paf.fulfiller));
  cluster_->Remove(id, [fulfiller](bool removed) { (*fulfiller)->fulfill(kj::cp(removed)); });
  return paf.promise.then([context](bool removed) mutable {
    ToWire(removed ? Status::Ok() : Status::InvalidArgument("membership refused to remove it"),
           context.getResults().initStatus());
  });
}

kj::Promise<void> ClientService::decommission(DecommissionContext context) {
  Status s = shutting_down_ ? Status::Unavailable("node is shutting down")
             : node_.start_movement
                 ? node_.start_movement(membership::MovementKind::kDecommission, store_->self())
                 : Status::Unavailable("ring movements are off on this node (no --gossip)");
  ToWire(s, context.getResults().initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::cleanup(CleanupContext context) {
  auto results = context.getResults();
  auto view = cluster_->View();
  const membership::Topology t = membership::TopologyOf(*view);
  // Never while ranges move (CASSANDRA-16418): a range this node is about to lose, or that a
  // withdrawn movement gives back, may still be read here.
  if (t.movement || !t.ignored.empty() ||
      (node_.movement != nullptr && node_.movement->driving())) {
    ToWire(Status::Unavailable("refused: a ring movement is pending" +
                               (t.movement ? ": " + membership::Describe(*t.movement)
                                           : std::string())),
           results.initStatus());
    return kj::READY_NOW;
  }
  const auto n = static_cast<std::size_t>(coordinator_->options().replication.n);
  const std::vector<ring::TokenRange> keep = ring::RangesOf(*t.read, store_->self(), n);
  if (keep.empty()) {
    ToWire(Status::Unavailable("refused: this node owns no ranges in the ring"),
           results.initStatus());
    return kj::READY_NOW;
  }
  // Delete the gaps between the kept ranges (sorted, joined, none wrapping).
  std::vector<ring::TokenRange> drop;
  ring::Token at = 0;
  bool top_reached = false;
  for (const auto& r : keep) {
    if (r.begin > at) drop.push_back({at, r.begin});
    if (r.end == 0) {
      top_reached = true;
      break;
    }
    at = r.end;
  }
  if (!top_reached) drop.push_back({at, 0});
  // A scan and delete of everything dropped: on a storage thread.
  storage::LocalStore* store = store_;
  return RunOn<Result<storage::LocalStore::Dropped>>(
             node_.background,
             [store, drop = std::move(drop)]() -> Result<storage::LocalStore::Dropped> {
               storage::LocalStore::Dropped total;
               for (const auto& r : drop) {
                 auto dropped = store->DropRange(r);
                 if (!dropped.ok()) return dropped.status();
                 total.keys += dropped->keys;
                 total.bytes += dropped->bytes;
               }
               return total;
             })
      .then([context](Result<storage::LocalStore::Dropped>&& total) mutable {
        auto results = context.getResults();
        if (!total.ok()) {
          ToWire(total.status(), results.initStatus());
          return;
        }
        results.setKeysDeleted(total->keys);
        results.setBytesFreed(total->bytes);
        ToWire(Status::Ok(), results.initStatus());
      });
}

kj::Promise<void> ClientService::stats(StatsContext context) {
  auto results = context.getResults();
  auto counters = cluster_->GossipCounters();
  results.setGossip(counters.has_value());
  if (counters) {
    auto c = results.initCounters();
    c.setDatagramsIn(counters->datagrams_in);
    c.setDatagramsOut(counters->datagrams_out);
    c.setStreamsIn(counters->streams_in);
    c.setStreamsOut(counters->streams_out);
    c.setBytesIn(counters->bytes_in);
    c.setBytesOut(counters->bytes_out);
    c.setDroppedMalformed(counters->dropped_malformed);
    c.setDroppedOversize(counters->dropped_oversize);
    c.setDroppedVersion(counters->dropped_version);
    c.setDroppedCluster(counters->dropped_cluster);
    c.setDroppedRemoved(counters->dropped_removed);
  }
  if (node_.counters) {
    const auto named = node_.counters();
    auto out = results.initNode(static_cast<unsigned>(named.size()));
    for (unsigned i = 0; i < named.size(); ++i) {
      out[i].setName(named[i].first);
      out[i].setValue(named[i].second);
    }
  }
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::keyring(KeyringContext context) {
  auto params = context.getParams();
  auto op = FromWire(params.getOp());
  if (!op) {
    ToWire(Status::InvalidArgument("unknown keyring operation"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  return KeyringEverywhere(node_, *op, Str(params.getKey()))
      .then([context](std::vector<KeyringAnswer>&& answers) mutable {
        auto results = context.getResults();
        auto nodes = results.initNodes(static_cast<unsigned>(answers.size()));
        std::size_t failed = 0;
        std::string first;
        for (unsigned i = 0; i < nodes.size(); ++i) {
          const KeyringAnswer& a = answers[i];
          nodes[i].setId(a.id);
          nodes[i].setAddress(a.address);
          ToWire(a.status, nodes[i].initStatus());
          auto keys = nodes[i].initKeys(static_cast<unsigned>(a.keys.size()));
          for (unsigned k = 0; k < keys.size(); ++k) keys.set(k, a.keys[k]);
          if (!a.status.ok() && failed++ == 0) {
            char id[17];
            std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(a.id));
            first = std::string(id) + ": " + a.status.ToString();
          }
        }
        if (failed == 0) {
          ToWire(Status::Ok(), results.initStatus());
        } else if (!answers[0].status.ok() &&
                   answers[0].status.code() == Status::Code::kInvalidArgument) {
          ToWire(answers[0].status, results.initStatus());
        } else {
          ToWire(Status::Unavailable("not applied on " + std::to_string(failed) + " of " +
                                     std::to_string(answers.size()) + " members (first " +
                                     first + ")"),
                 results.initStatus());
        }
      });
}

}  // namespace kv::rpc
