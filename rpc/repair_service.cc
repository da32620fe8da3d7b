#include "rpc/repair_service.h"

#include <optional>

#include "rpc/bytes.h"
#include "rpc/repair_batch.h"
#include "rpc/wire_status.h"
#include "storage/codec.h"

namespace kv::rpc {
namespace {

template <typename Results>
kj::Promise<void> Refuse(Results results, const Status& s) {
  ToWire(s, results.initStatus());
  return kj::READY_NOW;
}

// What a responder's step produces on a storage thread: its reply, and the reply's records
// already encoded there, so that the RPC thread only copies bytes into the message.
struct Served {
  repair::Reply reply;
  std::string records;  // EncodeRecords(reply.records)
  std::string answers;  // EncodeAnswers(reply.offers), for an offer
};

// Answers `req` on a storage thread (the responder reads the store); on success `fill(results,
// served)` writes the reply, back on the RPC thread. The status goes out either way.
// `records_in` (a push's records as sent) is decoded on the storage thread too, into
// req.records. Encoding and decoding a page of records costs milliseconds of CPU, which the
// RPC thread must not spend: every client request on this node would wait behind it.
template <typename Context, typename Fill>
kj::Promise<void> Serve(StoragePool* pool, const std::shared_ptr<SharedResponder>& responder,
                        Context& context, repair::Request req, Fill&& fill,
                        std::optional<std::string> records_in = std::nullopt) {
  auto served = std::make_shared<Served>();
  return RunOn<Status>(pool,
                       [responder, req = std::move(req), records_in = std::move(records_in),
                        served]() mutable {
                         if (records_in) {
                           auto records = DecodeRecords(*records_in, repair::kMaxKeysPerRequest);
                           if (!records.ok()) {
                             return Status::InvalidArgument("repair push: " +
                                                            records.status().message());
                           }
                           req.records = std::move(records.value());
                         }
                         Status s;
                         {
                           std::lock_guard<std::mutex> lock(responder->mu);
                           s = responder->responder.Answer(req, &served->reply);
                         }
                         if (s.ok()) {
                           served->records = EncodeRecords(served->reply.records);
                           served->answers = EncodeAnswers(served->reply.offers);
                         }
                         return s;
                       })
      .then([context, served, fill = std::forward<Fill>(fill)](Status s) mutable {
        auto results = context.getResults();
        if (s.ok()) fill(results, *served);
        ToWire(s, results.initStatus());
      });
}

// The (level, nodes) of a request about nodes of the range's tree.
template <typename Params>
void ReadNodes(Params params, repair::Request* req) {
  req->level = params.getLevel();
  for (auto n : params.getNodes()) req->nodes.push_back(n);
}

// The (level, nodes batch) of a table request or a fetch by table id.
template <typename Params>
Status ReadNodeSet(Params params, repair::Request* req) {
  req->level = params.getLevel();
  auto nodes = DecodeNodes(View(params.getNodes()), repair::kMaxSketchNodes);
  if (!nodes.ok()) return nodes.status();
  req->nodes = std::move(nodes.value());
  return Status::Ok();
}

template <typename List>
void SetHashes(List list, const std::vector<std::uint64_t>& hashes) {
  for (std::size_t i = 0; i < hashes.size(); ++i) list.set(i, hashes[i]);
}

}  // namespace

kj::Promise<void> RepairSessionServer::root(RootContext context) {
  repair::Request req;
  req.kind = repair::Request::Kind::kRoot;
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    results.setRoot(served.reply.hashes.at(0));
    results.setDepth(static_cast<std::uint32_t>(served.reply.depth));
  });
}

