#include "rpc/session.h"

namespace kv::rpc {

RpcSession::RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
                       capnp::ReaderOptions options)
    : stream_(kj::mv(stream)),
      messages_(*stream_),
      network_(messages_, capnp::rpc::twoparty::Side::SERVER, options),
      rpc_(capnp::makeRpcServer(network_, kj::mv(bootstrap))) {}

RpcSession::RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::ReaderOptions options)
    : stream_(kj::mv(stream)),
      messages_(*stream_),
      network_(messages_, capnp::rpc::twoparty::Side::CLIENT, options),
      rpc_(capnp::makeRpcClient(network_)) {}

capnp::Capability::Client RpcSession::Bootstrap() {
  capnp::word scratch[4] = {};
  capnp::MallocMessageBuilder message(scratch);
  auto vat = message.getRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(capnp::rpc::twoparty::Side::SERVER);
  return rpc_.bootstrap(vat);
}

}  // namespace kv::rpc
