#include "rpc/client_service.h"

#include <kj/debug.h>

#include <string_view>

#include "storage/codec.h"

namespace kv::rpc {
namespace {

std::string_view View(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}

kj::ArrayPtr<const capnp::byte> Bytes(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

// An empty context means "saw nothing".
Result<storage::CausalContext> ClientContext(capnp::Data::Reader bytes) {
  if (bytes.size() == 0) return storage::CausalContext();
  return storage::DecodeContext(View(bytes));
}

}  // namespace

void ToWire(const Status& status, wire::Status::Builder out) {
  using C = wire::Status::Code;
  C code = C::OK;
  switch (status.code()) {
    case Status::Code::kOk:
      code = C::OK;
      break;
    case Status::Code::kNotFound:
      code = C::NOT_FOUND;
      break;
    case Status::Code::kInvalidArgument:
      code = C::INVALID_ARGUMENT;
      break;
    case Status::Code::kUnavailable:
      code = C::UNAVAILABLE;
      break;
    case Status::Code::kTimeout:
      code = C::TIMEOUT;
      break;
    case Status::Code::kOverloaded:
      code = C::OVERLOADED;
      break;
    case Status::Code::kCorruption:
      code = C::CORRUPTION;
      break;
    case Status::Code::kIoError:
      code = C::IO_ERROR;
      break;
  }
  out.setCode(code);
  out.setMessage(status.message());
}

Status FromWire(wire::Status::Reader in) {
  using C = wire::Status::Code;
  std::string msg = in.getMessage();
  switch (in.getCode()) {
    case C::OK:
      return Status::Ok();
    case C::NOT_FOUND:
      return Status::NotFound(std::move(msg));
    case C::INVALID_ARGUMENT:
      return Status::InvalidArgument(std::move(msg));
    case C::UNAVAILABLE:
      return Status::Unavailable(std::move(msg));
    case C::TIMEOUT:
      return Status::Timeout(std::move(msg));
    case C::OVERLOADED:
      return Status::Overloaded(std::move(msg));
    case C::CORRUPTION:
      return Status::Corruption(std::move(msg));
    case C::IO_ERROR:
      return Status::IoError(std::move(msg));
  }
  // A code from a newer server that this client does not know.
  return Status::IoError("unknown status code from server: " + msg);
}

constexpr std::size_t kMinBatch = 4;
constexpr std::size_t kMaxBatch = 1024;

struct ClientService::PendingWrite : public kj::Refcounted {
  storage::WriteOp op;
  kj::Own<kj::PromiseFulfiller<void>> done;
};

ClientService::ClientService(storage::LocalStore* store, ClusterControl* cluster)
    : store_(store), cluster_(cluster), worker_(store), tasks_(*this) {}

ClientService::~ClientService() = default;

void ClientService::taskFailed(kj::Exception&& exception) {
  KJ_LOG(ERROR, "write batch failed", exception);
}

kj::Promise<void> ClientService::Enqueue(PendingWrite& write) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  write.done = kj::mv(paf.fulfiller);
  pending_.push_back(kj::addRef(write));
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    tasks_.add(kj::evalLast([this]() { FlushWrites(); }));
  }
  return kj::mv(paf.promise);
}

void ClientService::FlushWrites() {
  flush_scheduled_ = false;
  if (batch_in_flight_) return;  // called again when the batch in flight completes
  if (pending_.empty()) {
    if (drained_) drained_->fulfill();
    drained_ = nullptr;
    return;
  }
  // Take half of what waits (at least kMinBatch, at most kMaxBatch): while the worker applies
  // one half, the replies of the previous batch reach their clients and new requests arrive,
  // so the stages overlap. Taking everything made client and server alternate instead:
  // 32 in flight on this 2-core machine gave 54-62k puts/s whole, 86-92k halved (issue 2 note).
  const std::size_t take = std::min(kMaxBatch, std::max(kMinBatch, (pending_.size() + 1) / 2));
  std::vector<kj::Own<PendingWrite>> batch;
  if (pending_.size() <= take) {
    batch = std::move(pending_);
    pending_.clear();
  } else {
    for (std::size_t i = 0; i < take; ++i) batch.push_back(kj::mv(pending_[i]));
    pending_.erase(pending_.begin(), pending_.begin() + take);
  }
  std::vector<storage::WriteOp*> ops;
  ops.reserve(batch.size());
  for (auto& w : batch) ops.push_back(&w->op);
  batch_in_flight_ = true;
  // `batch` rides in the continuation: the ops stay alive until the worker is done with them
  // (the worker outlives tasks_, see the member order).
  tasks_.add(worker_.Apply(std::move(ops)).then([this, batch = std::move(batch)]() mutable {
    batch_in_flight_ = false;
    for (auto& w : batch) w->done->fulfill();
    FlushWrites();
  }));
}

