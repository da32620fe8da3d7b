#include "rpc/movement_runner.h"

#include <kj/debug.h>

#include <algorithm>
#include <chrono>

#include "rpc/wire_status.h"

namespace kv::rpc {
namespace {

using Action = membership::MovementDriver::Action;
namespace mb = kv::membership;

void FillSeen(const mb::Movement& mv, wire::MovementInfo::Builder out) {
  out.setActive(true);
  out.setKind(mb::Name(mv.kind));
  out.setDriver(mv.driver);
  out.setSubject(mv.subject);
  out.setReadsNew(mv.reads_new);
  out.setDescription(mb::Describe(mv));
}

}  // namespace

MovementRunner::MovementRunner(StoragePool* pool, repair::RangeReader* reader, std::uint64_t self,
                               ClusterControl* cluster, PeerPool* peers, Options options,
                               Save save)
    : pool_(pool),
      reader_(reader),
      self_(self),
      cluster_(cluster),
      peers_(peers),
      options_(options),
      save_(std::move(save)),
      pacer_(peers->timer(), options.rate_bytes_per_s, kPacerBurstBytes),
      tasks_(*this) {}

MovementRunner::~MovementRunner() = default;

void MovementRunner::taskFailed(kj::Exception&& exception) {
  KJ_LOG(ERROR, "ring movement stopped", exception);
  if (driver_) {
    auto done = std::move(done_);
    driver_.reset();
    outcome_ = exception.getDescription().cStr();
    if (done) done(kind_, Status::IoError(outcome_));
  }
}

mb::Time MovementRunner::Now() const {
  return std::chrono::duration_cast<mb::Time>(
      std::chrono::steady_clock::now().time_since_epoch());
}

Status MovementRunner::Start(mb::MovementDriver::Options driver, mb::MovementCheckpoint resumed,
                             Done done) {
  if (driver_) {
    return Status::Unavailable("this node already drives a movement: " +
                               driver_->progress().phase);
  }
  kind_ = driver.kind;
  outcome_.clear();
  driver_ = std::make_unique<mb::MovementDriver>(std::move(driver), std::move(resumed));
  done_ = std::move(done);
  paced_bytes_ = 0;
  pacing_start_ = peers_->timer().now();
  tasks_.add(Step());
  return Status::Ok();
}

void MovementRunner::Describe(wire::MovementInfo::Builder out) {
  auto view = cluster_->View();
  if (auto mv = mb::MovementOf(*view)) FillSeen(*mv, out);
  out.setOutcome(outcome_);
  if (!driver_) return;
  const mb::MovementProgress& p = driver_->progress();
  out.setProgress(true);
  out.setPhase(p.phase);
  out.setNote(p.note);
  out.setCopiesDone(p.copies_done);
  out.setCopiesTotal(p.copies_total);
  out.setBytesCopied(p.bytes_copied);
}

kj::Promise<void> MovementRunner::Step() {
  if (!driver_) return kj::READY_NOW;
  auto view = cluster_->View();
  Action a = driver_->Next(*view, Now());
  switch (a.type) {
    case Action::Type::kWait: {
      const mb::Time now = Now();
      kj::Duration delay = options_.poll;
      if (a.wake > now) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(a.wake - now);
        delay = std::min(delay, static_cast<std::int64_t>(us.count()) * kj::MICROSECONDS);
      }
      return peers_->timer().afterDelay(delay).then([this]() { return Step(); });
    }
    case Action::Type::kPublish: {
      auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
      auto fulfiller =
          std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<void>>>(kj::mv(paf.fulfiller));
      const mb::AppState want = a.app;
      cluster_->MutateApp(
          [want](mb::AppState& app) {
            app.state = want.state;
            app.tokens = want.tokens;
            app.replaces = want.replaces;
            app.removing = want.removing;
            app.reads_new = want.reads_new;
          },
          [fulfiller]() { (*fulfiller)->fulfill(); });
      return paf.promise.then([this]() {
        driver_->Published();
        return Step();
      });
    }
    case Action::Type::kBarrier:
      return Barrier(a).then([this]() { return Step(); });
    case Action::Type::kCopy:
      return Copy(a).then([this]() { return Step(); });
    case Action::Type::kSave: {
      Status s = save_ ? save_(mb::EncodeCheckpoint(a.checkpoint)) : Status::Ok();
      if (!s.ok()) KJ_LOG(ERROR, "cannot save the movement checkpoint", s.ToString());
      driver_->Saved();
      return Step();
    }
    case Action::Type::kRemove: {
      auto paf = kj::newPromiseAndCrossThreadFulfiller<bool>();
      auto fulfiller =
          std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<bool>>>(kj::mv(paf.fulfiller));
      cluster_->Remove(a.remove, [fulfiller](bool ok) { (*fulfiller)->fulfill(kj::cp(ok)); });
      return paf.promise.then([this](bool ok) {
        driver_->Removed(ok);
        return Step();
      });
    }
    case Action::Type::kDone:
    case Action::Type::kFailed: {
      const Status s = a.type == Action::Type::kDone ? Status::Ok() : Status::Unavailable(a.error);
      if (s.ok() && save_) (void)save_("");
      outcome_ = s.ok() ? "done" : a.error;
      last_progress_ = driver_->progress();
      auto done = std::move(done_);
      driver_.reset();
      if (done) done(kind_, s);
      return kj::READY_NOW;
    }
  }
  return kj::READY_NOW;
}

