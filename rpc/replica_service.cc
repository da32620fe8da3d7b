#include "rpc/replica_service.h"

#include "membership/topology.h"
#include "rpc/bytes.h"
#include "rpc/keyring.h"
#include "rpc/repair_service.h"
#include "rpc/wire_status.h"
#include "storage/codec.h"

namespace kv::rpc {
namespace {

Status ShuttingDown() { return Status::Unavailable("node is shutting down"); }

}  // namespace

ReplicaService::ReplicaService(const NodeServices& node, const bool* shutting_down)
    : node_(node),
      store_(node.store),
      batcher_(node.batcher),
      coordinator_(node.coordinator),
      shutting_down_(shutting_down) {}

kj::Promise<void> ReplicaService::repairInfo(RepairInfoContext context) {
  if (node_.repair != nullptr) {
    const RepairSummary& last = node_.repair->last();
    std::uint64_t moved = 0;
    for (const auto& [peer, t] : last.peers) moved += t.keys_sent + t.keys_received;
    context.getResults().setFinishedAt(last.finished_at);
    context.getResults().setKeysMoved(moved);
  }
  return kj::READY_NOW;
}

kj::Promise<void> ReplicaService::movement(MovementContext context) {
  auto out = context.getResults().initMovement();
  if (node_.movement != nullptr) {
    node_.movement->Describe(out);
  } else if (auto mv = membership::MovementOf(*node_.cluster->View())) {
    out.setActive(true);
    out.setDriver(mv->driver);
    out.setSubject(mv->subject);
    out.setReadsNew(mv->reads_new);
  }
  return kj::READY_NOW;
}

kj::Promise<void> ReplicaService::keyring(KeyringContext context) {
  auto params = context.getParams();
  auto op = FromWire(params.getOp());
  if (!op) {
    ToWire(Status::InvalidArgument("unknown keyring operation"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  return KeyringHere(node_, *op, Str(params.getKey()))
      .then([context](Result<std::vector<std::string>>&& after) mutable {
        auto results = context.getResults();
        ToWire(after.status(), results.initStatus());
        if (!after.ok()) return;
        auto keys = results.initKeys(static_cast<unsigned>(after.value().size()));
        for (unsigned i = 0; i < keys.size(); ++i) keys.set(i, after.value()[i]);
      });
}

kj::Promise<void> ReplicaService::pull(PullContext context) {
  auto params = context.getParams();
  if (*shutting_down_) {
    ToWire(ShuttingDown(), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  if (node_.movement == nullptr) {
    ToWire(Status::Unavailable("ring movements are off on this node"),
           context.getResults().initStatus());
    return kj::READY_NOW;
  }
  const ring::TokenRange range{params.getRange().getBegin(), params.getRange().getEnd()};
  if (range.end != 0 && range.end <= range.begin) {
    ToWire(Status::InvalidArgument("pull range must not wrap"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  if (params.getSources().size() > 64) {
    ToWire(Status::InvalidArgument("at most 64 sources"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  std::vector<std::uint64_t> sources;
  for (std::uint64_t id : params.getSources()) {
    if (id != store_->self()) sources.push_back(id);
  }
  return node_.movement->Pull(range, std::move(sources))
      .then([context](MovementRunner::Pulled&& p) mutable {
        auto r = context.getResults();
        ToWire(p.status, r.initStatus());
        r.setKeys(p.keys);
        r.setBytes(p.bytes);
      });
}

kj::Promise<void> ReplicaService::repair(RepairContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  if (*shutting_down_) {
    ToWire(ShuttingDown(), results.initStatus());
    return kj::READY_NOW;
  }
  if (node_.repair_reader == nullptr) {
    ToWire(Status::Unavailable("anti-entropy is off on this node"), results.initStatus());
    return kj::READY_NOW;
  }
  if (params.getTreeBits() != node_.tree_bits) {
    ToWire(Status::InvalidArgument("hash trees differ: this node has " +
                                   std::to_string(node_.tree_bits) + " segment bits, the asker " +
                                   std::to_string(params.getTreeBits())),
           results.initStatus());
    return kj::READY_NOW;
  }
  const ring::TokenRange range{params.getRange().getBegin(), params.getRange().getEnd()};
  if (range.end != 0 && range.end <= range.begin) {
    ToWire(Status::InvalidArgument("repair range must not wrap"), results.initStatus());
    return kj::READY_NOW;
  }
  results.setSession(
      kj::heap<RepairSessionServer>(node_.background, node_.repair_reader, node_.tree_bits, range));
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ReplicaService::read(ReadContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  if (*shutting_down_) {
    ToWire(ShuttingDown(), results.initStatus());
    return kj::READY_NOW;
  }
  storage::LocalStore* store = store_;
  RequestMetrics* metrics = node_.metrics;
  const auto start = std::chrono::steady_clock::now();
  const std::uint64_t hint_for =
      params.getHintFor() != store_->self() ? params.getHintFor() : std::uint64_t{0};
  return RunOn<Result<std::string>>(
             node_.pool,
             [store, key = std::string(View(params.getKey())), hint_for]() -> Result<std::string> {
               Result<storage::Record> record = store->Read(key);
               if (record.ok() && hint_for != 0) {
                 Result<storage::Record> hint = store->ReadHint(hint_for, key);
                 if (!hint.ok()) return hint.status();
                 record = storage::Record::Merge(record.value(), hint.value());
               }
               if (!record.ok()) return record.status();
               return record->empty() ? std::string() : storage::EncodeRecord(record.value());
             })
      .then([context, metrics, start](Result<std::string>&& encoded) mutable {
        if (metrics != nullptr) metrics->replica_read.Observe(SecondsSince(start));
        auto results = context.getResults();
        if (!encoded.ok()) {
          ToWire(encoded.status(), results.initStatus());
          return;
        }
        if (!encoded->empty()) results.setRecord(Bytes(encoded.value()));
        ToWire(Status::Ok(), results.initStatus());
      });
}

kj::Promise<void> ReplicaService::write(WriteContext context) {
  auto params = context.getParams();
  if (*shutting_down_) {
    ToWire(ShuttingDown(), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  Result<storage::Record> record = storage::DecodeRecord(View(params.getRecord()));
  if (!record.ok()) {
    ToWire(Status::InvalidArgument("replica write: " + record.status().message()),
           context.getResults().initStatus());
    return kj::READY_NOW;
  }
  auto w = kj::refcounted<PendingWrite>();
  const std::uint64_t hint_for = params.getHintFor();
  const bool hint = hint_for != 0 && hint_for != store_->self();
  w->op.kind = hint ? storage::WriteOp::Kind::kHint : storage::WriteOp::Kind::kMerge;
  w->op.hint_for = hint ? hint_for : 0;
  w->op.key = View(params.getKey());
  w->op.remote = std::move(record.value());
  RequestMetrics* metrics = node_.metrics;
  const auto start = std::chrono::steady_clock::now();
  auto done = batcher_->Submit(*w);
  return done.then([context, w = kj::mv(w), metrics, start]() mutable {
    if (metrics != nullptr) metrics->replica_write.Observe(SecondsSince(start));
    ToWire(w->op.status, context.getResults().initStatus());
  });
}

kj::Promise<void> ReplicaService::coordinate(CoordinateContext context) {
  auto params = context.getParams();
  if (*shutting_down_) {
    ToWire(ShuttingDown(), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  Coordinator::WriteRequest req;
  switch (params.getKind()) {
    case wire::WriteKind::PUT:
      req.kind = storage::WriteOp::Kind::kPut;
      break;
    case wire::WriteKind::DELETE:
      req.kind = storage::WriteOp::Kind::kDelete;
      break;
    case wire::WriteKind::DELETE_SEEN:
      req.kind = storage::WriteOp::Kind::kDeleteSeen;
      break;
    default:
      ToWire(Status::InvalidArgument("unknown write kind"), context.getResults().initStatus());
      return kj::READY_NOW;
  }
  if (params.getContext().size() != 0) {
    Result<storage::CausalContext> seen = storage::DecodeContext(View(params.getContext()));
    if (!seen.ok()) {
      ToWire(seen.status(), context.getResults().initStatus());
      return kj::READY_NOW;
    }
    req.seen = std::move(seen.value());
  }
  req.key = View(params.getKey());
  req.value = View(params.getValue());
  const auto c = params.getConsistency();
  if (static_cast<std::uint16_t>(c) > static_cast<std::uint16_t>(wire::Consistency::ALL)) {
    ToWire(Status::InvalidArgument("unknown consistency level"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  req.consistency = static_cast<Consistency>(c);
  return coordinator_->Write(std::move(req), /*forwarded=*/true)
      .then([context](Coordinator::WriteOutcome&& out) mutable {
        auto results = context.getResults();
        if (!out.context.empty()) results.setContext(Bytes(out.context));
        ToWire(out.status, results.initStatus());
      });
}

}  // namespace kv::rpc
