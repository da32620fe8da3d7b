#include "rpc/repair_runner.h"

#include <algorithm>
#include <set>

#include "membership/topology.h"
#include "rpc/repair_service.h"
#include "rpc/wire_status.h"

namespace kv::rpc {
namespace {

std::string RangeName(const ring::TokenRange& r) {
  return "[" + std::to_string(r.begin) + ", " + (r.end == 0 ? std::string("2^64") : std::to_string(r.end)) + ")";
}

std::string Hex(std::uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

RepairRunner::RepairRunner(StoragePool* pool, repair::RangeReader* reader, std::uint64_t self,
                           ClusterControl* cluster, PeerPool* peers, Options options)
    : pool_(pool),
      reader_(reader),
      self_(self),
      cluster_(cluster),
      peers_(peers),
      options_(options),
      pacer_(peers->timer(), options.rate_bytes_per_s, kPacerBurstBytes) {}

kj::Promise<RangeExchange> ExchangeRange(StoragePool* pool, repair::RangeReader* reader,
                                         PeerPool* peers,
                                         int tree_bits, std::uint64_t peer,
                                         const std::string& address, ring::TokenRange range,
                                         bool dry_run, kj::Duration timeout,
                                         std::uint64_t* bytes_on_wire, bool copy, Pacer* pacer) {
  auto req = peers->Get(peer, address).repairRequest();
  req.initRange().setBegin(range.begin);
  req.getRange().setEnd(range.end);
  req.setTreeBits(static_cast<std::uint8_t>(tree_bits));
  auto initiator = std::make_shared<repair::Initiator>(reader, tree_bits, range, dry_run);
  if (copy) initiator->PreferCopy();
  auto opened = peers->Timed(peer, timeout, req.send());
  return opened
      .then([pool, peers, initiator, timeout, bytes_on_wire,
             pacer](capnp::Response<wire::KvReplica::RepairResults>&& resp)
                -> kj::Promise<Status> {
        Status s = FromWire(resp.getStatus());
        if (!s.ok()) return s;
        return RunExchange(pool, initiator, resp.getSession(), peers->timer(), timeout,
                           bytes_on_wire, pacer);
      })
      .catch_([](kj::Exception&& e) -> Status {
        return Status::Unavailable(std::string("peer unreachable: ") + e.getDescription().cStr());
      })
      .then([initiator](Status s) { return RangeExchange{std::move(s), initiator->stats()}; });
}

std::vector<RepairRunner::Item> RepairRunner::Plan() {
  auto view = cluster_->View();
  auto ring = RingFromView(*view);
  std::map<std::uint64_t, std::vector<ring::TokenRange>> per_peer;
  for (const auto& r : ring->Ranges(static_cast<std::size_t>(options_.n))) {
    if (std::find(r.replicas.begin(), r.replicas.end(), self_) == r.replicas.end()) continue;
    for (std::uint64_t p : r.replicas) {
      if (p == self_) continue;
      auto& list = per_peer[p];
      // Ranges come sorted by token: join contiguous ones.
      if (!list.empty() && list.back().end == r.range.begin && list.back().end != 0) {
        list.back().end = r.range.end;
      } else {
        list.push_back(r.range);
      }
    }
  }
  std::vector<Item> items;
  for (const auto& [peer, ranges] : per_peer) {
    for (const auto& r : ranges) items.push_back({peer, r});
  }
  return items;
}

kj::Promise<RepairSummary> RepairRunner::Run(bool dry_run) {
  KV_CHECK(!running_);
  running_ = true;
  auto items = std::make_shared<std::vector<Item>>(Plan());
  auto summary = std::make_shared<RepairSummary>();
  summary->dry_run = dry_run;
  summary->ranges_total = items->size();
  progress_ = RepairProgress();
  progress_.ranges_total = items->size();
  const auto start = std::chrono::steady_clock::now();
  return RunItems(items, 0, summary, start)
      .then([this, items, summary]() -> kj::Promise<void> {
        if (summary->dry_run || !summary->skipped.empty() || options_.tombstone_grace_s == 0) {
          return kj::READY_NOW;
        }
        // No tombstone is purged while ranges move: a replica that is copying a range may not
        // hold the tombstone yet, and would bring the deleted value back.
        if (membership::TopologyOf(*cluster_->View()).movement) return kj::READY_NOW;
        const std::uint64_t now =
            options_.clock ? options_.clock()
                           : static_cast<std::uint64_t>(
                                 std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
        if (now <= options_.tombstone_grace_s) return kj::READY_NOW;
        return Purge(items, 0, summary, now - options_.tombstone_grace_s);
      })
      .then([this, summary, start]() {
    summary->elapsed_s = Since(start);
    summary->finished_at =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (!summary->skipped.empty()) {
      std::string msg = std::to_string(summary->skipped.size()) + " of " +
                        std::to_string(summary->ranges_total) + " ranges skipped: ";
      for (std::size_t i = 0; i < summary->skipped.size() && i < 5; ++i) {
        msg += (i ? "; " : "") + summary->skipped[i];
      }
      if (summary->skipped.size() > 5) msg += "; ...";
      summary->status = Status::Unavailable(msg);
    }
    running_ = false;
    if (!summary->dry_run) {
      last_ = *summary;
      ++(summary->status.ok() ? totals_.runs_ok : totals_.runs_incomplete);
      totals_.tombstones_purged += summary->tombstones_purged;
      for (const auto& [peer, t] : summary->peers) {
        PeerTraffic* total = nullptr;
        for (auto& [id, tt] : totals_.peers) {
          if (id == peer) total = &tt;
        }
        if (total == nullptr) total = &totals_.peers.emplace_back(peer, PeerTraffic()).second;
        total->keys_sent += t.keys_sent;
        total->keys_received += t.keys_received;
        total->bytes_sent += t.bytes_sent;
        total->bytes_received += t.bytes_received;
      }
    }
    return *summary;
  });
}

namespace {

// Sends `keys` to the peer's session in bounded chunks, from `offset`.
kj::Promise<void> PurgeChunks(wire::RepairSession::Client session,
                              std::shared_ptr<std::vector<repair::KeyDigest>> keys,
                              std::size_t offset, kj::Timer& timer, kj::Duration timeout) {
  if (offset >= keys->size()) return kj::READY_NOW;
  const std::size_t end = std::min(keys->size(), offset + repair::kMaxKeysPerRequest);
  std::vector<repair::KeyDigest> chunk(keys->begin() + static_cast<std::ptrdiff_t>(offset),
                                       keys->begin() + static_cast<std::ptrdiff_t>(end));
  auto sent = PurgeRemote(session, chunk, timer, timeout);
  return sent.then([session, keys, end, &timer, timeout](Result<std::uint64_t> r) mutable
                       -> kj::Promise<void> {
    if (!r.ok()) return kj::READY_NOW;  // the peer purges on its own next run
    return PurgeChunks(kj::mv(session), keys, end, timer, timeout);
  });
}

}  // namespace

kj::Promise<void> RepairRunner::Purge(std::shared_ptr<std::vector<Item>> items, std::size_t next,
                                      std::shared_ptr<RepairSummary> summary,
                                      std::uint64_t cutoff) {
  if (next >= items->size()) {
    // Every replica held these tombstones when the run confirmed the ranges: purge them here.
    // (A peer that missed its purge request keeps its copy; a later repair may bring it back
    // here, which is churn, never a deleted value coming back.) A scan: on a storage thread.
    repair::RangeReader* reader = reader_;
    return RunOn<Result<std::uint64_t>>(pool_,
                                        [reader, items, cutoff]() -> Result<std::uint64_t> {
                                          std::uint64_t purged = 0;
                                          std::set<std::string> seen;
                                          for (const Item& item : *items) {
                                            auto candidates =
                                                reader->PurgeCandidates(item.range, cutoff);
                                            if (!candidates.ok()) continue;
                                            for (const auto& kd : candidates.value()) {
                                              if (!seen.insert(kd.key).second) continue;
                                              auto p = reader->PurgeIfUnchanged(kd.key, kd.digest);
                                              if (p.ok() && p.value()) ++purged;
                                            }
                                          }
                                          return purged;
                                        })
        .then([summary](Result<std::uint64_t> purged) {
          if (purged.ok()) summary->tombstones_purged += purged.value();
        });
  }
  const Item item = (*items)[next];
  repair::RangeReader* reader = reader_;
  auto candidates = RunOn<Result<std::vector<repair::KeyDigest>>>(
      pool_, [reader, range = item.range, cutoff]() { return reader->PurgeCandidates(range, cutoff); });
  return candidates.then([this, items, next, summary, cutoff,
                          item](Result<std::vector<repair::KeyDigest>>&& candidates)
                             -> kj::Promise<void> {
    auto view = cluster_->View();
    const membership::MemberView* m = view->Find(item.peer);
    if (!candidates.ok() || candidates->empty() || m == nullptr || m->app.rpc_address.empty()) {
      return Purge(items, next + 1, summary, cutoff);
    }
    auto keys = std::make_shared<std::vector<repair::KeyDigest>>(std::move(candidates.value()));
    auto req = peers_->Get(item.peer, m->app.rpc_address).repairRequest();
    req.initRange().setBegin(item.range.begin);
    req.getRange().setEnd(item.range.end);
    req.setTreeBits(static_cast<std::uint8_t>(options_.tree_bits));
    return peers_->Timed(item.peer, options_.timeout, req.send())
        .then([this, keys](capnp::Response<wire::KvReplica::RepairResults>&& resp)
                  -> kj::Promise<void> {
          if (!FromWire(resp.getStatus()).ok()) return kj::READY_NOW;
          return PurgeChunks(resp.getSession(), keys, 0, peers_->timer(), options_.timeout);
        })
        .catch_([](kj::Exception&&) {})
        .then([this, items, next, summary, cutoff]() {
          return Purge(items, next + 1, summary, cutoff);
        });
  });
}

kj::Promise<void> RepairRunner::RunItems(std::shared_ptr<std::vector<Item>> items,
                                         std::size_t next, std::shared_ptr<RepairSummary> summary,
                                         std::chrono::steady_clock::time_point start) {
  progress_.elapsed_s = Since(start);
  if (next >= items->size()) return kj::READY_NOW;
  const Item item = (*items)[next];
  auto skip = [this, summary, item](const std::string& why) {
    summary->skipped.push_back(RangeName(item.range) + " with " + Hex(item.peer) + ": " + why);
  };
  auto view = cluster_->View();
  const membership::MemberView* m = view->Find(item.peer);
  auto advance = [this, items, next, summary, start]() {
    ++progress_.ranges_done;
    return RunItems(items, next + 1, summary, start);
  };
  // A SUSPECT peer is not known to be down (a slow or briefly cut-off node is suspected first):
  // it is asked like an UP one, and skipped only if it does not answer in time.
  const bool reachable = m != nullptr && (m->liveness == membership::Liveness::kUp ||
                                          m->liveness == membership::Liveness::kSuspect);
  if (!reachable || m->app.rpc_address.empty()) {
    skip(m == nullptr ? "unknown peer" : std::string("peer is ") + membership::Name(m->liveness));
    return advance();
  }
  return ExchangeRange(pool_, reader_, peers_, options_.tree_bits, item.peer, m->app.rpc_address,
                       item.range, summary->dry_run, options_.timeout, &summary->bytes_on_wire,
                       /*copy=*/false, &pacer_)
      .then([this, summary, item, skip, advance](RangeExchange&& done) mutable {
        const Status& s = done.status;
        const repair::ExchangeStats& st = done.stats;
        summary->nodes_exchanged += st.nodes_compared;
        summary->leaves_differing += st.leaves_differing;
        summary->keys_differing += st.keys_differing;
        PeerTraffic& t = summary->Traffic(item.peer);
        t.keys_sent += st.records_pushed;
        t.keys_received += st.records_pulled;
        t.bytes_sent += st.bytes_pushed;
        t.bytes_received += st.bytes_pulled;
        progress_.keys_moved += st.records_pushed + st.records_pulled;
        progress_.bytes_moved += st.bytes_pushed + st.bytes_pulled;
        if (s.ok()) {
          ++summary->ranges_compared;
        } else {
          skip(s.ToString());
        }
        return advance();
      });
}

}  // namespace kv::rpc
