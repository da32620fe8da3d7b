#include "rpc/coordinator.h"

#include <kj/debug.h>

#include <ctime>
#include <optional>

#include "rpc/bytes.h"
#include "rpc/wire_status.h"
#include "storage/codec.h"

namespace kv::rpc {
namespace {

bool SameRingInputs(const membership::ClusterView& a, const membership::ClusterView& b) {
  if (a.members.size() != b.members.size()) return false;
  for (std::size_t i = 0; i < a.members.size(); ++i) {
    const auto& x = a.members[i];
    const auto& y = b.members[i];
    auto gone = [](const membership::MemberView& m) {
      return m.liveness == membership::Liveness::kLeft ||
             m.liveness == membership::Liveness::kRemoved;
    };
    if (x.id != y.id || gone(x) != gone(y) || x.app.state != y.app.state ||
        x.app.rack != y.app.rack || x.app.tokens != y.app.tokens ||
        x.app.replaces != y.app.replaces || x.app.removing != y.app.removing ||
        x.app.reads_new != y.app.reads_new) {
      return false;
    }
  }
  return true;
}

wire::WriteKind ToWireKind(storage::WriteOp::Kind k) {
  switch (k) {
    case storage::WriteOp::Kind::kDelete:
      return wire::WriteKind::DELETE;
    case storage::WriteOp::Kind::kDeleteSeen:
      return wire::WriteKind::DELETE_SEEN;
    default:
      return wire::WriteKind::PUT;
  }
}

std::string Shortfall(const char* verb, int got, int required, bool timed_out,
                      kj::Duration timeout) {
  std::string msg =
      std::to_string(got) + " of " + std::to_string(required) + " required replicas " + verb;
  if (timed_out) msg += " within " + std::to_string(timeout / kj::MILLISECONDS) + " ms";
  return msg;
}

}  // namespace

// One write being replicated. Shared by the request and every replica call, which may outlive
// the request.
struct Coordinator::WriteState : public kj::Refcounted {
  // Per set of the plan (one ring, or the rings before and after a movement).
  std::vector<int> required, acks, pending;
  std::vector<int> local_acks;  // this node's own copy, already counted out of `required`
  bool timed_out = false;
  bool answered = false;
  WriteOutcome local;
  kj::Own<kj::PromiseFulfiller<WriteOutcome>> fulfiller;
  kj::Duration timeout;
  std::string key;
  storage::Record record;

  void Ack(std::uint8_t sets) {
    for (std::size_t i = 0; i < required.size(); ++i) {
      if ((sets >> i) & 1) {
        --pending[i];
        ++acks[i];
      }
    }
    Settle();
  }

