#include "rpc/peers.h"

#include "rpc/connect.h"

namespace kv::rpc {

struct PeerPool::Peer {
  std::uint64_t serial = 0;
  std::string address;
  kj::Own<RpcSession> session;      // once connected
  wire::KvReplica::Client replica;  // a promise until connected; broken after a failure
  bool failed = false;
  bool suspected = false;  // the peer's liveness when the connection was opened
  kj::TimePoint failed_at = kj::origin<kj::TimePoint>();

  explicit Peer(wire::KvReplica::Client r) : replica(kj::mv(r)) {}
};

PeerPool::PeerPool(kj::AsyncIoContext& io, std::string source_host, std::size_t max_message_bytes,
                   Options options)
    : io_(io),
      source_host_(std::move(source_host)),
      timer_(io.provider->getTimer()),
      options_(options),
      tasks_(*this) {
  reader_options_.traversalLimitInWords = max_message_bytes / sizeof(capnp::word) + 1;
}

PeerPool::~PeerPool() = default;

void PeerPool::Clear() {
  peers_.clear();
  retired_.clear();
}

std::uint64_t PeerPool::SerialOf(std::uint64_t id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? 0 : it->second->serial;
}

void PeerPool::Retire(std::uint64_t id, std::uint64_t serial) {
  auto it = peers_.find(id);
  if (it == peers_.end() || it->second->serial != serial) return;  // replaced already
  ++replaced_;
  if (retired_.size() >= kMaxRetired) retired_.pop_front();
  retired_.push_back(Retired{kj::mv(it->second), timer_.now() + options_.retire_grace});
  peers_.erase(it);
}

void PeerPool::Drop(std::uint64_t id, std::uint64_t serial) {
  auto it = peers_.find(id);
  if (it != peers_.end() && it->second->serial == serial) peers_.erase(it);
}

wire::KvReplica::Client PeerPool::Get(std::uint64_t id, const std::string& address,
                                      bool suspected) {
  const kj::TimePoint now = timer_.now();
  while (!retired_.empty() && retired_.front().until <= now) retired_.pop_front();
  auto it = peers_.find(id);
  if (it != peers_.end()) {
    Peer& p = *it->second;
    const bool stale_failure = p.failed && now - p.failed_at >= options_.retry_after;
    if (p.address == address && !stale_failure && p.suspected == suspected) return p.replica;
    if (p.address == address && !p.failed && p.suspected != suspected) {
      Retire(id, p.serial);
    } else {
      peers_.erase(it);
    }
  }
  const std::uint64_t serial = next_serial_++;
  kj::Promise<kj::Own<kj::AsyncIoStream>> dialed =
      Dial(*io_.provider, *io_.lowLevelProvider, address, source_host_);
  if (options_.tls != nullptr && options_.tls->dials_tls()) {
    dialed = dialed.then([tls = options_.tls](kj::Own<kj::AsyncIoStream> s) {
      return tls->Secure(kj::mv(s));
    });
  }
  auto connected = timer_.timeoutAfter(options_.connect_timeout, kj::mv(dialed));
  auto fork = connected
                  .then([this, id, serial](kj::Own<kj::AsyncIoStream> stream)
                            -> wire::KvReplica::Client {
                    auto it = peers_.find(id);
                    if (it == peers_.end() || it->second->serial != serial) {
                      return KJ_EXCEPTION(DISCONNECTED, "connection superseded");
                    }
                    Peer& p = *it->second;
                    p.session = kj::heap<RpcSession>(kj::mv(stream), reader_options_);
                    auto client = p.session->Bootstrap().castAs<wire::KvClient>();
                    auto replica = client.replicaRequest().send().getReplica();
                    // Dropped a turn later: not from inside the session's own callback.
                    tasks_.add(p.session->OnDisconnect()
                                   .then([]() {}, [](kj::Exception&&) {})
                                   .then([this, id, serial]() {
                                     return kj::evalLater([this, id, serial]() { Drop(id, serial); });
                                   }));
                    return replica;
                  },
                  [this, id, serial](kj::Exception&& e) -> wire::KvReplica::Client {
                    auto it = peers_.find(id);
                    if (it != peers_.end() && it->second->serial == serial) {
                      it->second->failed = true;
                      it->second->failed_at = timer_.now();
                    }
                    return kj::mv(e);
                  });
  auto peer = kj::heap<Peer>(wire::KvReplica::Client(kj::mv(fork)));
  peer->serial = serial;
  peer->address = address;
  peer->suspected = suspected;
  wire::KvReplica::Client out = peer->replica;
  peers_[id] = kj::mv(peer);
  return out;
}

}  // namespace kv::rpc
