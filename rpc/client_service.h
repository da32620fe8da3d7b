// ClientService: the server side of the client API (rpc/client.capnp) over this node's
// LocalStore.
//
// Turns Statuses into wire Statuses and decodes client contexts as hostile input. Runs on the
// RPC thread; handlers are synchronous against the store for now (a single-node put is a
// RocksDB WAL append, measured in the closing note of issue 2).
#pragma once

#include "rpc/client.capnp.h"
#include "storage/local_store.h"

namespace kv::rpc {

// Fills a wire status from a Status.
void ToWire(const Status& status, wire::Status::Builder out);
// The Status a wire status carries.
Status FromWire(wire::Status::Reader in);

class ClientService final : public wire::KvClient::Server {
 public:
  // `store` must outlive the service.
  explicit ClientService(storage::LocalStore* store);

  // From now on every request is refused with `unavailable: node is shutting down`.
  void BeginShutdown() { shutting_down_ = true; }

 protected:
  kj::Promise<void> get(GetContext context) override;
  kj::Promise<void> put(PutContext context) override;
  kj::Promise<void> delete_(DeleteContext context) override;

 private:
  storage::LocalStore* const store_;
  bool shutting_down_ = false;
};

}  // namespace kv::rpc
