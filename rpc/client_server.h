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
#include "rpc/session.h"

namespace kv::rpc {

class ClientServer final : private kj::TaskSet::ErrorHandler {
 public:
  struct Options {
    // Connections open at once; past it a new one is closed at once (connections_refused).
    std::size_t max_connections = 4096;
    // Per connection: bytes of calls received and not yet answered before the node stops
    // reading from it (Cap'n Proto's flow limit), and how long a message may stay half-sent.
    std::size_t flow_limit_bytes = std::size_t{64} << 20;
    kj::Duration message_timeout = 30 * kj::SECONDS;
  };
  // `max_message_bytes` bounds one incoming message. `timer` must outlive the server.
  ClientServer(kj::Own<ClientService> service, std::size_t max_message_bytes, kj::Timer& timer,
               Options options);

  ClientService& service() { return *service_; }

  // Accepts connections until the returned promise is dropped.
  kj::Promise<void> Listen(kj::ConnectionReceiver& listener);

  // Connections that ended with a protocol or transport error (a hostile header, a half-sent
  // message past its deadline, a reset).
  std::uint64_t failed_connections() const { return failed_connections_; }
  std::size_t open_connections() const { return open_; }
  std::uint64_t refused_connections() const { return refused_; }
  std::uint64_t accept_failures() const { return accept_failures_; }

 private:
  kj::Promise<void> Serve(kj::Own<kj::AsyncIoStream> stream);
  void taskFailed(kj::Exception&& exception) override;

  ClientService* const service_;  // owned by bootstrap_
  capnp::Capability::Client bootstrap_;
  capnp::ReaderOptions reader_options_;
  const Options options_;
  RpcSession::Limits limits_;
  std::uint64_t failed_connections_ = 0;
  std::size_t open_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t accept_failures_ = 0;
  kj::TaskSet tasks_;  // last: destroyed first, closing every connection
};

}  // namespace kv::rpc
