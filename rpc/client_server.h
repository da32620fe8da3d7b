// ClientServer: accepts TCP connections on a listener and serves the client API on each.
//
// Each connection gets its own Cap'n Proto two-party RPC session. A connection that sends
// bytes that do not parse, or a message larger than the limit, is closed and counted; the node
// goes on serving everyone else. Lives on the RPC thread's KJ event loop.
#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>

#include <cstdint>

#include "rpc/client_service.h"

namespace kv::rpc {

class ClientServer final : private kj::TaskSet::ErrorHandler {
 public:
  // `max_message_bytes` bounds one incoming message.
  ClientServer(kj::Own<ClientService> service, std::size_t max_message_bytes);

  ClientService& service() { return *service_; }

  // Accepts connections until the returned promise is dropped.
  kj::Promise<void> Listen(kj::ConnectionReceiver& listener);

  // Connections that ended with a protocol or transport error.
  std::uint64_t failed_connections() const { return failed_connections_; }

 private:
  kj::Promise<void> Serve(kj::Own<kj::AsyncIoStream> stream);
  void taskFailed(kj::Exception&& exception) override;

  ClientService* const service_;  // owned by bootstrap_
  capnp::Capability::Client bootstrap_;
  capnp::ReaderOptions reader_options_;
  std::uint64_t failed_connections_ = 0;
  kj::TaskSet tasks_;  // last: destroyed first, closing every connection
};

}  // namespace kv::rpc