kj::Promise<void> RepairSessionServer::children(ChildrenContext context) {
  auto params = context.getParams();
  if (params.getNodes().size() > repair::kMaxNodesPerRequest) {
    return Refuse(context.getResults(), Status::InvalidArgument("too many nodes in one request"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kChildren;
  ReadNodes(params, &req);
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    SetHashes(results.initHashes(served.reply.hashes.size()), served.reply.hashes);
  });
}

kj::Promise<void> RepairSessionServer::entries(EntriesContext context) {
  auto params = context.getParams();
  if (params.getRanges().size() > repair::kMaxLeavesPerRequest) {
    return Refuse(context.getResults(), Status::InvalidArgument("too many leaves in one request"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kEntries;
  for (auto r : params.getRanges()) req.ranges.push_back({r.getBegin(), r.getEnd()});
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    auto leaves = results.initLeaves(served.reply.entries.size());
    for (std::size_t i = 0; i < served.reply.entries.size(); ++i) {
      auto list = leaves[i].initHashes(served.reply.entries[i].size());
      for (std::size_t j = 0; j < served.reply.entries[i].size(); ++j) list.set(j, served.reply.entries[i][j]);
    }
  });
}

kj::Promise<void> RepairSessionServer::split(SplitContext context) {
  auto params = context.getParams();
  if (params.getRanges().size() > repair::kMaxLeavesPerRequest) {
    return Refuse(context.getResults(), Status::InvalidArgument("too many ranges in one request"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kSplit;
  for (auto r : params.getRanges()) req.ranges.push_back({r.getBegin(), r.getEnd()});
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    SetHashes(results.initHashes(served.reply.hashes.size()), served.reply.hashes);
  });
}

kj::Promise<void> RepairSessionServer::offer(OfferContext context) {
  auto params = context.getParams();
  repair::Request req;
  req.kind = repair::Request::Kind::kOffer;
  req.dry_run = params.getDryRun();
  if (Status s = DecodeOffers(View(params.getBatch()), repair::kMaxKeysPerRequest, &req.keys,
                              &req.contexts);
      !s.ok()) {
    return Refuse(context.getResults(), s);
  }
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    results.setAnswers(Bytes(served.answers));
  });
}

kj::Promise<void> RepairSessionServer::fetch(FetchContext context) {
  auto params = context.getParams();
  if (params.getLeaves().size() > repair::kMaxLeavesPerRequest) {
    return Refuse(context.getResults(), Status::InvalidArgument("too many leaves in one request"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kFetch;
  for (auto l : params.getLeaves()) {
    req.ranges.push_back({l.getRange().getBegin(), l.getRange().getEnd()});
    std::vector<std::uint64_t> want;
    for (auto h : l.getHashes()) want.push_back(h);
    req.wanted.push_back(std::move(want));
  }
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    results.setRecords(Bytes(served.records));
  });
}

kj::Promise<void> RepairSessionServer::copy(CopyContext context) {
  auto params = context.getParams();
  if (params.getExcept().size() > repair::kMaxCopyOwnKeys) {
    return Refuse(context.getResults(),
                  Status::InvalidArgument("too many entry hashes in one copy request"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kCopy;
  req.from = params.getFrom();
  for (auto h : params.getExcept()) req.except.push_back(h);
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    results.setRecords(Bytes(served.records));
    results.setMore(served.reply.more);
    results.setResume(served.reply.resume);
  });
}

kj::Promise<void> RepairSessionServer::sketch(SketchContext context) {
  auto params = context.getParams();
  repair::Request req;
  req.kind = repair::Request::Kind::kSketch;
  if (Status s = ReadNodeSet(params, &req); !s.ok()) return Refuse(context.getResults(), s);
  req.salt = params.getSalt();
  req.cells = params.getCells();
  req.cell_salt = params.getCellSalt();
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    results.setTable(Bytes(served.reply.sketch));
  });
}

kj::Promise<void> RepairSessionServer::fetchItems(FetchItemsContext context) {
  auto params = context.getParams();
  if (params.getItems().size() > repair::kMaxItemsPerFetch) {
    return Refuse(context.getResults(), Status::InvalidArgument("fetch out of bounds"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kFetchItems;
  if (Status s = ReadNodeSet(params, &req); !s.ok()) return Refuse(context.getResults(), s);
  req.salt = params.getSalt();
  for (auto i : params.getItems()) req.items.push_back(i);
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    results.setRecords(Bytes(served.records));
    results.setTruncated(served.reply.truncated);
  });
}

kj::Promise<void> RepairSessionServer::push(PushContext context) {
  repair::Request req;
  req.kind = repair::Request::Kind::kPush;
  return Serve(pool_, responder_, context, std::move(req), [](auto& results, const Served& served) {
    auto flags = results.initHoldsMore(static_cast<unsigned>(served.reply.holds_more.size()));
    for (unsigned i = 0; i < flags.size(); ++i) flags.set(i, served.reply.holds_more[i]);
  }, Str(context.getParams().getRecords()));
}

kj::Promise<void> RepairSessionServer::purge(PurgeContext context) {
  auto params = context.getParams();
  if (params.getKeys().size() > repair::kMaxKeysPerRequest ||
      params.getDigests().size() != params.getKeys().size()) {
    return Refuse(context.getResults(), Status::InvalidArgument("bad purge"));
  }
  repair::Request req;
  req.kind = repair::Request::Kind::kPurge;
  for (auto k : params.getKeys()) req.keys.push_back(Str(k));
  for (auto d : params.getDigests()) req.digests.push_back(d);
  return Serve(pool_, responder_, context, std::move(req),
               [](auto& results, const Served& served) { results.setPurged(served.reply.purged); });
}

kj::Promise<Result<std::uint64_t>> PurgeRemote(wire::RepairSession::Client session,
                                               const std::vector<repair::KeyDigest>& keys,
                                               kj::Timer& timer, kj::Duration timeout) {
  auto r = session.purgeRequest();
  auto k = r.initKeys(keys.size());
  auto d = r.initDigests(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    k.set(i, Bytes(keys[i].key));
    d.set(i, keys[i].digest);
  }
  return timer.timeoutAfter(timeout, r.send())
      .then(
          [](capnp::Response<wire::RepairSession::PurgeResults>&& resp) -> Result<std::uint64_t> {
            Status s = FromWire(resp.getStatus());
            if (!s.ok()) return s;
            return resp.getPurged();
          },
          [](kj::Exception&& e) -> Result<std::uint64_t> {
            return Status::Unavailable(std::string("purge failed: ") + e.getDescription().cStr());
          });
}

namespace {

// A fetch reply may hold more records than keys were asked for (32-bit table items can be shared).
constexpr std::size_t kMaxFetchedRecords = 2 * repair::kMaxItemsPerFetch;

template <typename Message>
void Count(Message& m, std::uint64_t* bytes) {
  *bytes += m.totalSize().wordCount * sizeof(capnp::word);
}

std::vector<std::uint64_t> Ascending(std::vector<std::uint64_t> nodes) {
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  return nodes;
}

// A peer's answer to one step as it arrived. Records stay encoded until the next step's storage
// job decodes them (Decode), so the RPC thread only copies their bytes out of the message.
struct Received {
  repair::Reply reply;
  std::optional<std::string> records;  // encoded, for reply.records
  std::size_t max_records = 0;         // the bound they are decoded with
  std::optional<std::string> answers;  // encoded, for reply.offers
  std::size_t max_answers = 0;         // the keys offered

  Status Decode() {
    if (records) {
      auto decoded = DecodeRecords(*records, max_records);
      records.reset();
      if (!decoded.ok()) return decoded.status();
      reply.records = std::move(decoded.value());
    }
    if (answers) {
      auto decoded = DecodeAnswers(*answers, max_answers);
      answers.reset();
      if (!decoded.ok()) return decoded.status();
      reply.offers = std::move(decoded.value());
    }
    return Status::Ok();
  }
};

// The initiator's next request, with a push's records already encoded (on a storage thread).
struct Outgoing {
  repair::Request req;
  std::string records;  // EncodeRecords(req.records), for a push
};

// One step: sends `out`, fills `got`. Returns the peer's status.
kj::Promise<Status> Send(const Outgoing& out, wire::RepairSession::Client& session,
                         Received* got, kj::Timer& timer, kj::Duration timeout,
                         std::uint64_t* bytes) {
  const repair::Request& req = out.req;
  repair::Reply* reply = &got->reply;
  using K = repair::Request::Kind;
  switch (req.kind) {
    case K::kRoot: {
      auto r = session.rootRequest();
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, bytes](capnp::Response<wire::RepairSession::RootResults>&& resp) {
            Count(resp, bytes);
            reply->hashes.push_back(resp.getRoot());
            reply->depth = resp.getDepth();
            return FromWire(resp.getStatus());
          });
    }
    case K::kChildren: {
      auto r = session.childrenRequest();
      r.setLevel(static_cast<std::uint32_t>(req.level));
      SetHashes(r.initNodes(req.nodes.size()), req.nodes);
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, bytes](capnp::Response<wire::RepairSession::ChildrenResults>&& resp) {
            Count(resp, bytes);
            for (auto h : resp.getHashes()) reply->hashes.push_back(h);
            return FromWire(resp.getStatus());
          });
    }
    case K::kSplit: {
      auto r = session.splitRequest();
      auto ranges = r.initRanges(req.ranges.size());
      for (std::size_t i = 0; i < req.ranges.size(); ++i) {
        ranges[i].setBegin(req.ranges[i].begin);
        ranges[i].setEnd(req.ranges[i].end);
      }
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, bytes](capnp::Response<wire::RepairSession::SplitResults>&& resp) {
            Count(resp, bytes);
            for (auto h : resp.getHashes()) reply->hashes.push_back(h);
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
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, bytes](capnp::Response<wire::RepairSession::EntriesResults>&& resp) {
            Count(resp, bytes);
            for (auto leaf : resp.getLeaves()) {
              std::vector<std::uint64_t> hashes;
              for (auto h : leaf.getHashes()) hashes.push_back(h);
              reply->entries.push_back(std::move(hashes));
            }
            return FromWire(resp.getStatus());
          });
    }
    case K::kOffer: {
      auto r = session.offerRequest();
      r.setBatch(Bytes(EncodeOffers(req.keys, req.contexts)));
      r.setDryRun(req.dry_run);
      Count(r, bytes);
      const std::size_t offered = req.keys.size();
      return timer.timeoutAfter(timeout, r.send())
          .then([got, bytes,
                 offered](capnp::Response<wire::RepairSession::OfferResults>&& resp) -> Status {
            Count(resp, bytes);
            Status st = FromWire(resp.getStatus());
            if (!st.ok()) return st;
            got->answers = Str(resp.getAnswers());
            got->max_answers = offered;
            return Status::Ok();
          });
    }
    case K::kFetch: {
      auto r = session.fetchRequest();
      auto leaves = r.initLeaves(req.ranges.size());
      for (std::size_t i = 0; i < req.ranges.size(); ++i) {
        leaves[i].initRange().setBegin(req.ranges[i].begin);
        leaves[i].getRange().setEnd(req.ranges[i].end);
        auto hashes = leaves[i].initHashes(req.wanted[i].size());
        for (std::size_t j = 0; j < req.wanted[i].size(); ++j) hashes.set(j, req.wanted[i][j]);
      }
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then(
              [got, bytes](capnp::Response<wire::RepairSession::FetchResults>&& resp) -> Status {
                Count(resp, bytes);
                Status st = FromWire(resp.getStatus());
                if (!st.ok()) return st;
                got->records = Str(resp.getRecords());
                got->max_records = kMaxFetchedRecords;
                return Status::Ok();
              });
    }
    case K::kSketch: {
      auto r = session.sketchRequest();
      r.setLevel(static_cast<std::uint32_t>(req.level));
      r.setNodes(Bytes(EncodeNodes(Ascending(req.nodes))));
      r.setSalt(req.salt);
      r.setCells(static_cast<std::uint32_t>(req.cells));
      r.setCellSalt(req.cell_salt);
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([reply, bytes](capnp::Response<wire::RepairSession::SketchResults>&& resp) {
            Count(resp, bytes);
            reply->sketch = std::string(Str(resp.getTable()));
            return FromWire(resp.getStatus());
          });
    }
    case K::kFetchItems: {
      auto r = session.fetchItemsRequest();
      r.setLevel(static_cast<std::uint32_t>(req.level));
      r.setNodes(Bytes(EncodeNodes(Ascending(req.nodes))));
      r.setSalt(req.salt);
      auto items = r.initItems(req.items.size());
      for (std::size_t i = 0; i < req.items.size(); ++i) items.set(i, req.items[i]);
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([got, reply,
                 bytes](capnp::Response<wire::RepairSession::FetchItemsResults>&& resp) -> Status {
            Count(resp, bytes);
            Status st = FromWire(resp.getStatus());
            if (!st.ok()) return st;
            got->records = Str(resp.getRecords());
            got->max_records = kMaxFetchedRecords;
            reply->truncated = resp.getTruncated();
            return Status::Ok();
          });
    }
    case K::kPush: {
      auto r = session.pushRequest();
      r.setRecords(Bytes(out.records));
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([bytes, reply](capnp::Response<wire::RepairSession::PushResults>&& resp) {
            Count(resp, bytes);
            for (bool f : resp.getHoldsMore()) reply->holds_more.push_back(f);
            return FromWire(resp.getStatus());
          });
    }
    case K::kCopy: {
      auto r = session.copyRequest();
      r.setFrom(req.from);
      SetHashes(r.initExcept(req.except.size()), req.except);
      Count(r, bytes);
      return timer.timeoutAfter(timeout, r.send())
          .then([got, reply,
                 bytes](capnp::Response<wire::RepairSession::CopyResults>&& resp) -> Status {
            Count(resp, bytes);
            Status st = FromWire(resp.getStatus());
            if (!st.ok()) return st;
            // A page stops at a token boundary: a few records past the bound (keys of one token).
            got->records = Str(resp.getRecords());
            got->max_records = repair::kMaxCopyRecords + 64;
            reply->more = resp.getMore();
            reply->resume = resp.getResume();
            return Status::Ok();
          });
    }
    case K::kPurge:  // not part of an exchange: PurgeRemote
    case K::kDone:
      break;
  }
  return Status::Ok();
}

