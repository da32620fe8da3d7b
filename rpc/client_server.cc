#include "rpc/client_server.h"

#include "rpc/session.h"

#include <algorithm>

namespace kv::rpc {

ClientServer::ClientServer(kj::Own<ClientService> service, std::size_t max_message_bytes,
                           kj::Timer& timer, Options options)
    : service_(service.get()), bootstrap_(kj::mv(service)), options_(options), tasks_(*this) {
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
        } else {
          tasks_.add(Serve(kj::mv(stream)));
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

kj::Promise<void> ClientServer::Serve(kj::Own<kj::AsyncIoStream> stream) {
  ++open_;
  auto session = kj::heap<RpcSession>(kj::mv(stream), bootstrap_, reader_options_, limits_);
  RpcSession* s = session.get();
  return session->OnDisconnect()
      .then([this, s]() {
        if (s->failed()) ++failed_connections_;
      })
      .attach(kj::mv(session), kj::defer([this]() { --open_; }));
}

void ClientServer::taskFailed(kj::Exception&& exception) { ++failed_connections_; }

}  // namespace kv::rpc
