#include "rpc/client_conn.h"

#include <kj/async-io.h>

#include "rpc/bytes.h"
#include "rpc/client.capnp.h"
#include "rpc/connect.h"
#include "rpc/session.h"
#include "rpc/tls.h"
#include "rpc/wire_status.h"

namespace kv::rpc {
namespace {

Status FromException(const kj::Exception& e) {
  std::string desc = e.getDescription().cStr();
  if (e.getType() == kj::Exception::Type::OVERLOADED &&
      desc.find("timed out") != std::string::npos) {
    return Status::Timeout("request timed out");
  }
  if (desc.find("SSL routines") != std::string::npos) {
    // Under TLS 1.3 a node checks the client's certificate after the client's side of the
    // handshake is done: its refusal (an alert) arrives with the first request.
    const bool alert = desc.find("alert") != std::string::npos;
    return Status::Unavailable(std::string("TLS handshake failed") +
                               (alert ? " (the node refused this client's certificate: is it "
                                        "signed by the cluster CA?)"
                                      : "") +
                               ": " + desc);
  }
  if (e.getType() == kj::Exception::Type::DISCONNECTED) {
    return Status::Unavailable("node unreachable: " + desc);
  }
  return Status::IoError("request failed: " + desc);
}

}  // namespace

bool IsUnreachable(const Status& s) {
  return s.code() == Status::Code::kUnavailable && s.message().rfind("node unreachable", 0) == 0;
}

Status ParseHostPort(const std::string& s, bool allow_zero, std::string* host, int* port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    return Status::InvalidArgument("address '" + s + "' is not HOST:PORT");
  }
  const std::string p = s.substr(colon + 1);
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("port in '" + s + "' is not a number");
  }
  const int n = std::stoi(p);
  if (n > 65535 || (n == 0 && !allow_zero)) {
    return Status::InvalidArgument("port in '" + s + "' is out of range");
  }
  *host = s.substr(0, colon);
  *port = n;
  return Status::Ok();
}

struct BlockingClient::Impl {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<RpcSession> session;
  wire::KvClient::Client client = nullptr;
  kj::Duration timeout = 10 * kj::SECONDS;

  template <typename T>
  kj::Promise<T> Bound(kj::Promise<T>&& p) {
    return io.provider->getTimer().timeoutAfter(timeout, kj::mv(p));
  }
};

BlockingClient::BlockingClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BlockingClient::~BlockingClient() = default;

Result<std::unique_ptr<BlockingClient>> BlockingClient::Connect(const std::string& host_port,
                                                                std::chrono::milliseconds timeout,
                                                                const std::string& source_host,
                                                                Tls* tls) {
  std::string host;
  int port = 0;
  if (Status s = ParseHostPort(host_port, false, &host, &port); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->timeout = timeout.count() * kj::MILLISECONDS;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto connect = Dial(*impl->io.provider, *impl->io.lowLevelProvider, host_port, source_host);
    if (tls != nullptr) {
      connect = connect.then([tls](kj::Own<kj::AsyncIoStream> s) { return tls->Secure(kj::mv(s)); });
    }
    auto stream = impl->Bound(kj::mv(connect)).wait(impl->io.waitScope);
    impl->session = kj::heap<RpcSession>(kj::mv(stream), capnp::ReaderOptions());
  });
  KJ_IF_MAYBE (e, failure) {
    Status s = FromException(*e);
    if (s.code() == Status::Code::kTimeout) {
      return Status::Unavailable("node unreachable: connecting to " + host_port + " timed out");
    }
    const std::string desc = e->getDescription().cStr();
    if (tls != nullptr && desc.find("OpenSSL") != std::string::npos) {
      return Status::Unavailable("TLS handshake with " + host_port + " failed (the node must hold "
                                 "a certificate of --tls-ca naming the identity '" +
                                 tls->settings().identity + "', and accept this client's): " +
                                 desc);
    }
    return Status::Unavailable("node unreachable: cannot connect to " + host_port + ": " + desc);
  }
  impl->client = impl->session->Bootstrap().castAs<wire::KvClient>();
  return std::unique_ptr<BlockingClient>(new BlockingClient(std::move(impl)));
}