kj::Promise<Status> Step(StoragePool* pool, std::shared_ptr<repair::Initiator> initiator,
                         wire::RepairSession::Client session, std::shared_ptr<Received> last,
                         kj::Timer& timer, kj::Duration timeout, std::uint64_t* bytes,
                         Pacer* pacer) {
  // The initiator reads the store to decide its next request, after the last answer's records
  // are decoded: on a storage thread.
  auto next = RunOn<Result<Outgoing>>(pool, [initiator, last]() -> Result<Outgoing> {
    Outgoing out;
    if (last == nullptr) {
      out.req = initiator->Next(nullptr);
    } else {
      if (Status s = last->Decode(); !s.ok()) return s;
      out.req = initiator->Next(&last->reply);
    }
    if (out.req.kind == repair::Request::Kind::kPush) out.records = EncodeRecords(out.req.records);
    return out;
  });
  return next.then(
      [pool, initiator, session, &timer, timeout, bytes,
       pacer](Result<Outgoing>&& req) mutable -> kj::Promise<Status> {
        if (!req.ok()) return req.status();
        if (req->req.kind == repair::Request::Kind::kDone) return initiator->status();
        auto reply = std::make_shared<Received>();
        // Next() may have kept a thread busy for long (inline, without a pool: this one). The
        // timer's clock moves only when the event loop polls, so a timeout set now could be
        // measured from a stale time and expire at once: let the loop turn first.
        const std::uint64_t before = *bytes;
        return timer.afterDelay(0 * kj::NANOSECONDS)
            .then([req = std::move(req.value()), session, r = reply.get(), &timer, timeout,
                   bytes]() mutable { return Send(req, session, r, timer, timeout, bytes); })
            .then(
                [pool, initiator, session, reply, &timer, timeout, bytes, pacer,
                 before](Status s) mutable -> kj::Promise<Status> {
                  if (!s.ok()) return s;
                  // Paced step by step: the next request waits until this one's bytes fit the
                  // rate (rpc/pacer.h).
                  kj::Promise<void> paced =
                      pacer != nullptr ? pacer->Account(*bytes - before) : kj::READY_NOW;
                  return paced.then([pool, initiator = kj::mv(initiator),
                                     session = kj::mv(session), reply = kj::mv(reply), &timer,
                                     timeout, bytes, pacer]() mutable {
                    return Step(pool, kj::mv(initiator), kj::mv(session), kj::mv(reply), timer,
                                timeout, bytes, pacer);
                  });
                },
                [](kj::Exception&& e) -> kj::Promise<Status> {
                  if (e.getType() == kj::Exception::Type::OVERLOADED) {
                    return Status::Timeout("repair peer did not answer in time");
                  }
                  return Status::Unavailable(std::string("repair peer unreachable: ") +
                                             e.getDescription().cStr());
                });
      });
}

}  // namespace

kj::Promise<Status> RunExchange(StoragePool* pool, std::shared_ptr<repair::Initiator> initiator,
                                wire::RepairSession::Client session, kj::Timer& timer,
                                kj::Duration timeout, std::uint64_t* bytes_on_wire, Pacer* pacer) {
  return Step(pool, kj::mv(initiator), kj::mv(session), nullptr, timer, timeout, bytes_on_wire,
              pacer);
}

}  // namespace kv::rpc
