#include "rpc/client_server.h"

#include <algorithm>
#include <string>

#include "rpc/session.h"

namespace kv::rpc {
namespace {

// What one connection may call: forwards to the shared ClientService the calls its role allows
// (tls.h) and refuses the others.
class RoleGate final : public capnp::Capability::Server {
 public:
  RoleGate(ClientService* service, capnp::Capability::Client keep, Role role, std::string who,
           std::uint64_t* denied)
      : service_(service), keep_(kj::mv(keep)), role_(role), who_(std::move(who)),
        denied_(denied) {}

  DispatchCallResult dispatchCall(std::uint64_t interface_id, std::uint16_t method_id,
                                  capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context)
      override {
    if (interface_id == capnp::typeId<wire::KvClient>() && !RoleAllows(role_, method_id)) {
      ++*denied_;
      return {KJ_EXCEPTION(FAILED,
                           kj::str("permission denied: a ", Name(role_), " certificate (",
                                   who_.c_str(), ") may not call this (method ", method_id,
                                   "); see rpc/tls.h for the roles")),
              false};
    }
    return static_cast<capnp::Capability::Server*>(service_)->dispatchCall(interface_id, method_id,
                                                                           context);
  }

 private:
  ClientService* service_;
  capnp::Capability::Client keep_;  // keeps service_ alive
  Role role_;
  std::string who_;
  std::uint64_t* denied_;
};

}  // namespace

ClientServer::ClientServer(kj::Own<ClientService> service, std::size_t max_message_bytes,
                           kj::Timer& timer, Options options, Tls* tls)
    : service_(service.get()),
      bootstrap_(kj::mv(service)),
      options_(options),
      tls_(tls),
      tasks_(*this) {
  reader_options_.traversalLimitInWords = max_message_bytes / sizeof(capnp::word) + 1;
  limits_.timer = &timer;
  limits_.message_timeout = options_.message_timeout;
  // At least one message of the largest size fits.
  limits_.flow_limit_bytes = std::max(options_.flow_limit_bytes, max_message_bytes);
}

kj::Promise<void> ClientServer::Listen(kj::ConnectionReceiver& listener) {
  return listener.accept().then(
      [this, &listener](kj::Own<kj::AsyncIoStream> stream) {
        if (open_ >= options_.max_connections) {
          ++refused_;  // closed at once: `stream` goes out of scope
        } else if (tls_ == nullptr) {
          tasks_.add(Serve(kj::mv(stream), Role::kAll, "plain"));
        } else {
          // The handshake holds a place among the open connections too.
          ++open_;
          tasks_.add(tls_->Accept(kj::mv(stream), *limits_.timer)
                         .then(
                             [this](Tls::Accepted&& a) {
                               --open_;
                               if (a.role == Role::kAll) ++plain_connections_;
                               return Serve(kj::mv(a.stream), a.role, kj::mv(a.who));
                             },
                             [this](kj::Exception&&) -> kj::Promise<void> {
                               --open_;
                               ++tls_refused_;
                               return kj::READY_NOW;
                             }));
        }
        return Listen(listener);
      },
      [this, &listener](kj::Exception&& e) {
        // Out of file descriptors (EMFILE) or the like: keep serving the connections open, and
        // accept again a little later rather than stop accepting for good.
        ++accept_failures_;
        return limits_.timer->afterDelay(100 * kj::MILLISECONDS).then([this, &listener]() {
          return Listen(listener);
        });
      });
}

kj::Promise<void> ClientServer::Serve(kj::Own<kj::AsyncIoStream> stream, Role role,
                                      std::string who) {
  ++open_;
  capnp::Capability::Client bootstrap = bootstrap_;
  if (role != Role::kAll) {
    bootstrap = kj::heap<RoleGate>(service_, bootstrap_, role, std::move(who), &permission_denied_);
  }
  auto session = kj::heap<RpcSession>(kj::mv(stream), bootstrap, reader_options_, limits_);
  RpcSession* s = session.get();
  return session->OnDisconnect()
      .then([this, s]() {
        if (s->failed()) ++failed_connections_;
      })
      .attach(kj::mv(session), kj::defer([this]() { --open_; }));
}

void ClientServer::taskFailed(kj::Exception&& exception) { ++failed_connections_; }

}  // namespace kv::rpc
