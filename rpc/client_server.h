// ClientServer: accepts TCP connections on a listener and serves the client API on each.
//
// Each connection gets its own Cap'n Proto two-party RPC session. A connection that sends
// bytes that do not parse, or a message larger than the limit, is closed and counted; the node
// goes on serving everyone else. With TLS (tls.h), each connection's handshake comes first, and
// what it may call follows from its certificate's role: a call its role does not allow fails
// with "permission denied" and is counted. Lives on the RPC thread's KJ event loop.
#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>

#include <cstdint>

#include "rpc/client_service.h"
#include "rpc/session.h"
#include "rpc/tls.h"

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
  // `tls` (may be null: plain connections with every role) must outlive the server.
  ClientServer(kj::Own<ClientService> service, std::size_t max_message_bytes, kj::Timer& timer,
               Options options, Tls* tls = nullptr);

  ClientService& service() { return *service_; }

  // Accepts connections until the returned promise is dropped.
  kj::Promise<void> Listen(kj::ConnectionReceiver& listener);

  // Connections that ended with a protocol or transport error (a hostile header, a half-sent
  // message past its deadline, a reset).
  std::uint64_t failed_connections() const { return failed_connections_; }
  std::size_t open_connections() const { return open_; }
  std::uint64_t refused_connections() const { return refused_; }
  std::uint64_t accept_failures() const { return accept_failures_; }
  // TLS: handshakes that failed (no certificate, another CA, another cluster's node, plain in
  // require mode, a timeout), and calls refused because the connection's role does not allow
  // them.
  std::uint64_t tls_refused() const { return tls_refused_; }
  std::uint64_t permission_denied() const { return permission_denied_; }
  std::uint64_t plain_connections() const { return plain_connections_; }

 private:
  kj::Promise<void> Serve(kj::Own<kj::AsyncIoStream> stream, Role role, std::string who);
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
  Tls* const tls_;
  std::uint64_t tls_refused_ = 0;
  std::uint64_t permission_denied_ = 0;
  std::uint64_t plain_connections_ = 0;
  kj::TaskSet tasks_;  // last: destroyed first, closing every connection
};

}  // namespace kv::rpc
