#include "membership/movement_driver.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace kv::membership {
namespace {

void PutU64(std::string* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU64(std::string_view* in, std::uint64_t* v) {
  if (in->size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) *v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>((*in)[i])) << (8 * i);
  in->remove_prefix(8);
  return true;
}

std::string HexId(NodeId id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

constexpr char kCheckpointMagic[] = "kvmove1";
constexpr std::size_t kMaxCheckpointCopies = 1 << 20;

const char* PhaseName(int p) {
  static const char* const kNames[] = {"waiting for its turn", "announcing", "announced",
                                       "copying", "switching reads", "reads switched",
                                       "finishing", "done", "failed", "withdrawing"};
  return kNames[p];
}

}  // namespace

std::string EncodeCheckpoint(const MovementCheckpoint& c) {
  std::string out(kCheckpointMagic, sizeof kCheckpointMagic - 1);
  out.push_back(static_cast<char>(c.kind));
  PutU64(&out, c.subject);
  PutU64(&out, c.done.size());
  for (const auto& [b, e, t] : c.done) {
    PutU64(&out, b);
    PutU64(&out, e);
    PutU64(&out, t);
  }
  return out;
}

bool DecodeCheckpoint(std::string_view in, MovementCheckpoint* out) {
  const std::size_t magic = sizeof kCheckpointMagic - 1;
  if (in.size() < magic + 1 || std::memcmp(in.data(), kCheckpointMagic, magic) != 0) return false;
  in.remove_prefix(magic);
  const auto kind = static_cast<std::uint8_t>(in[0]);
  if (kind > static_cast<std::uint8_t>(MovementKind::kRemove)) return false;
  in.remove_prefix(1);
  MovementCheckpoint c;
  c.kind = static_cast<MovementKind>(kind);
  std::uint64_t n = 0;
  if (!GetU64(&in, &c.subject) || !GetU64(&in, &n)) return false;
  if (n > kMaxCheckpointCopies || in.size() != n * 24) return false;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::uint64_t b, e, t;
    (void)(GetU64(&in, &b) && GetU64(&in, &e) && GetU64(&in, &t));
    c.done.emplace(b, e, t);
  }
  *out = std::move(c);
  return true;
}

MovementDriver::MovementDriver(Options options, MovementCheckpoint resumed)
    : options_(std::move(options)) {
  if (resumed.kind == options_.kind && resumed.subject == options_.subject) {
    checkpoint_ = std::move(resumed);
  } else {
    checkpoint_.kind = options_.kind;
    checkpoint_.subject = options_.subject;
  }
  progress_.phase = PhaseName(static_cast<int>(phase_));
}

void MovementDriver::SetPhase(Phase p, Time now) {
  phase_ = p;
  phase_since_ = now;
  wake_ = now;
  progress_.phase = PhaseName(static_cast<int>(p));
}

std::vector<NodeId> MovementDriver::LiveOthers(const ClusterView& view) const {
  std::vector<NodeId> out;
  for (const MemberView& m : view.members) {
    if (m.id == options_.self) continue;
    if (m.liveness == Liveness::kUp || m.liveness == Liveness::kSuspect) out.push_back(m.id);
  }
  return out;
}

bool MovementDriver::SeesSelf(const ClusterView& view, bool reads_new) const {
  std::optional<Movement> mv = MovementOf(view);
  return mv && mv->driver == options_.self && mv->reads_new == reads_new;
}

AppState MovementDriver::Driving(const AppState& current, bool reads_new) const {
  AppState app = current;
  app.reads_new = reads_new;
  switch (options_.kind) {
    case MovementKind::kJoin:
    case MovementKind::kReplace:
      app.state = NodeState::kJoining;
      app.tokens = tokens_;
      app.replaces = options_.kind == MovementKind::kReplace ? options_.subject : 0;
      break;
    case MovementKind::kDecommission:
      app.state = NodeState::kLeaving;
      break;
    case MovementKind::kRemove:
      app.state = NodeState::kNormal;
      app.removing = options_.subject;
      break;
  }
  return app;
}

