// Bytes that arrive on a node's RPC port, from a client or a peer, read as a node reads them: a
// server session (rpc/session.h) with the node's default message bound and flow limit, its
// framing (buffered_stream.h), Cap'n Proto's RPC protocol, and each call's parameters decoded
// with the node's own decoders (contexts, records, consistency levels, keyring operations),
// for both the client interface and the internode interface it hands out. A stub stands in for
// the services behind those decoders, so nothing is stored. The session must end by itself
// when the bytes do, whatever they are, without a crash, a leak or a sanitizer report.
#include <capnp/rpc.capnp.h>
#include <kj/async-io.h>

#include "rpc/bytes.h"
#include "rpc/client.capnp.h"
#include "rpc/session.h"
#include "rpc/wire_status.h"
#include "storage/codec.h"
#include "storage/local_store.h"
#include "tests/fuzz/fuzz.h"

namespace {

using namespace kv;
using rpc::View;

void Decode(capnp::Data::Reader context) { (void)storage::DecodeContext(View(context)); }

class StubReplica final : public rpc::wire::KvReplica::Server {
 protected:
  kj::Promise<void> read(ReadContext c) override {
    FUZZ_CHECK(c.getParams().getKey().size() <= (std::size_t{1} << 27));
    rpc::ToWire(Status::NotFound("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> write(WriteContext c) override {
    auto r = storage::DecodeRecord(View(c.getParams().getRecord()));
    rpc::ToWire(r.status(), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> coordinate(CoordinateContext c) override {
    Decode(c.getParams().getContext());
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> repair(RepairContext c) override {
    (void)c.getParams().getRange().getEnd();
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> repairInfo(RepairInfoContext c) override { return kj::READY_NOW; }
  kj::Promise<void> movement(MovementContext c) override {
    c.getResults().initMovement().setActive(false);
    return kj::READY_NOW;
  }
  kj::Promise<void> pull(PullContext c) override {
    (void)c.getParams().getSources().size();
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> keyring(KeyringContext c) override {
    (void)rpc::FromWire(c.getParams().getOp());
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
};

class StubClient final : public rpc::wire::KvClient::Server {
 protected:
  kj::Promise<void> get(GetContext c) override {
    (void)storage::CheckKey(View(c.getParams().getKey()), storage::Limits());
    rpc::ToWire(Status::NotFound("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> put(PutContext c) override {
    Decode(c.getParams().getContext());
    (void)storage::CheckKey(View(c.getParams().getKey()), storage::Limits());
    (void)storage::CheckValue(View(c.getParams().getValue()), storage::Limits());
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> delete_(DeleteContext c) override {
    Decode(c.getParams().getContext());
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> status(StatusContext c) override {
    rpc::ToWire(Status::Ok(), c.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> replica(ReplicaContext c) override {
    c.getResults().setReplica(kj::heap<StubReplica>());
    return kj::READY_NOW;
  }
  kj::Promise<void> keyring(KeyringContext c) override {
    (void)rpc::FromWire(c.getParams().getOp());
    rpc::ToWire(Status::Unavailable("stub"), c.getResults().initStatus());
    return kj::READY_NOW;
  }
};

kj::Promise<void> Drain(kj::AsyncIoStream& s, kj::Array<kj::byte>& buf) {
  return s.tryRead(buf.begin(), 1, buf.size()).then([&s, &buf](size_t n) -> kj::Promise<void> {
    if (n == 0) return kj::READY_NOW;
    return Drain(s, buf);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static kj::AsyncIoContext* io = new kj::AsyncIoContext(kj::setupAsyncIo());
  // The node's defaults (tools/kvd.cc): a key and two records at the record cap, plus envelope.
  static const std::size_t max_message =
      storage::Limits().max_key_bytes + 2 * storage::Limits().max_record_bytes + 65536;
  auto pipe = io->provider->newTwoWayPipe();
  capnp::ReaderOptions options;
  options.traversalLimitInWords = max_message / sizeof(capnp::word) + 1;
  rpc::SessionLimits limits;
  limits.timer = &io->provider->getTimer();
  limits.message_timeout = 1 * kj::SECONDS;
  limits.flow_limit_bytes = std::size_t{64} << 20;
  {
    rpc::RpcSession session(kj::mv(pipe.ends[0]), kj::heap<StubClient>(), options, limits);
    kj::AsyncIoStream& peer = *pipe.ends[1];
    auto answers = kj::heapArray<kj::byte>(1 << 16);
    auto drained = Drain(peer, answers).eagerlyEvaluate([](kj::Exception&&) {});
    // The server may close before taking every byte (a malformed message): not an error here.
    peer.write(data, size)
        .then([&peer]() { peer.shutdownWrite(); })
        .catch_([](kj::Exception&&) {})
        .wait(io->waitScope);
    session.OnDisconnect().then([]() {}, [](kj::Exception&&) {}).wait(io->waitScope);
  }
  return 0;
}
