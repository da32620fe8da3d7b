// Mutual TLS on the RPC port (kj-tls over OpenSSL 3), and the roles a certificate grants.
//
// One cluster CA signs every certificate; nothing else is trusted (not the system's store). A
// node verifies every connection's certificate against that CA, in both directions:
//   - a node's certificate has the common name "node:IDENTITY" and IDENTITY as a DNS name
//     (subjectAltName), where IDENTITY is the cluster identity, from each side's own
//     configuration (--tls-identity), never from gossip. Whoever dials a node (kvtool, or
//     another node) checks that the server's certificate names the identity (kj-tls does, with
//     OpenSSL's host name check); a node taking a connection checks the common name. A
//     connection with another cluster's node certificate ("node:OTHER") is refused.
//   - a client's certificate has any other common name. "admin" (or "admin:WHO") grants the
//     admin role; anything else (for example "client:alice") the client role. A client
//     certificate must not carry the identity as a name (tools/certs.sh gives it none).
// The common name, not the DNS name, tells a node a peer apart: kj-tls 0.9.2 declares
// TlsPeerIdentity::matchesHostname but does not define it, and gives no other certificate field.
// Roles (what each may call on KvClient; see RoleAllows):
//   client  get, put, delete, status, ring, stats
//   admin   the client's calls, and removenode, repair, decommission, cleanup, keyring
//   peer    the client's calls, and replica (the internode interface)
// So the internode interface is reachable only with a node certificate, and a node certificate
// cannot run admin operations. A CA that signs a wildcard DNS name would give that certificate
// any identity: sign exact names only (tools/certs.sh does).
//
// Modes, to switch a live cluster node by node without a pause (as gossip encryption does):
//   accept   takes TLS and plain connections; dials peers in plain
//   connect  takes TLS and plain connections; dials peers with TLS
//   require  takes TLS connections only; dials peers with TLS
// Every node goes to accept (a rolling restart), then to connect, then to require. A plain
// connection taken in accept or connect mode has every role, as before TLS. A server tells TLS
// from plain by the first byte (a TLS handshake record starts with 0x16; a Cap'n Proto message
// starts with its segment count less one, little-endian, which is 0 for every message this
// store sends and below 0x16 for any it accepts).
//
// kj-tls 0.9.2, as Debian ships it, and how this module deals with it:
//   - it checks no IP addresses: a server is verified by name (the identity), which is what a
//     cluster certificate carries anyway.
//   - OpenSSL 3 may report a peer that closes without close_notify as an error ("unexpected
//     eof while reading"), which kj raises as FAILED: the streams this module hands out turn it
//     into DISCONNECTED, as a plain socket closing would be. (Measured here: a kvtool that exits
//     reads as a clean end with or without this; a killed one counts as a failed connection,
//     as it does in plain, its socket being reset.)
//   - it can log "unimplemented bio_ctrl" warnings for controls OpenSSL 3 asks of its BIO; none
//     appeared in this store's use (handshakes, requests, closes, refusals), so none is filtered:
//     if one shows, it is a line on stderr, not a fault.
//   - TlsPeerIdentity::matchesHostname is declared but not defined: peers are told apart by
//     their common name (above).
//
// Load runs anywhere; the rest on the RPC thread's event loop.
#pragma once

#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <kj/timer.h>

#include <memory>
#include <optional>
#include <string>

#include "storage/status.h"

namespace kv::rpc {

enum class TlsMode { kAccept, kConnect, kRequire };
// "accept", "connect", "require"; false for anything else.
bool ParseTlsMode(const std::string& text, TlsMode* out);

struct TlsSettings {
  std::string cert_file;  // PEM: this node's or client's certificate (chain)
  std::string key_file;   // PEM: its private key
  std::string ca_file;    // PEM: the cluster CA, the only one trusted
  std::string identity = "kv";  // the DNS name every node certificate of this cluster carries
  TlsMode mode = TlsMode::kRequire;
};

enum class Role { kNone, kClient, kAdmin, kPeer, kAll };
const char* Name(Role r);  // "none", "client", "admin", "peer", "all (plain connection)"

// Whether `role` may call KvClient's method `method_id` (its ordinal in client.capnp).
bool RoleAllows(Role role, std::uint16_t method_id);
// The role of a certificate by its common name (see the top of this file). kNone for a node
// certificate of another identity than `identity`.
Role RoleOf(const std::string& common_name, const std::string& identity);

class Tls {
 public:
  // Reads the three files. An error names the file and what is wrong with it.
  static Result<std::unique_ptr<Tls>> Load(const TlsSettings& settings);
  ~Tls();

  const TlsSettings& settings() const { return settings_; }
  // Whether connections this side opens use TLS (connect and require modes; always for a
  // client such as kvtool, whose mode is require).
  bool dials_tls() const { return settings_.mode != TlsMode::kAccept; }

  // The server side of an accepted connection: its stream (TLS or, outside require mode, plain)
  // and the role its certificate grants. Rejects a connection whose handshake fails (no
  // certificate, another CA, a timeout: `timer`) with a description; a plain one in require
  // mode too.
  struct Accepted {
    kj::Own<kj::AsyncIoStream> stream;
    Role role = Role::kNone;
    std::string who;  // the certificate's common name, or "plain"
  };
  kj::Promise<Accepted> Accept(kj::Own<kj::AsyncIoStream> stream, kj::Timer& timer);

  // The client side of a connection this side opened: the handshake, verifying that the server
  // holds a certificate of the cluster CA that names the identity.
  kj::Promise<kj::Own<kj::AsyncIoStream>> Secure(kj::Own<kj::AsyncIoStream> stream);

 private:
  struct Material;
  Tls(TlsSettings settings, std::unique_ptr<Material> material);
  TlsSettings settings_;
  std::unique_ptr<Material> material_;
};

}  // namespace kv::rpc
