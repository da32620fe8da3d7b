#include "rpc/client_server.h"

#include "rpc/session.h"

namespace kv::rpc {

ClientServer::ClientServer(kj::Own<ClientService> service, std::size_t max_message_bytes)
    : service_(service.get()), bootstrap_(kj::mv(service)), tasks_(*this) {
  reader_options_.traversalLimitInWords = max_message_bytes / sizeof(capnp::word) + 1;
}

kj::Promise<void> ClientServer::Listen(kj::ConnectionReceiver& listener) {
  return listener.accept().then([this, &listener](kj::Own<kj::AsyncIoStream> stream) {
    tasks_.add(Serve(kj::mv(stream)));
    return Listen(listener);
  });
}

kj::Promise<void> ClientServer::Serve(kj::Own<kj::AsyncIoStream> stream) {
  auto session = kj::heap<RpcSession>(kj::mv(stream), bootstrap_, reader_options_);
  auto done = session->OnDisconnect();
  return done.attach(kj::mv(session));
}

void ClientServer::taskFailed(kj::Exception&& exception) { ++failed_connections_; }

}  // namespace kv::rpc