AppState MovementDriver::Idle(const AppState& current, bool finished) const {
  AppState app = current;
  app.reads_new = false;
  app.replaces = 0;
  app.removing = 0;
  switch (options_.kind) {
    case MovementKind::kJoin:
    case MovementKind::kReplace:
      app.state = finished ? NodeState::kNormal : NodeState::kJoining;
      app.tokens = finished ? tokens_ : std::vector<std::uint64_t>{};
      break;
    case MovementKind::kDecommission:
    case MovementKind::kRemove:
      app.state = NodeState::kNormal;
      break;
  }
  return app;
}

MovementDriver::Action MovementDriver::Fail(const AppState& current, std::string why) {
  (void)current;
  failure_ = std::move(why);
  progress_.note = failure_;
  phase_ = Phase::kWithdraw;
  progress_.phase = PhaseName(static_cast<int>(phase_));
  published_ = false;
  Action a;
  a.type = Action::Type::kWait;
  return a;
}

MovementDriver::Action MovementDriver::Next(const ClusterView& view, Time now) {
  Action wait;
  wait.type = Action::Type::kWait;
  wait.wake = now + options_.retry_interval;
  if (awaiting_) return wait;
  const MemberView* self = view.Find(options_.self);
  const AppState current = self != nullptr ? self->app : AppState{};
  auto publish = [&](AppState app) {
    awaiting_ = true;
    published_ = false;
    Action a;
    a.type = Action::Type::kPublish;
    a.app = std::move(app);
    return a;
  };
  auto withdraw_for = [&](const std::string& why) {
    // Another movement was chosen over this one: a join waits for its next turn.
    const bool join = options_.kind == MovementKind::kJoin || options_.kind == MovementKind::kReplace;
    retry_turn_ = join;
    (void)Fail(current, why);
    return Next(view, now);
  };

  switch (phase_) {
    case Phase::kWaitTurn: {
      if (!view.synced) {
        progress_.note = "waiting for the cluster's state";
        return wait;
      }
      if (options_.kind == MovementKind::kReplace || options_.kind == MovementKind::kRemove) {
        const MemberView* d = view.Find(options_.subject);
        std::string bad;
        if (d == nullptr) {
          bad = "no member " + HexId(options_.subject) + " is known";
        } else if (Gone(*d) || d->app.state == NodeState::kJoining) {
          bad = "the member is not in the ring (it left, was removed, or never finished joining)";
        } else if (d->liveness == Liveness::kUp || d->liveness == Liveness::kSuspect) {
          bad = std::string("the member is ") + Name(d->liveness) +
                "; only a dead (DOWN) member can be replaced or removed: stop it first";
        }
        if (!bad.empty()) {
          failure_ = bad;
          SetPhase(Phase::kFailed, now);
          progress_.note = failure_;
          break;
        }
        if (options_.kind == MovementKind::kReplace) tokens_ = d->app.tokens;
      } else if (options_.kind == MovementKind::kJoin) {
        tokens_ = options_.tokens;
      }
      if (options_.kind == MovementKind::kDecommission) {
        const Topology t = TopologyOf(view);
        bool in_ring = false;
        for (const auto& node : t.read->nodes()) in_ring |= node.id == options_.self;
        if (!in_ring || t.read->size() < 2) {
          failure_ = in_ring ? "this is the last node of the ring; nothing could take its ranges"
                             : "this node owns no ranges";
          SetPhase(Phase::kFailed, now);
          progress_.note = failure_;
          break;
        }
      }
      std::optional<Movement> mv = MovementOf(view);
      // The removal of a dead member supersedes the movement that member drove (a decommission
      // it died in): that one can never finish.
      const bool supersedes =
          mv && options_.kind == MovementKind::kRemove && mv->driver == options_.subject &&
          mv->kind != MovementKind::kRemove;
      if (mv && mv->driver != options_.self && !supersedes) {
        if (options_.kind == MovementKind::kJoin || options_.kind == MovementKind::kReplace) {
          progress_.note = "waiting for the " + Describe(*mv);
          return wait;
        }
        failure_ = "refused: another movement is in progress: " + Describe(*mv);
        SetPhase(Phase::kFailed, now);
        progress_.note = failure_;
        break;
      }
      progress_.note.clear();
      SetPhase(Phase::kAnnounce, now);
      return publish(Driving(current, false));
    }
    case Phase::kAnnounce:
    case Phase::kReadsNew: {
      const bool reads_new = phase_ == Phase::kReadsNew;
      if (!published_) return publish(Driving(current, reads_new));
      if (SeesSelf(view, reads_new)) {
        SetPhase(reads_new ? Phase::kBarrier2 : Phase::kBarrier1, now);
        return Next(view, now);
      }
      std::optional<Movement> mv = MovementOf(view);
      if (mv && mv->driver != options_.self) {
        return withdraw_for("another movement was chosen over this one: " + Describe(*mv));
      }
      return wait;  // the published state is on its way to the view
    }
    case Phase::kBarrier1:
    case Phase::kBarrier2: {
      const bool reads_new = phase_ == Phase::kBarrier2;
      if (!SeesSelf(view, reads_new)) {
        std::optional<Movement> mv = MovementOf(view);
        return withdraw_for("another movement was chosen over this one: " +
                            (mv ? Describe(*mv) : std::string("none")));
      }
      if (conflict_) return withdraw_for(*conflict_);
      if (now < wake_) {
        wait.wake = wake_;
        return wait;
      }
      awaiting_ = true;
      Action a;
      a.type = Action::Type::kBarrier;
      a.reads_new = reads_new;
      a.members = LiveOthers(view);
      barrier_asked_ = a.members;
      drivers_in_view_.clear();
      if (std::optional<Movement> mv = MovementOf(view, &drivers_in_view_)) {
        drivers_in_view_.push_back(mv->driver);
      }
      return a;
    }
    case Phase::kCopy: {
      if (!SeesSelf(view, false)) {
        std::optional<Movement> mv = MovementOf(view);
        return withdraw_for("another movement was chosen over this one: " +
                            (mv ? Describe(*mv) : std::string("none")));
      }
      if (!planned_) {
        planned_ = true;
        const Topology t = TopologyOf(view);
        for (const ring::RangeMove& m : ring::PlanMoves(*t.before, *t.after, options_.n)) {
          for (NodeId target : m.targets) {
            Copy c{m.range, target, {}};
            for (NodeId s : m.sources) {
              if (s == target) continue;
              if (s == options_.subject && options_.kind != MovementKind::kDecommission &&
                  options_.kind != MovementKind::kJoin) {
                continue;  // the dead member being replaced or removed
              }
              c.sources.push_back(s);
            }
            ++progress_.copies_total;
            if (checkpoint_.done.count({m.range.begin, m.range.end, target}) != 0) {
              ++progress_.copies_done;
              continue;
            }
            copies_.push_back(std::move(c));
          }
        }
      }
      if (saved_pending_) {
        awaiting_ = true;
        Action a;
        a.type = Action::Type::kSave;
        a.checkpoint = checkpoint_;
        return a;
      }
      if (!failure_.empty()) {
        (void)Fail(current, failure_);
        return Next(view, now);
      }
      while (next_copy_ < copies_.size() && copies_[next_copy_].sources.empty()) {
        ++next_copy_;  // nobody holds it: nothing to copy
        ++progress_.copies_done;
      }
      if (next_copy_ == copies_.size()) {
        SetPhase(Phase::kReadsNew, now);
        published_ = false;
        return Next(view, now);
      }
      if (now < wake_) {
        wait.wake = wake_;
        return wait;
      }
      awaiting_ = true;
      const Copy& c = copies_[next_copy_];
      Action a;
      a.type = Action::Type::kCopy;
      a.range = c.range;
      a.target = c.target;
      a.sources = c.sources;
      return a;
    }
    case Phase::kFinish: {
      if (options_.kind == MovementKind::kDecommission) {
        SetPhase(Phase::kDone, now);
        break;
      }
      if ((options_.kind == MovementKind::kReplace || options_.kind == MovementKind::kRemove) &&
          !removed_) {
        awaiting_ = true;
        Action a;
        a.type = Action::Type::kRemove;
        a.remove = options_.subject;
        return a;
      }
      if (!published_final_) {
        published_final_ = true;
        return publish(Idle(current, true));
      }
      SetPhase(Phase::kDone, now);
      break;
    }
    case Phase::kWithdraw: {
      if (!published_) return publish(Idle(current, false));
      if (retry_turn_) {
        // Start over: wait for the turn again, with the copies done so far kept.
        retry_turn_ = false;
        failure_.clear();
        conflict_.reset();
        planned_ = false;
        copies_.clear();
        next_copy_ = 0;
        attempts_ = 0;
        progress_.copies_total = progress_.copies_done = 0;
        SetPhase(Phase::kWaitTurn, now);
        wait.wake = now + options_.retry_interval;
        return wait;
      }
      SetPhase(Phase::kFailed, now);
      progress_.note = failure_;
      break;
    }
    case Phase::kDone:
    case Phase::kFailed:
      break;
  }
  Action a;
  if (phase_ == Phase::kDone) {
    a.type = Action::Type::kDone;
  } else if (phase_ == Phase::kFailed) {
    a.type = Action::Type::kFailed;
    a.error = failure_;
  } else {
    return wait;
  }
  return a;
}