kj::Promise<void> MovementRunner::Barrier(const Action& a) {
  auto view = cluster_->View();
  auto answers = std::make_shared<std::vector<mb::MovementDriver::Answer>>();
  kj::Vector<kj::Promise<void>> asks;
  for (std::uint64_t id : a.members) {
    const mb::MemberView* m = view->Find(id);
    if (m == nullptr || m->app.rpc_address.empty()) continue;
    auto req = peers_->Get(id, m->app.rpc_address).movementRequest();
    asks.add(peers_->Timed(id, options_.timeout, req.send())
                 .then(
                     [answers, id](capnp::Response<wire::KvReplica::MovementResults>&& r) {
                       mb::MovementDriver::Answer ans;
                       ans.member = id;
                       auto info = r.getMovement();
                       if (info.getActive()) {
                         mb::Movement mv;
                         mv.driver = info.getDriver();
                         mv.subject = info.getSubject();
                         mv.reads_new = info.getReadsNew();
                         for (auto k : {mb::MovementKind::kJoin, mb::MovementKind::kReplace,
                                        mb::MovementKind::kDecommission,
                                        mb::MovementKind::kRemove}) {
                           if (info.getKind() == mb::Name(k)) mv.kind = k;
                         }
                         ans.sees = mv;
                       }
                       answers->push_back(ans);
                     },
                     [](kj::Exception&&) {}));
  }
  return kj::joinPromises(asks.releaseAsArray()).then([this, answers]() {
    if (driver_) driver_->BarrierResult(*answers, Now());
  });
}

kj::Promise<void> MovementRunner::Copy(const Action& a) {
  kj::Promise<Pulled> pulled = nullptr;
  if (a.target == self_) {
    pulled = Pull(a.range, a.sources);
  } else {
    auto view = cluster_->View();
    const mb::MemberView* m = view->Find(a.target);
    if (m == nullptr || m->app.rpc_address.empty()) {
      pulled = Pulled{Status::Unavailable("no address for the new replica"), 0, 0};
    } else {
      auto req = peers_->Get(a.target, m->app.rpc_address).pullRequest();
      req.initRange().setBegin(a.range.begin);
      req.getRange().setEnd(a.range.end);
      auto sources = req.initSources(static_cast<unsigned>(a.sources.size()));
      for (unsigned i = 0; i < a.sources.size(); ++i) sources.set(i, a.sources[i]);
      // The target runs one exchange per source, each request bounded by the timeout.
      const kj::Duration bound = options_.timeout * static_cast<std::int64_t>(8 * (a.sources.size() + 1));
      pulled = peers_->Timed(a.target, bound, req.send())
                   .then(
                       [](capnp::Response<wire::KvReplica::PullResults>&& r) {
                         return Pulled{FromWire(r.getStatus()), r.getKeys(), r.getBytes()};
                       },
                       [](kj::Exception&& e) {
                         return Pulled{Status::Unavailable(std::string("the new replica did not "
                                                                       "answer: ") +
                                                           e.getDescription().cStr()),
                                       0, 0};
                       });
    }
  }
  return pulled.then([this](Pulled&& p) -> kj::Promise<void> {
    if (!driver_) return kj::READY_NOW;
    driver_->CopyResult(p.status.ok(), p.status.message(), p.bytes, Now());
    // Pace: wait until the bytes copied so far fit the allowed rate.
    paced_bytes_ += p.bytes;
    if (options_.rate_bytes_per_s == 0) return kj::READY_NOW;
    const double due_s =
        static_cast<double>(paced_bytes_) / static_cast<double>(options_.rate_bytes_per_s);
    const kj::TimePoint due =
        pacing_start_ + static_cast<std::int64_t>(due_s * 1e6) * kj::MICROSECONDS;
    if (due <= peers_->timer().now()) return kj::READY_NOW;
    return peers_->timer().atTime(due);
  });
}