kj::Promise<void> ClientService::Drain() {
  if (!batch_in_flight_ && pending_.empty()) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  drained_ = kj::mv(paf.fulfiller);
  if (!batch_in_flight_) FlushWrites();
  return kj::mv(paf.promise);
}

kj::Promise<void> ClientService::get(GetContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), results.initStatus());
    return kj::READY_NOW;
  }
  Result<storage::Record> record = store_->Read(View(params.getKey()));
  if (!record.ok()) {
    ToWire(record.status(), results.initStatus());
    return kj::READY_NOW;
  }
  const auto& siblings = record->siblings();
  std::size_t live = 0;
  for (const auto& s : siblings) live += s.tombstone ? 0 : 1;
  auto out = results.initSiblings(live);
  std::size_t i = 0;
  for (const auto& s : siblings) {
    if (s.tombstone) continue;
    out[i++].setValue(Bytes(s.value));
  }
  if (!record->empty()) results.setContext(Bytes(storage::EncodeContext(record->context())));
  ToWire(live == 0 ? Status::NotFound("key not found") : Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::put(PutContext context) {
  auto params = context.getParams();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  Result<storage::CausalContext> seen = ClientContext(params.getContext());
  if (!seen.ok()) {
    ToWire(seen.status(), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  auto write = kj::refcounted<PendingWrite>();
  write->op.kind = storage::WriteOp::Kind::kPut;
  write->op.key = View(params.getKey());
  write->op.seen = std::move(seen.value());
  write->op.value = View(params.getValue());
  // The continuation holds its own reference: the batch may outlive a cancelled call, and the
  // call may outlive the batch.
  auto done = Enqueue(*write);
  return done.then([context, w = kj::mv(write)]() mutable {
    auto results = context.getResults();
    if (w->op.status.ok()) {
      results.setContext(Bytes(storage::EncodeContext(w->op.record.context())));
    }
    ToWire(w->op.status, results.initStatus());
  });
}

kj::Promise<void> ClientService::delete_(DeleteContext context) {
  auto params = context.getParams();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  auto write = kj::refcounted<PendingWrite>();
  write->op.key = View(params.getKey());
  if (params.getContext().size() == 0) {
    write->op.kind = storage::WriteOp::Kind::kDeleteSeen;
  } else {
    Result<storage::CausalContext> seen = ClientContext(params.getContext());
    if (!seen.ok()) {
      ToWire(seen.status(), context.getResults().initStatus());
      return kj::READY_NOW;
    }
    write->op.kind = storage::WriteOp::Kind::kDelete;
    write->op.seen = std::move(seen.value());
  }
  auto done = Enqueue(*write);
  return done.then([context, w = kj::mv(write)]() mutable {
    auto results = context.getResults();
    Status status = w->op.status;
    if (status.ok()) {
      results.setContext(Bytes(storage::EncodeContext(w->op.record.context())));
      if (!w->op.had_value) status = Status::NotFound("key not found");
    }
    ToWire(status, results.initStatus());
  });
}

std::shared_ptr<const ring::Ring> RingFromView(const membership::ClusterView& view) {
  std::vector<ring::RingNode> nodes;
  for (const auto& m : view.members) {
    if (m.liveness == membership::Liveness::kLeft || m.liveness == membership::Liveness::kRemoved ||
        m.app.state == membership::NodeState::kLeft || m.app.tokens.empty()) {
      continue;
    }
    nodes.push_back(ring::RingNode{m.id, m.app.tokens, m.app.rack});
  }
  return ring::Ring::Build(std::move(nodes));
}

namespace {

void FillMembers(const membership::ClusterView& view, const ring::Ring& ring,
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
  }
}

}  // namespace

kj::Promise<void> ClientService::status(StatusContext context) {
  auto results = context.getResults();
  auto view = cluster_->View();
  auto ring = RingFromView(*view);
  FillMembers(*view, *ring, results.initMembers(view->members.size()));
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::ring(RingContext context) {
  auto results = context.getResults();
  const std::uint32_t n = context.getParams().getReplicas();
  if (n == 0 || n > 16) {
    ToWire(Status::InvalidArgument("replicas must be 1..16"), results.initStatus());
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
  FillMembers(*view, *ring, results.initMembers(view->members.size()));
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
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

}  // namespace kv::rpc