void MovementDriver::Published() {
  awaiting_ = false;
  published_ = true;
}

void MovementDriver::BarrierResult(const std::vector<Answer>& answers, Time now) {
  awaiting_ = false;
  const bool reads_new = phase_ == Phase::kBarrier2;
  std::vector<NodeId> lagging;
  for (NodeId id : barrier_asked_) {
    auto it = std::find_if(answers.begin(), answers.end(),
                           [id](const Answer& a) { return a.member == id; });
    if (it == answers.end() || !it->sees) {
      lagging.push_back(id);
      continue;
    }
    const Movement& mv = *it->sees;
    if (mv.driver != options_.self && options_.kind == MovementKind::kRemove &&
        mv.driver == options_.subject && mv.kind != MovementKind::kRemove) {
      lagging.push_back(id);  // it has not seen yet that this removal supersedes that movement
      continue;
    }
    if (mv.driver != options_.self &&
        std::find(drivers_in_view_.begin(), drivers_in_view_.end(), mv.driver) ==
            drivers_in_view_.end()) {
      // That member's view of the other driver differs from this node's: typically a
      // decommissioner that has left (this view shows it LEFT, that one still leaving). Gossip
      // settles it; if the other movement is real, this node's own view comes to show it and
      // the driver withdraws then (kBarrier's SeesSelf check).
      lagging.push_back(id);
      continue;
    }
    if (mv.driver != options_.self) {
      // Another movement won there (the lowest driver id): this one withdraws.
      conflict_ = "another movement was chosen over this one: " + Describe(mv);
      return;
    }
    if (mv.reads_new != reads_new) lagging.push_back(id);
  }
  if (lagging.empty()) {
    SetPhase(reads_new ? Phase::kFinish : Phase::kCopy, now);
    published_ = false;
    progress_.note.clear();
    return;
  }
  std::string names;
  for (std::size_t i = 0; i < lagging.size() && i < 5; ++i) {
    names += (i ? ", " : "") + HexId(lagging[i]);
  }
  progress_.note = "waiting until every live member sees this phase: not yet " + names;
  if (now - phase_since_ > options_.barrier_timeout) {
    conflict_.reset();
    failure_ = "live members did not confirm the movement's phase in time: " + names;
    retry_turn_ = false;
    phase_ = Phase::kWithdraw;
    published_ = false;
    progress_.phase = PhaseName(static_cast<int>(phase_));
    progress_.note = failure_;
    return;
  }
  wake_ = now + options_.retry_interval;
}

void MovementDriver::CopyResult(bool ok, const std::string& why, std::uint64_t bytes, Time now) {
  awaiting_ = false;
  progress_.bytes_copied += bytes;
  const Copy& c = copies_[next_copy_];
  if (ok) {
    checkpoint_.done.emplace(c.range.begin, c.range.end, c.target);
    ++progress_.copies_done;
    ++next_copy_;
    attempts_ = 0;
    saved_pending_ = true;
    return;
  }
  ++attempts_;
  last_copy_error_ = why;
  progress_.note = "copy failed (attempt " + std::to_string(attempts_) + "): " + why;
  if (attempts_ >= options_.copy_attempts) {
    failure_ = "cannot copy a range after " + std::to_string(attempts_) + " attempts: " + why;
    retry_turn_ = false;
    return;
  }
  wake_ = now + options_.retry_interval;
}

void MovementDriver::Saved() {
  awaiting_ = false;
  saved_pending_ = false;
}

void MovementDriver::Removed(bool ok) {
  awaiting_ = false;
  // A removal that membership refused (already removed, or it came back UP) is not retried:
  // the ring after the movement no longer counts on it either way.
  (void)ok;
  removed_ = true;
}

}  // namespace kv::membership