kj::Promise<MovementRunner::Pulled> MovementRunner::Pull(ring::TokenRange range,
                                                         std::vector<std::uint64_t> sources) {
  // What this node holds of a range it is gaining is not a replica's data. It is either left
  // from a time it replicated the range before (a movement took the range away and no cleanup
  // ran since), where a value may survive whose tombstone the replicas have purged meanwhile,
  // or a write of this movement, which the sources hold as well: during a movement a write
  // needs a quorum of the replicas before it too. Copied over, the leftovers would come back
  // as live data; so the range is emptied first, and the copy brings every write back.
  auto gained = std::make_shared<std::vector<ring::TokenRange>>();
  if (Status s = GainedHere(range, gained.get()); !s.ok()) {
    return Pulled{s, 0, 0};
  }
  auto out = std::make_shared<Pulled>();
  auto list = std::make_shared<std::vector<std::uint64_t>>(std::move(sources));
  repair::RangeReader* reader = reader_;
  return RunOn<Status>(pool_,
                       [reader, gained]() {
                         for (const auto& r : *gained) {
                           auto dropped = reader->DropRange(r);
                           if (!dropped.ok()) return dropped.status();
                         }
                         return Status::Ok();
                       })
      .then([this, list, range, out](Status s) -> kj::Promise<void> {
        if (!s.ok()) {
          out->status = s;
          return kj::READY_NOW;
        }
        return PullFrom(list, 0, range, out);
      })
      .then([out]() { return *out; });
}

Status MovementRunner::GainedHere(ring::TokenRange range, std::vector<ring::TokenRange>* out) {
  const mb::Topology t = mb::TopologyOf(*cluster_->View());
  if (!t.movement || t.before == nullptr || t.after == nullptr) {
    return Status::Unavailable("this node sees no ring movement to copy a range for");
  }
  // Token ranges that do not wrap, the end 0 standing for the top of the token space.
  const auto end_of = [](const ring::TokenRange& r) -> unsigned __int128 {
    return r.end == 0 ? (static_cast<unsigned __int128>(1) << 64) : r.end;
  };
  for (const ring::RangeMove& mv : ring::PlanMoves(*t.before, *t.after, options_.n)) {
    if (std::find(mv.targets.begin(), mv.targets.end(), self_) == mv.targets.end()) continue;
    const ring::Token begin = std::max(mv.range.begin, range.begin);
    const unsigned __int128 end = std::min(end_of(mv.range), end_of(range));
    if (begin >= end) continue;
    out->push_back({begin, end == (static_cast<unsigned __int128>(1) << 64)
                               ? ring::Token{0}
                               : static_cast<ring::Token>(end)});
  }
  return Status::Ok();
}

kj::Promise<void> MovementRunner::PullFrom(std::shared_ptr<std::vector<std::uint64_t>> sources,
                                           std::size_t next, ring::TokenRange range,
                                           std::shared_ptr<Pulled> out) {
  if (next >= sources->size()) return kj::READY_NOW;
  const std::uint64_t source = (*sources)[next];
  auto view = cluster_->View();
  const mb::MemberView* m = view->Find(source);
  char name[17];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(source));
  if (m == nullptr || m->app.rpc_address.empty() || m->liveness == mb::Liveness::kDown ||
      m->liveness == mb::Liveness::kLeft || m->liveness == mb::Liveness::kRemoved) {
    out->status = Status::Unavailable(std::string("source ") + name + " is " +
                                      (m == nullptr ? "unknown" : mb::Name(m->liveness)));
    return kj::READY_NOW;
  }
  auto bytes_on_wire = std::make_shared<std::uint64_t>(0);
  // The first source is copied from (this node holds little of the range yet); the others are
  // compared with, which moves only what the first lacked.
  return ExchangeRange(pool_, reader_, peers_, options_.tree_bits, source, m->app.rpc_address, range,
                       false, options_.timeout, bytes_on_wire.get(), /*copy=*/next == 0,
                       &pacer_)
      .attach(kj::heap(bytes_on_wire))
      .then([this, sources, next, range, out,
             source_name = std::string(name)](RangeExchange&& done) -> kj::Promise<void> {
        out->keys += done.stats.records_pulled;
        out->bytes += done.stats.bytes_pulled;
        if (!done.status.ok()) {
          out->status =
              Status::Unavailable("source " + source_name + ": " + done.status.ToString());
          return kj::READY_NOW;
        }
        return PullFrom(sources, next + 1, range, out);
      });
}

}  // namespace kv::rpc
