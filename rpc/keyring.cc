#include "rpc/keyring.h"

#include <cstdio>
#include <memory>

#include "membership/topology.h"
#include "rpc/bytes.h"
#include "rpc/wire_status.h"

namespace kv::rpc {
namespace {

// How long the node a client asked waits for each member's answer: a key file write and sync.
constexpr auto kMemberTimeout = 5 * kj::SECONDS;

std::string Hex(membership::NodeId id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

}  // namespace

kj::Promise<Result<std::vector<std::string>>> KeyringHere(const NodeServices& node, KeyringOp op,
                                                          std::string key) {
  using R = Result<std::vector<std::string>>;
  if (op == KeyringOp::kList ? !key.empty() : key.size() != 32) {
    return R(Status::InvalidArgument(op == KeyringOp::kList
                                         ? "keyring list takes no key"
                                         : "a gossip key is 32 bytes (kvtool takes it as "
                                           "base64, as kvtool keygen prints it)"));
  }
  if (!node.keyring) {
    return R(Status::Unavailable("gossip encryption is off on this node (no --gossip-key-file)"));
  }
  return RunOn<R>(node.background,
                  [fn = node.keyring, op, key = std::move(key)]() { return fn(op, key); });
}

kj::Promise<std::vector<KeyringAnswer>> KeyringEverywhere(const NodeServices& node, KeyringOp op,
                                                          std::string key) {
  auto view = node.cluster->View();
  auto answers = std::make_shared<std::vector<KeyringAnswer>>();
  // This node first: a request it refuses (a malformed key) is refused everywhere alike, so the
  // members are asked only once it is known to be well formed.
  KeyringAnswer self;
  self.id = view->self;
  if (const membership::MemberView* m = view->Find(view->self)) self.address = m->app.rpc_address;
  answers->push_back(self);
  for (const membership::MemberView& m : view->members) {
    if (m.id == view->self || membership::Gone(m)) continue;
    KeyringAnswer a;
    a.id = m.id;
    a.address = m.app.rpc_address;
    const bool live =
        m.liveness == membership::Liveness::kUp || m.liveness == membership::Liveness::kSuspect;
    if (!live || m.app.rpc_address.empty() || node.peers == nullptr) {
      a.status = Status::Unavailable(std::string("not reached: the member is ") +
                                     membership::Name(m.liveness));
    }
    answers->push_back(std::move(a));
  }
  return KeyringHere(node, op, key).then([node, op, key, answers](
                                             Result<std::vector<std::string>>&& here) mutable
                                             -> kj::Promise<std::vector<KeyringAnswer>> {
    (*answers)[0].status = here.status();
    if (here.ok()) (*answers)[0].keys = std::move(here.value());
    if (!here.ok() && here.status().code() == Status::Code::kInvalidArgument) {
      for (std::size_t i = 1; i < answers->size(); ++i) {
        if ((*answers)[i].status.ok()) {
          (*answers)[i].status = Status::Unavailable("not asked: the request was refused");
        }
      }
      return kj::mv(*answers);
    }
    kj::Vector<kj::Promise<void>> asks;
    for (std::size_t i = 1; i < answers->size(); ++i) {
      KeyringAnswer& a = (*answers)[i];
      if (!a.status.ok()) continue;
      auto req = node.peers->Get(a.id, a.address).keyringRequest();
      req.setOp(ToWire(op));
      req.setKey(Bytes(key));
      asks.add(node.peers->Timed(a.id, kMemberTimeout, req.send())
                   .then(
                       [answers, i](capnp::Response<wire::KvReplica::KeyringResults>&& r) {
                         KeyringAnswer& a = (*answers)[i];
                         a.status = FromWire(r.getStatus());
                         for (auto k : r.getKeys()) a.keys.emplace_back(k.cStr());
                       },
                       [answers, i](kj::Exception&& e) {
                         (*answers)[i].status = Status::Unavailable(
                             "no answer from " + Hex((*answers)[i].id) + ": " +
                             std::string(e.getDescription().cStr()));
                       }));
    }
    return kj::joinPromises(asks.releaseAsArray()).then([answers]() { return kj::mv(*answers); });
  });
}

}  // namespace kv::rpc