GetReply BlockingClient::Get(std::string_view key, Consistency consistency, bool local) {
  GetReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto req = impl_->client.getRequest();
    req.setKey(Bytes(key));
    req.setConsistency(static_cast<wire::Consistency>(consistency));
    req.setLocal(local);
    auto resp = impl_->Bound(req.send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    for (auto s : resp.getSiblings()) reply.siblings.push_back(Str(s.getValue()));
    reply.context = Str(resp.getContext());
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

template <typename MakeRequest>
WriteReply BlockingClient::Write(MakeRequest&& make) {
  WriteReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto req = make(impl_->client);
    auto resp = impl_->Bound(req.send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    reply.context = Str(resp.getContext());
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

WriteReply BlockingClient::Put(std::string_view key, std::string_view value,
                               std::string_view context, Consistency consistency) {
  return Write([&](wire::KvClient::Client& client) {
    auto req = client.putRequest();
    req.setConsistency(static_cast<wire::Consistency>(consistency));
    req.setKey(Bytes(key));
    req.setValue(Bytes(value));
    req.setContext(Bytes(context));
    return req;
  });
}

WriteReply BlockingClient::Delete(std::string_view key, std::string_view context,
                                  Consistency consistency) {
  return Write([&](wire::KvClient::Client& client) {
    auto req = client.deleteRequest();
    req.setConsistency(static_cast<wire::Consistency>(consistency));
    req.setKey(Bytes(key));
    req.setContext(Bytes(context));
    return req;
  });
}

namespace {

std::vector<MemberInfo> Members(capnp::List<wire::Member>::Reader list) {
  std::vector<MemberInfo> out;
  for (auto m : list) {
    MemberInfo i;
    i.id = m.getId();
    i.rpc = m.getRpc();
    i.gossip = m.getGossip();
    i.status = m.getStatus();
    i.state = m.getState();
    i.rack = m.getRack();
    i.generation = m.getGeneration();
    i.incarnation = m.getIncarnation();
    i.load = m.getLoad();
    i.phi = m.getPhi();
    i.owns = m.getOwns();
    i.tokens = m.getTokens();
    i.hints = m.getHints();
    i.last_repair = m.getLastRepair();
    i.repair_keys_moved = m.getRepairKeysMoved();
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace

StatusReply BlockingClient::ClusterStatus() {
  StatusReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto resp = impl_->Bound(impl_->client.statusRequest().send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    reply.members = Members(resp.getMembers());
    if (resp.hasMovement()) {
      auto m = resp.getMovement();
      MovementView& v = reply.movement;
      v.active = m.getActive();
      v.kind = m.getKind();
      v.description = m.getDescription();
      v.driver = m.getDriver();
      v.subject = m.getSubject();
      v.reads_new = m.getReadsNew();
      v.progress = m.getProgress();
      v.phase = m.getPhase();
      v.note = m.getNote();
      v.copies_done = m.getCopiesDone();
      v.copies_total = m.getCopiesTotal();
      v.bytes_copied = m.getBytesCopied();
      v.outcome = m.getOutcome();
    }
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

Status BlockingClient::Decommission() {
  Status status;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto resp =
        impl_->Bound(impl_->client.decommissionRequest().send()).wait(impl_->io.waitScope);
    status = FromWire(resp.getStatus());
  });
  KJ_IF_MAYBE (e, failure) {
    status = FromException(*e);
  }
  return status;
}

CleanupReply BlockingClient::Cleanup() {
  CleanupReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto resp = impl_->Bound(impl_->client.cleanupRequest().send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    reply.keys_deleted = resp.getKeysDeleted();
    reply.bytes_freed = resp.getBytesFreed();
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

KeyringReply BlockingClient::Keyring(KeyringOp op, const std::string& key) {
  KeyringReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto req = impl_->client.keyringRequest();
    req.setOp(ToWire(op));
    req.setKey(Bytes(key));
    auto resp = impl_->Bound(req.send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    for (auto n : resp.getNodes()) {
      KeyringNodeInfo info;
      info.id = n.getId();
      info.address = n.getAddress();
      info.status = FromWire(n.getStatus());
      for (auto k : n.getKeys()) info.keys.emplace_back(k.cStr());
      reply.nodes.push_back(std::move(info));
    }
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

RingReply BlockingClient::Ring(std::uint32_t replicas) {
  RingReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto req = impl_->client.ringRequest();
    req.setReplicas(replicas);
    auto resp = impl_->Bound(req.send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    for (auto r : resp.getRanges()) {
      RingRangeInfo info;
      info.begin = r.getBegin();
      info.end = r.getEnd();
      for (auto id : r.getReplicas()) info.replicas.push_back(id);
      reply.ranges.push_back(std::move(info));
    }
    reply.members = Members(resp.getMembers());
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

Status BlockingClient::RemoveNode(std::uint64_t id) {
  Status status;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto req = impl_->client.removeNodeRequest();
    req.setId(id);
    auto resp = impl_->Bound(req.send()).wait(impl_->io.waitScope);
    status = FromWire(resp.getStatus());
  });
  KJ_IF_MAYBE (e, failure) {
    status = FromException(*e);
  }
  return status;
}

StatsReply BlockingClient::Stats() {
  StatsReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto resp = impl_->Bound(impl_->client.statsRequest().send()).wait(impl_->io.waitScope);
    reply.status = FromWire(resp.getStatus());
    reply.gossip = resp.getGossip();
    auto c = resp.getCounters();
    reply.counters = {{"datagrams_in", c.getDatagramsIn()},
                      {"datagrams_out", c.getDatagramsOut()},
                      {"streams_in", c.getStreamsIn()},
                      {"streams_out", c.getStreamsOut()},
                      {"bytes_in", c.getBytesIn()},
                      {"bytes_out", c.getBytesOut()},
                      {"dropped_malformed", c.getDroppedMalformed()},
                      {"dropped_oversize", c.getDroppedOversize()},
                      {"dropped_version", c.getDroppedVersion()},
                      {"dropped_cluster", c.getDroppedCluster()},
                      {"dropped_removed", c.getDroppedRemoved()}};
    for (auto n : resp.getNode()) {
      reply.node.emplace_back(std::string(n.getName().cStr()), n.getValue());
    }
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

RepairReply BlockingClient::Repair(
    bool dry_run, std::chrono::milliseconds every,
    const std::function<void(const RepairProgressInfo&)>& on_progress) {
  RepairReply reply;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    auto req = impl_->client.repairRequest();
    req.setDryRun(dry_run);
    auto started = impl_->Bound(req.send()).wait(impl_->io.waitScope);
    reply.status = FromWire(started.getStatus());
    if (!reply.status.ok()) return;
    auto job = started.getJob();
    auto done = job.waitRequest()
                    .send()
                    .then([&reply](capnp::Response<wire::RepairJob::WaitResults>&& resp) {
                      auto s = resp.getSummary();
                      reply.outcome = FromWire(s.getStatus());
                      reply.dry_run = s.getDryRun();
                      reply.ranges_total = s.getRangesTotal();
                      reply.ranges_compared = s.getRangesCompared();
                      for (auto t : s.getSkipped()) reply.skipped.push_back(t);
                      reply.nodes_exchanged = s.getNodesExchanged();
                      reply.leaves_differing = s.getLeavesDiffering();
                      reply.keys_differing = s.getKeysDiffering();
                      reply.bytes_on_wire = s.getBytesOnWire();
                      reply.elapsed_s = s.getElapsed();
                      reply.tombstones_purged = s.getTombstonesPurged();
                      for (auto p : s.getPeers()) {
                        reply.peers.push_back({p.getId(), p.getKeysSent(), p.getKeysReceived(),
                                               p.getBytesSent(), p.getBytesReceived()});
                      }
                    })
                    .fork();
    auto& timer = impl_->io.provider->getTimer();
    while (true) {
      auto tick = timer.afterDelay(every.count() * kj::MILLISECONDS).then([]() { return false; });
      const bool finished = done.addBranch()
                                .then([]() { return true; })
                                .exclusiveJoin(kj::mv(tick))
                                .wait(impl_->io.waitScope);
      if (finished) break;
      auto p = impl_->Bound(job.progressRequest().send()).wait(impl_->io.waitScope);
      on_progress(RepairProgressInfo{p.getRangesTotal(), p.getRangesDone(), p.getKeysMoved(),
                                     p.getBytesMoved(), p.getElapsed()});
    }
  });
  KJ_IF_MAYBE (e, failure) {
    reply.status = FromException(*e);
  }
  return reply;
}

}  // namespace kv::rpc
