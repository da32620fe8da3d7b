#include "rpc/session.h"

namespace kv::rpc {

namespace {

kj::Own<BufferedMessageStream> MessagesOn(kj::AsyncIoStream& stream,
                                          const RpcSession::Limits& limits) {
  if (limits.timer == nullptr) return kj::heap<BufferedMessageStream>(stream);
  return kj::heap<BufferedMessageStream>(stream, *limits.timer, limits.message_timeout);
}

}  // namespace

RpcSession::RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
                       capnp::ReaderOptions options, const Limits& limits)
    : stream_(kj::mv(stream)),
      messages_(MessagesOn(*stream_, limits)),
      network_(*messages_, capnp::rpc::twoparty::Side::SERVER, options),
      rpc_(capnp::makeRpcServer(network_, kj::mv(bootstrap))) {
  if (limits.flow_limit_bytes > 0) rpc_.setFlowLimit(limits.flow_limit_bytes / sizeof(capnp::word));
}

RpcSession::RpcSession(kj::Own<kj::AsyncIoStream> stream, capnp::ReaderOptions options)
    : stream_(kj::mv(stream)),
      messages_(kj::heap<BufferedMessageStream>(*stream_)),
      network_(*messages_, capnp::rpc::twoparty::Side::CLIENT, options),
      rpc_(capnp::makeRpcClient(network_)) {}

capnp::Capability::Client RpcSession::Bootstrap() {
  capnp::word scratch[4] = {};
  capnp::MallocMessageBuilder message(scratch);
  auto vat = message.getRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(capnp::rpc::twoparty::Side::SERVER);
  return rpc_.bootstrap(vat);
}

}  // namespace kv::rpc
