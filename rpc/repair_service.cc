#include "rpc/repair_service.h"

#include "rpc/wire_status.h"
#include "storage/codec.h"

namespace kv::rpc {
namespace {

std::string Str(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

kj::ArrayPtr<const capnp::byte> Bytes(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

}  // namespace

kj::Promise<void> RepairSessionServer::nodes(NodesContext context) {
  auto params = context.getParams();
  repair::Request req;
  req.kind = repair::Request::Kind::kNodes;
  req.level = params.getLevel();
  if (params.getNodes().size() > repair::kMaxNodesPerRequest) {
    ToWire(Status::InvalidArgument("too many nodes in one request"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  for (auto n : params.getNodes()) req.nodes.push_back(n);
  repair::Reply reply;
  Status s = responder_.Answer(req, &reply);
  auto results = context.getResults();
  if (s.ok()) {
    auto hashes = results.initHashes(reply.hashes.size());
    for (std::size_t i = 0; i < reply.hashes.size(); ++i) hashes.set(i, reply.hashes[i]);
    results.setDepth(static_cast<std::uint32_t>(reply.depth));
  }
  ToWire(s, results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> RepairSessionServer::entries(EntriesContext context) {
  auto params = context.getParams();
  repair::Request req;
  req.kind = repair::Request::Kind::kEntries;
  if (params.getRanges().size() > repair::kMaxLeavesPerRequest) {
    ToWire(Status::InvalidArgument("too many leaves in one request"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  for (auto r : params.getRanges()) req.ranges.push_back({r.getBegin(), r.getEnd()});
  repair::Reply reply;
  Status s = responder_.Answer(req, &reply);
  auto results = context.getResults();
  if (s.ok()) {
    auto leaves = results.initLeaves(reply.entries.size());
    for (std::size_t i = 0; i < reply.entries.size(); ++i) {
      auto list = leaves[i].initEntries(reply.entries[i].size());
      for (std::size_t j = 0; j < reply.entries[i].size(); ++j) {
        list[j].setKey(Bytes(reply.entries[i][j].key));
        list[j].setDigest(reply.entries[i][j].digest);
      }
    }
  }
  ToWire(s, results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> RepairSessionServer::records(RecordsContext context) {
  auto params = context.getParams();
  repair::Request req;
  req.kind = repair::Request::Kind::kRecords;
  if (params.getKeys().size() > repair::kMaxKeysPerRequest) {
    ToWire(Status::InvalidArgument("too many keys in one request"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  for (auto k : params.getKeys()) req.keys.push_back(Str(k));
  repair::Reply reply;
  Status s = responder_.Answer(req, &reply);
  auto results = context.getResults();
  if (s.ok()) {
    auto out = results.initRecords(reply.records.size());
    for (std::size_t i = 0; i < reply.records.size(); ++i) {
      if (!reply.records[i].empty()) out.set(i, Bytes(storage::EncodeRecord(reply.records[i])));
    }
  }
  ToWire(s, results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> RepairSessionServer::push(PushContext context) {
  auto params = context.getParams();
  repair::Request req;
  req.kind = repair::Request::Kind::kPush;
  if (params.getRecords().size() > repair::kMaxKeysPerRequest) {
    ToWire(Status::InvalidArgument("too many records in one request"), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  for (auto kr : params.getRecords()) {
    auto rec = storage::DecodeRecord(Str(kr.getRecord()));
    if (!rec.ok()) {
      ToWire(Status::InvalidArgument("repair push: " + rec.status().message()),
             context.getResults().initStatus());
      return kj::READY_NOW;
    }
    req.records.emplace_back(Str(kr.getKey()), std::move(rec.value()));
  }
  repair::Reply reply;
  ToWire(responder_.Answer(req, &reply), context.getResults().initStatus());
  return kj::READY_NOW;
}

namespace {

// One step: sends `req`, fills `reply`. Returns the peer's status.
kj::Promise<Status> Send(const repair::Request& req, wire::RepairSession::Client& session,
                         repair::Reply* reply, kj::Timer& timer, kj::Duration timeout,
                         std::uint64_t* bytes) {
  using K = repair::Request::Kind;
  auto count = [bytes](auto& request) {
    *bytes += request.totalSize().wordCount * sizeof(capnp::word);
  };
  auto counted = [bytes](auto& response) {
    *bytes += response.totalSize().wordCount * sizeof(capnp::word);
  };
  switch (req.kind) {
    case K::kNodes: {
      auto r = session.nodesRequest();
      r.setLevel(static_cast<std::uint32_t>(req.level));
      auto nodes = r.initNodes(req.nodes.size());
      for (std::size_t i = 0; i < req.nodes.size(); ++i) nodes.set(i, req.nodes[i]);
      count(r);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, counted](capnp::Response<wire::RepairSession::NodesResults>&& resp) {
            counted(resp);
            for (auto h : resp.getHashes()) reply->hashes.push_back(h);
            reply->depth = resp.getDepth();
            return FromWire(resp.getStatus());
          });
    }
    case K::kEntries: {
      auto r = session.entriesRequest();
      auto ranges = r.initRanges(req.ranges.size());
      for (std::size_t i = 0; i < req.ranges.size(); ++i) {
        ranges[i].setBegin(req.ranges[i].begin);
        ranges[i].setEnd(req.ranges[i].end);
      }
      count(r);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, counted](capnp::Response<wire::RepairSession::EntriesResults>&& resp) {
            counted(resp);
            for (auto leaf : resp.getLeaves()) {
              std::vector<repair::KeyDigest> list;
              for (auto e : leaf.getEntries()) list.push_back({Str(e.getKey()), e.getDigest()});
              reply->entries.push_back(std::move(list));
            }
            return FromWire(resp.getStatus());
          });
    }
    case K::kRecords: {
      auto r = session.recordsRequest();
      auto keys = r.initKeys(req.keys.size());
      for (std::size_t i = 0; i < req.keys.size(); ++i) keys.set(i, Bytes(req.keys[i]));
      count(r);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, counted](capnp::Response<wire::RepairSession::RecordsResults>&& resp) {
            counted(resp);
            Status st = FromWire(resp.getStatus());
            if (!st.ok()) return st;
            for (auto d : resp.getRecords()) {
              if (d.size() == 0) {
                reply->records.emplace_back();
                continue;
              }
              auto rec = storage::DecodeRecord(Str(d));
              if (!rec.ok()) return Status::Corruption("peer sent a bad record: " + rec.status().message());
              reply->records.push_back(std::move(rec.value()));
            }
            return Status::Ok();
          });
    }
    case K::kPush: {
      auto r = session.pushRequest();
      auto recs = r.initRecords(req.records.size());
      for (std::size_t i = 0; i < req.records.size(); ++i) {
        recs[i].setKey(Bytes(req.records[i].first));
        recs[i].setRecord(Bytes(storage::EncodeRecord(req.records[i].second)));
      }
      count(r);
      return timer.timeoutAfter(timeout, r.send())
          .then([counted](capnp::Response<wire::RepairSession::PushResults>&& resp) {
            counted(resp);
            return FromWire(resp.getStatus());
          });
    }
    case K::kDone:
      break;
  }
  return Status::Ok();
}

kj::Promise<Status> Step(repair::Initiator& initiator, wire::RepairSession::Client session,
                         kj::Own<repair::Reply> last, kj::Timer& timer, kj::Duration timeout,
                         std::uint64_t* bytes) {
  repair::Request req = initiator.Next(last.get());
  if (req.kind == repair::Request::Kind::kDone) return initiator.status();
  auto reply = kj::heap<repair::Reply>();
  auto sent = Send(req, session, reply.get(), timer, timeout, bytes);
  return sent.then(
      [&initiator, session, reply = kj::mv(reply), &timer, timeout,
       bytes](Status s) mutable -> kj::Promise<Status> {
        if (!s.ok()) return s;
        return Step(initiator, kj::mv(session), kj::mv(reply), timer, timeout, bytes);
      },
      [](kj::Exception&& e) -> kj::Promise<Status> {
        if (e.getType() == kj::Exception::Type::OVERLOADED) {
          return Status::Timeout("repair peer did not answer in time");
        }
        return Status::Unavailable(std::string("repair peer unreachable: ") +
                                   e.getDescription().cStr());
      });
}

}  // namespace

kj::Promise<Status> RunExchange(repair::Initiator& initiator, wire::RepairSession::Client session,
                                kj::Timer& timer, kj::Duration timeout,
                                std::uint64_t* bytes_on_wire) {
  return Step(initiator, kj::mv(session), kj::Own<repair::Reply>(), timer, timeout, bytes_on_wire);
}

}  // namespace kv::rpc