  void Settle() {
    if (answered) return;
    bool met = true;
    for (std::size_t i = 0; i < required.size(); ++i) {
      if (acks[i] + pending[i] < required[i]) {
        answered = true;
        std::string msg = Shortfall("acknowledged", acks[i] + local_acks[i],
                                    required[i] + local_acks[i], timed_out, timeout);
        if (required.size() > 1) {
          msg += i == 0 ? " (ring in use)" : " (ring after the movement under way)";
        }
        fulfiller->fulfill(
            WriteOutcome{timed_out ? Status::Timeout(msg) : Status::Unavailable(msg), ""});
        return;
      }
      met &= acks[i] >= required[i];
    }
    if (met) {
      answered = true;
      fulfiller->fulfill(WriteOutcome(local));
    }
  }
};

struct Coordinator::ReadState : public kj::Refcounted {
  Snapshot snapshot;
  std::string key;
  Consistency consistency = Consistency::kDefault;
  std::vector<ReplicaTarget> targets;
  std::vector<std::optional<storage::Record>> replies;
  int required = 0;
  int acks = 0;
  int pending = 0;
  bool timed_out = false;
  bool answered = false;
  storage::Record merged;  // of every reply so far
  kj::Own<kj::PromiseFulfiller<ReadOutcome>> fulfiller;
  kj::Duration timeout;
};

Coordinator::Coordinator(storage::LocalStore* store, StoragePool* pool, StoragePool* background,
                         WriteBatcher* batcher, ClusterControl* cluster, PeerPool* peers,
                         CoordinatorOptions options)
    : store_(store),
      pool_(pool),
      background_(background),
      batcher_(batcher),
      cluster_(cluster),
      peers_(peers),
      options_(options),
      tasks_(*this) {}

Coordinator::~Coordinator() = default;

void Coordinator::taskFailed(kj::Exception&& exception) {
  KJ_LOG(WARNING, "coordinator task failed", exception);
}

Coordinator::Snapshot Coordinator::Current() {
  auto view = cluster_->View();
  if (view != cached_.view) {
    if (!cached_.view || !SameRingInputs(*cached_.view, *view)) {
      cached_.topology =
          std::make_shared<const membership::Topology>(membership::TopologyOf(*view));
    }
    cached_.view = std::move(view);
  }
  return cached_;
}

namespace {

std::function<bool(std::uint64_t)> IsDown(const membership::ClusterView& view) {
  return [&view](std::uint64_t id) {
    const membership::MemberView* m = view.Find(id);
    return m != nullptr && m->liveness == membership::Liveness::kDown;
  };
}

}  // namespace

ReplicaPlan Coordinator::Plan(const Snapshot& s, std::string_view key) const {
  return PlanReplicas(*s.topology->read, key, options_.replication.n,
                      options_.replication.hinted_handoff, IsDown(*s.view));
}

WritePlan Coordinator::PlanForWrite(const Snapshot& s, std::string_view key) const {
  const membership::Topology& t = *s.topology;
  std::vector<const ring::Ring*> rings{t.read.get()};
  if (t.movement) rings.push_back(t.read == t.before ? t.after.get() : t.before.get());
  return PlanWrite(rings, key, options_.replication.n, options_.replication.hinted_handoff,
                   IsDown(*s.view));
}

kj::Maybe<wire::KvReplica::Client> Coordinator::Peer(const Snapshot& s, std::uint64_t id) {
  const membership::MemberView* m = s.view->Find(id);
  if (m == nullptr || m->app.rpc_address.empty()) return nullptr;
  return peers_->Get(id, m->app.rpc_address, m->liveness != membership::Liveness::kUp);
}

kj::Promise<Coordinator::WriteOutcome> Coordinator::Write(WriteRequest request, bool forwarded) {
  Snapshot snap = Current();
  WritePlan plan = PlanForWrite(snap, request.key);
  for (const ReplicaPlan& set : plan.sets) {
    if (set.owners == 0) {
      return WriteOutcome{Status::Unavailable("no node owns ring tokens yet"), ""};
    }
    const int required = set.Required(request.consistency, options_.replication.w);
    const int reachable = set.Reachable(request.consistency);
    if (reachable < required) {
      return WriteOutcome{
          Status::Unavailable("" + std::to_string(reachable) + " of " +
                              std::to_string(required) + " required replicas are up (" +
                              std::to_string(set.down.size()) + " DOWN)"),
          ""};
    }
  }
  // Versions are made by a live owner in the ring reads use: its record is complete.
  const std::uint64_t self = store_->self();
  bool self_owner = false;
  for (const auto& t : plan.sets[0].targets) self_owner |= t.node == self && t.hint_for == 0;
  if (!self_owner && !forwarded) {
    for (const auto& t : plan.sets[0].targets) {
      if (t.hint_for == 0) return Forward(snap, t.node, std::move(request));
    }
    return WriteOutcome{Status::Unavailable("every owner of the key is DOWN"), ""};
  }
  auto w = kj::refcounted<PendingWrite>();
  w->op.kind = request.kind;
  w->op.key = request.key;
  w->op.seen = std::move(request.seen);
  w->op.value = std::move(request.value);
  auto applied = batcher_->Submit(*w);
  return applied.then([this, snap = kj::mv(snap), plan = kj::mv(plan),
                       consistency = request.consistency,
                       w = kj::mv(w)]() mutable -> kj::Promise<WriteOutcome> {
    const storage::WriteOp& op = w->op;
    if (!op.status.ok()) return WriteOutcome{op.status, ""};
    WriteOutcome local{Status::Ok(), storage::EncodeContext(op.record.context())};
    if (op.kind != storage::WriteOp::Kind::kPut && !op.had_value) {
      local.status = Status::NotFound("key not found");
    }
    return Replicate(snap, kj::mv(plan), consistency, op.key, op.record, kj::mv(local));
  });
}

kj::Promise<Coordinator::WriteOutcome> Coordinator::Replicate(const Snapshot& s, WritePlan plan,
                                                              Consistency consistency,
                                                              std::string key,
                                                              storage::Record record,
                                                              WriteOutcome local) {
  auto paf = kj::newPromiseAndFulfiller<WriteOutcome>();
  auto state = kj::refcounted<WriteState>();
  const std::size_t sets = plan.sets.size();
  state->required.assign(sets, 0);
  state->acks.assign(sets, 0);
  state->pending.assign(sets, 0);
  state->local_acks.assign(sets, 0);
  const std::uint64_t self = store_->self();
  for (std::size_t i = 0; i < sets; ++i) {
    const ReplicaPlan& set = plan.sets[i];
    for (const auto& t : set.targets) state->local_acks[i] += t.node == self && t.hint_for == 0;
    // This node's own copy counts where it is an owner (it was written before replication).
    state->required[i] = set.Required(consistency, options_.replication.w) - state->local_acks[i];
  }
  state->local = kj::mv(local);
  state->fulfiller = kj::mv(paf.fulfiller);
  state->timeout = options_.request_timeout;
  state->key = key;
  state->record = record;
  for (std::uint64_t owner : plan.uncovered) KeepHint(owner, key, record);
  const std::string encoded = storage::EncodeRecord(record);
  for (const WritePlan::Target& wt : plan.targets) {
    const ReplicaTarget t = wt.target;
    if (t.node == self && t.hint_for == 0) continue;  // written above
    const std::uint8_t counts = ReplicaPlan::Counts(t, consistency) ? wt.sets : 0;
    for (std::size_t i = 0; i < sets; ++i) state->pending[i] += (counts >> i) & 1;
    KJ_IF_MAYBE (peer, Peer(s, t.node)) {
      auto req = peer->writeRequest();
      req.setKey(Bytes(key));
      req.setRecord(Bytes(encoded));
      req.setHintFor(t.hint_for);
      auto call = peers_->Timed(t.node, options_.request_timeout, req.send());
      tasks_.add(call.then(
          [this, state = kj::addRef(*state), t,
           counts](capnp::Response<wire::KvReplica::WriteResults>&& r) mutable {
            if (FromWire(r.getStatus()).ok()) {
              state->Ack(counts);
            } else {
              WriteFailed(*state, t, counts, false);
            }
          },
          [this, state = kj::addRef(*state), t, counts](kj::Exception&& e) mutable {
            WriteFailed(*state, t, counts, e.getType() == kj::Exception::Type::OVERLOADED);
          }));
    } else {
      WriteFailed(*state, t, counts, false);
    }
  }
  state->Settle();
  return kj::mv(paf.promise);
}

void Coordinator::WriteFailed(WriteState& state, const ReplicaTarget& t, std::uint8_t sets,
                              bool timed_out) {
  for (std::size_t i = 0; i < state.pending.size(); ++i) state.pending[i] -= (sets >> i) & 1;
  state.timed_out |= timed_out;
  if (options_.replication.hinted_handoff) {
    KeepHint(t.hint_for != 0 ? t.hint_for : t.node, state.key, state.record);
  }
  state.Settle();
}

void Coordinator::KeepHint(std::uint64_t target, const std::string& key,
                           const storage::Record& record) {
  if (target == store_->self()) return;
  auto w = kj::refcounted<PendingWrite>();
  w->op.kind = storage::WriteOp::Kind::kHint;
  w->op.key = key;
  w->op.remote = record;
  w->op.hint_for = target;
  auto applied = batcher_->Submit(*w);
  tasks_.add(applied.then([this, w = kj::mv(w)]() {
    if (w->op.status.ok()) {
      ++counters_.hints_stored;
    } else {
      KJ_LOG(ERROR, "cannot keep a hint", w->op.status.ToString());
    }
  }));
}

kj::Promise<Coordinator::WriteOutcome> Coordinator::Forward(const Snapshot& s, std::uint64_t leader,
                                                            WriteRequest request) {
  KJ_IF_MAYBE (peer, Peer(s, leader)) {
    ++counters_.forwarded;
    auto req = peer->coordinateRequest();
    req.setKind(ToWireKind(request.kind));
    req.setKey(Bytes(request.key));
    req.setValue(Bytes(request.value));
    if (!request.seen.empty()) req.setContext(Bytes(storage::EncodeContext(request.seen)));
    req.setConsistency(static_cast<wire::Consistency>(request.consistency));
    // The owner waits up to one timeout for its replicas: allow for that and the hop.
    return peers_->Timed(leader, options_.request_timeout * 2, req.send())
        .then(
            [](capnp::Response<wire::KvReplica::CoordinateResults>&& r) {
              return WriteOutcome{FromWire(r.getStatus()), std::string(View(r.getContext()))};
            },
            [](kj::Exception&& e) {
              if (e.getType() == kj::Exception::Type::OVERLOADED) {
                return WriteOutcome{
                    Status::Timeout("the owner the write was forwarded to did not answer"), ""};
              }
              return WriteOutcome{Status::Unavailable(std::string("forwarding to the "
                                                                  "key's owner failed: ") +
                                                      e.getDescription().cStr()),
                                  ""};
            });
  }
  return WriteOutcome{Status::Unavailable("no address for the key's owner"), ""};
}

kj::Promise<Coordinator::ReadOutcome> Coordinator::Read(std::string key, Consistency consistency) {
  Snapshot snap = Current();
  ReplicaPlan plan = Plan(snap, key);
  if (plan.owners == 0) {
    return ReadOutcome{Status::Unavailable("no node owns ring tokens yet"), {}};
  }
  const int required = plan.Required(consistency, options_.replication.r);
  const int reachable = plan.Reachable(consistency);
  if (reachable < required) {
    return ReadOutcome{
        Status::Unavailable("" + std::to_string(reachable) + " of " + std::to_string(required) +
                            " required replicas are up (" + std::to_string(plan.down.size()) +
                            " DOWN)"),
        {}};
  }
  auto paf = kj::newPromiseAndFulfiller<ReadOutcome>();
  auto state = kj::refcounted<ReadState>();
  state->snapshot = snap;
  state->key = key;
  state->consistency = consistency;
  state->targets = plan.targets;
  state->replies.resize(plan.targets.size());
  state->required = required;
  state->pending = static_cast<int>(plan.targets.size());
  state->fulfiller = kj::mv(paf.fulfiller);
  state->timeout = options_.request_timeout;

  // Called once per target, with its record or nothing.
  auto reply = [this](ReadState& st, std::size_t i, std::optional<storage::Record> record,
                      bool timed_out) {
    --st.pending;
    st.timed_out |= timed_out;
    if (record) {
      st.merged = storage::Record::Merge(st.merged, *record);
      if (ReplicaPlan::Counts(st.targets[i], st.consistency)) ++st.acks;
      st.replies[i] = std::move(record);
    }
    if (!st.answered && st.acks >= st.required) {
      st.answered = true;
      st.fulfiller->fulfill(ReadOutcome{Status::Ok(), st.merged});
    } else if (!st.answered && st.pending == 0) {
      st.answered = true;
      const std::string msg = Shortfall("answered", st.acks, st.required, st.timed_out, st.timeout);
      st.fulfiller->fulfill(
          ReadOutcome{st.timed_out ? Status::Timeout(msg) : Status::Unavailable(msg), {}});
    }
    if (st.pending == 0) {
      // Read repair: whoever returned less than everything seen gets the merge.
      for (std::size_t j = 0; j < st.targets.size(); ++j) {
        if (st.replies[j] && !(*st.replies[j] == st.merged)) {
          Repair(st.snapshot, st.targets[j], st.key, st.merged);
        }
      }
    }
  };

  const std::uint64_t self = store_->self();
  for (std::size_t i = 0; i < plan.targets.size(); ++i) {
    const ReplicaTarget t = plan.targets[i];
    if (t.node == self && t.hint_for == 0) {
      storage::LocalStore* store = store_;
      tasks_.add(RunOn<Result<storage::Record>>(pool_, [store, key]() { return store->Read(key); })
                     .then([state = kj::addRef(*state), i,
                            reply](Result<storage::Record>&& local) mutable {
                       if (local.ok()) {
                         reply(*state, i, std::move(local.value()), false);
                       } else {
                         // An overloaded store is counted (kvtool stats), not logged per read.
                         if (local.status().code() != Status::Code::kOverloaded) {
                           KJ_LOG(ERROR, "local read failed", local.status().ToString());
                         }
                         reply(*state, i, std::nullopt, false);
                       }
                     }));
      continue;
    }
    KJ_IF_MAYBE (peer, Peer(snap, t.node)) {
      auto req = peer->readRequest();
      req.setKey(Bytes(key));
      req.setHintFor(t.hint_for);
      auto call = peers_->Timed(t.node, options_.request_timeout, req.send());
      tasks_.add(call.then(
          [state = kj::addRef(*state), i,
           reply](capnp::Response<wire::KvReplica::ReadResults>&& r) mutable {
            std::optional<storage::Record> record;
            if (FromWire(r.getStatus()).ok()) {
              if (r.getRecord().size() == 0) {
                record = storage::Record();
              } else if (auto decoded = storage::DecodeRecord(View(r.getRecord())); decoded.ok()) {
                record = std::move(decoded.value());
              } else {
                KJ_LOG(WARNING, "replica sent an undecodable record", decoded.status().ToString());
              }
            }
            reply(*state, i, std::move(record), false);
          },
          [state = kj::addRef(*state), i, reply](kj::Exception&& e) mutable {
            reply(*state, i, std::nullopt, e.getType() == kj::Exception::Type::OVERLOADED);
          }));
    } else {
      reply(*state, i, std::nullopt, false);
    }
  }
  return kj::mv(paf.promise);
}

void Coordinator::Repair(const Snapshot& s, const ReplicaTarget& t, const std::string& key,
                         const storage::Record& merged) {
  ++counters_.read_repairs;
  if (t.node == store_->self() && t.hint_for == 0) {
    auto w = kj::refcounted<PendingWrite>();
    w->op.kind = storage::WriteOp::Kind::kMerge;
    w->op.key = key;
    w->op.remote = merged;
    auto applied = batcher_->Submit(*w);
    tasks_.add(applied.attach(kj::mv(w)));
    return;
  }
  KJ_IF_MAYBE (peer, Peer(s, t.node)) {
    auto req = peer->writeRequest();
    req.setKey(Bytes(key));
    req.setRecord(Bytes(storage::EncodeRecord(merged)));
    req.setHintFor(t.hint_for);
    // Best effort: a repair that fails is left to the next read, hints and anti-entropy.
    tasks_.add(peers_->Timed(t.node, options_.request_timeout, req.send())
                   .then([](auto&&) {}, [](kj::Exception&&) {}));
  }
}

kj::Promise<void> Coordinator::RunHandoff() {
  return peers_->timer().afterDelay(options_.handoff_interval).then([this]() {
    DeliverHints();
    return RunHandoff();
  });
}

void Coordinator::DeliverHints() {
  auto counts = store_->HintCounts();
  if (counts.empty()) return;
  auto view = cluster_->View();
  for (const auto& [target, n] : counts) {
    if (delivering_.count(target) != 0) continue;
    const membership::MemberView* m = view->Find(target);
    if (view->synced && (m == nullptr || m->liveness == membership::Liveness::kRemoved ||
        m->liveness == membership::Liveness::kLeft || m->app.state == membership::NodeState::kLeft)) {
      // It left the ring (or was removed) for good: its hints go to the keys' owners now.
      delivering_.insert(target);
      tasks_.add(Rehome(target).then([this, target = target]() { delivering_.erase(target); },
                                     [this, target = target](kj::Exception&& e) {
                                       delivering_.erase(target);
                                       KJ_LOG(WARNING, "handing off a gone node's hints failed", e);
                                     }));
      continue;
    }
    if (m->liveness != membership::Liveness::kUp || m->app.rpc_address.empty()) continue;
    delivering_.insert(target);
    tasks_.add(DeliverTo(target, m->app.rpc_address)
                   .then([this, target = target]() { delivering_.erase(target); },
                         [this, target = target](kj::Exception&& e) {
                           delivering_.erase(target);
                           KJ_LOG(WARNING, "hint handoff failed", e);
                         }));
  }
}

kj::Promise<Result<std::vector<storage::Hint>>> Coordinator::ScanHints(std::uint64_t target) {
  storage::LocalStore* store = store_;
  const std::size_t limit = options_.handoff_batch;
  return RunOn<Result<std::vector<storage::Hint>>>(
      background_, [store, target, limit]() { return store->ScanHints(target, limit); });
}

kj::Promise<void> Coordinator::DeleteDelivered(std::uint64_t target, storage::Hint hint,
                                              bool expired) {
  storage::LocalStore* store = store_;
  return RunOn<Result<bool>>(background_,
                             [store, target, h = std::move(hint)]() {
                               return store->DeleteHintIfUnchanged(target, h.key, h.record);
                             })
      .then([this, expired](Result<bool>&& deleted) {
        if (deleted.ok() && deleted.value()) {
          ++(expired ? counters_.hints_expired : counters_.hints_delivered);
        }
      });
}

kj::Promise<void> Coordinator::Rehome(std::uint64_t gone) {
  return ScanHints(gone).then([this, gone](Result<std::vector<storage::Hint>>&& hints) {
    return Rehome(gone, std::move(hints));
  });
}

kj::Promise<void> Coordinator::Rehome(std::uint64_t gone,
                                      Result<std::vector<storage::Hint>> hints) {
  if (!hints.ok()) {
    KJ_LOG(ERROR, "cannot read hints", hints.status().ToString());
    return kj::READY_NOW;
  }
  if (hints->empty()) return kj::READY_NOW;
  const bool full = hints->size() >= options_.handoff_batch;
  Snapshot snap = Current();
  auto all_ok = std::make_shared<bool>(true);
  kj::Vector<kj::Promise<void>> keys;
  for (storage::Hint& h : hints.value()) {
    // Each current owner (or a stand-in for a DOWN one) gets the record, as a write would.
    const ReplicaPlan plan = Plan(snap, h.key);
    if (plan.owners == 0) {
      *all_ok = false;
      continue;
    }
    for (std::uint64_t owner : plan.uncovered) KeepHint(owner, h.key, h.record);
    auto acked = std::make_shared<bool>(true);
    kj::Vector<kj::Promise<void>> calls;
    for (const ReplicaTarget& t : plan.targets) {
      if (t.node == store_->self()) {
        if (t.hint_for != 0) {
          KeepHint(t.hint_for, h.key, h.record);
          continue;
        }
        auto w = kj::refcounted<PendingWrite>();
        w->op.kind = storage::WriteOp::Kind::kMerge;
        w->op.key = h.key;
        w->op.remote = h.record;
        auto applied = batcher_->Submit(*w);
        calls.add(applied.then([w = kj::mv(w), acked]() {
          if (!w->op.status.ok()) *acked = false;
        }));
        continue;
      }
      KJ_IF_MAYBE (peer, Peer(snap, t.node)) {
        auto req = peer->writeRequest();
        req.setKey(Bytes(h.key));
        req.setRecord(Bytes(storage::EncodeRecord(h.record)));
        req.setHintFor(t.hint_for);
        calls.add(peers_->Timed(t.node, options_.request_timeout, req.send())
                      .then(
                          [acked](capnp::Response<wire::KvReplica::WriteResults>&& r) {
                            if (!FromWire(r.getStatus()).ok()) *acked = false;
                          },
                          [acked](kj::Exception&&) { *acked = false; }));
      } else {
        *acked = false;
      }
    }
    keys.add(kj::joinPromises(calls.releaseAsArray())
                 .then([this, gone, acked, all_ok, h = kj::mv(h)]() mutable -> kj::Promise<void> {
                   if (!*acked) {
                     *all_ok = false;
                     return kj::READY_NOW;
                   }
                   return DeleteDelivered(gone, std::move(h), false);
                 }));
  }
  return kj::joinPromises(keys.releaseAsArray()).then([this, gone, all_ok, full]() -> kj::Promise<void> {
    if (*all_ok && full) return Rehome(gone);
    return kj::READY_NOW;
  });
}

kj::Promise<void> Coordinator::DeliverTo(std::uint64_t target, std::string address) {
  return ScanHints(target).then(
      [this, target, address = kj::mv(address)](Result<std::vector<storage::Hint>>&& hints) mutable {
        return DeliverTo(target, kj::mv(address), std::move(hints));
      });
}

kj::Promise<void> Coordinator::DeliverTo(std::uint64_t target, std::string address,
                                         Result<std::vector<storage::Hint>> hints) {
  if (!hints.ok()) {
    KJ_LOG(ERROR, "cannot read hints", hints.status().ToString());
    return kj::READY_NOW;
  }
  if (hints->empty()) return kj::READY_NOW;
  const bool full = hints->size() >= options_.handoff_batch;
  auto peer = peers_->Get(target, address);
  auto all_ok = std::make_shared<bool>(true);
  kj::Vector<kj::Promise<void>> calls;
  const std::uint64_t now_s =
      options_.clock_s ? options_.clock_s() : static_cast<std::uint64_t>(std::time(nullptr));
  for (storage::Hint& h : hints.value()) {
    if (options_.hint_ttl_s != 0 && h.created_s != 0 && now_s > h.created_s &&
        now_s - h.created_s > options_.hint_ttl_s) {
      calls.add(DeleteDelivered(target, std::move(h), true));
      continue;
    }
    auto req = peer.writeRequest();
    req.setKey(Bytes(h.key));
    req.setRecord(Bytes(storage::EncodeRecord(h.record)));
    req.setHintFor(0);
    calls.add(peers_->Timed(target, options_.request_timeout, req.send())
                  .then(
                      [this, target, all_ok, h = kj::mv(h)](
                          capnp::Response<wire::KvReplica::WriteResults>&& r) mutable
                      -> kj::Promise<void> {
                        if (!FromWire(r.getStatus()).ok()) {
                          *all_ok = false;
                          return kj::READY_NOW;
                        }
                        // Acknowledged: now it may go, unless it grew meanwhile.
                        return DeleteDelivered(target, std::move(h), false);
                      },
                      [all_ok](kj::Exception&&) { *all_ok = false; }));
  }
  return kj::joinPromises(calls.releaseAsArray())
      .then([this, target, address = kj::mv(address), all_ok, full]() mutable -> kj::Promise<void> {
        if (*all_ok && full) return DeliverTo(target, kj::mv(address));
        return kj::READY_NOW;
      });
}

}  // namespace kv::rpc
