#include "rpc/client_server.h"

#include <capnp/rpc-twoparty.h>

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
  auto network = kj::heap<capnp::TwoPartyVatNetwork>(*stream, capnp::rpc::twoparty::Side::SERVER,
                                                      reader_options_);
  auto rpc = kj::heap(capnp::makeRpcServer(*network, bootstrap_));
  auto done = network->onDisconnect();
  // Attachments are destroyed inside out: the RPC system, then the network, then the socket.
  return done.attach(kj::mv(rpc)).attach(kj::mv(network)).attach(kj::mv(stream));
}

void ClientServer::taskFailed(kj::Exception&& exception) { ++failed_connections_; }

}  // namespace kv::rpc
