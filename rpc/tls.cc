#include "rpc/tls.h"

#include <kj/debug.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace kv::rpc {
namespace {

// How long a TLS handshake may take before the server gives up on the connection.
constexpr auto kHandshakeTimeout = 10 * kj::SECONDS;
constexpr std::size_t kMaxPemBytes = 1 << 20;

// KvClient's methods (client.capnp ordinals).
enum Method : std::uint16_t {
  kGet = 0,
  kPut = 1,
  kDelete = 2,
  kStatus = 3,
  kRing = 4,
  kRemoveNode = 5,
  kStats = 6,
  kReplica = 7,
  kRepair = 8,
  kDecommission = 9,
  kCleanup = 10,
  kKeyring = 11,
};

Result<std::string> ReadPem(const std::string& what, const std::string& path) {
  if (path.empty()) return Status::InvalidArgument(what + ": no file given");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(what + " " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPemBytes) {
      return Status::InvalidArgument(what + " " + path + ": larger than 1 MiB: not a PEM file");
    }
  }
  if (text.find("-----BEGIN ") == std::string::npos) {
    return Status::InvalidArgument(what + " " + path + ": not a PEM file");
  }
  return text;
}

// The bytes of a stream read ahead (to tell TLS from plain), given back before the rest.
class PrefixedStream final : public kj::AsyncIoStream {
 public:
  PrefixedStream(kj::Own<kj::AsyncIoStream> inner, kj::Array<kj::byte> prefix)
      : inner_(kj::mv(inner)), prefix_(kj::mv(prefix)) {}

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    if (offset_ < prefix_.size()) {
      const size_t n = std::min(max_bytes, prefix_.size() - offset_);
      std::memcpy(buffer, prefix_.begin() + offset_, n);
      offset_ += n;
      if (n >= min_bytes) return n;
      return inner_->tryRead(static_cast<kj::byte*>(buffer) + n, min_bytes - n, max_bytes - n)
          .then([n](size_t more) { return n + more; });
    }
    return inner_->tryRead(buffer, min_bytes, max_bytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* addr, kj::uint* length) override {
    inner_->getsockname(addr, length);
  }
  void getpeername(struct sockaddr* addr, kj::uint* length) override {
    inner_->getpeername(addr, length);
  }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  kj::Array<kj::byte> prefix_;
  size_t offset_ = 0;
};

// A TLS stream whose abrupt end (the peer closed without close_notify, which kj-tls raises as
// FAILED under OpenSSL 3) reads as a plain socket's would: DISCONNECTED.
class TlsStream final : public kj::AsyncIoStream {
 public:
  explicit TlsStream(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    return inner_->tryRead(buffer, min_bytes, max_bytes).catch_([](kj::Exception&& e) {
      return kj::Promise<size_t>(Disconnected(kj::mv(e)));
    });
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size).catch_([](kj::Exception&& e) {
      return kj::Promise<void>(Disconnected(kj::mv(e)));
    });
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_->write(pieces).catch_([](kj::Exception&& e) {
      return kj::Promise<void>(Disconnected(kj::mv(e)));
    });
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }

 private:
  static kj::Exception Disconnected(kj::Exception&& e) {
    if (e.getType() != kj::Exception::Type::FAILED) return kj::mv(e);
    const kj::StringPtr d = e.getDescription();
    const bool abrupt = d.findFirst('\n') == nullptr &&
                        (strstr(d.cStr(), "unexpected eof") != nullptr ||
                         strstr(d.cStr(), "UNEXPECTED_EOF") != nullptr ||
                         strstr(d.cStr(), "Connection reset") != nullptr);
    if (!abrupt) return kj::mv(e);
    return kj::Exception(kj::Exception::Type::DISCONNECTED, e.getFile(), e.getLine(),
                         kj::str("TLS peer closed the connection: ", d));
  }
  kj::Own<kj::AsyncIoStream> inner_;
};

class UnknownPeer final : public kj::PeerIdentity {
 public:
  kj::String toString() override { return kj::str("unknown"); }
};

}  // namespace

bool ParseTlsMode(const std::string& text, TlsMode* out) {
  if (text == "accept") {
    *out = TlsMode::kAccept;
  } else if (text == "connect") {
    *out = TlsMode::kConnect;
  } else if (text == "require") {
    *out = TlsMode::kRequire;
  } else {
    return false;
  }
  return true;
}

const char* Name(Role r) {
  switch (r) {
    case Role::kNone:
      return "none";
    case Role::kClient:
      return "client";
    case Role::kAdmin:
      return "admin";
    case Role::kPeer:
      return "peer";
    case Role::kAll:
      return "all (plain connection)";
  }
  return "?";
}

bool RoleAllows(Role role, std::uint16_t method_id) {
  switch (method_id) {
    case kGet:
    case kPut:
    case kDelete:
    case kStatus:
    case kRing:
    case kStats:
      return role != Role::kNone;
    case kReplica:
      return role == Role::kPeer || role == Role::kAll;
    case kRemoveNode:
    case kRepair:
    case kDecommission:
    case kCleanup:
    case kKeyring:
      return role == Role::kAdmin || role == Role::kAll;
    default:
      return role == Role::kAll;  // a method this build does not know: unimplemented anyway
  }
}

Role RoleOf(const std::string& common_name, const std::string& identity) {
  if (common_name.rfind("node:", 0) == 0) {
    return common_name == "node:" + identity ? Role::kPeer : Role::kNone;
  }
  if (common_name == "admin" || common_name.rfind("admin:", 0) == 0) return Role::kAdmin;
  return Role::kClient;
}

struct Tls::Material {
  std::vector<kj::TlsCertificate> ca;
  kj::Own<kj::TlsPrivateKey> key;
  kj::Own<kj::TlsCertificate> cert;
  kj::Own<kj::TlsKeypair> keypair;
  kj::Own<kj::TlsContext> context;
};

Tls::Tls(TlsSettings settings, std::unique_ptr<Material> material)
    : settings_(std::move(settings)), material_(std::move(material)) {}
Tls::~Tls() = default;

Result<std::unique_ptr<Tls>> Tls::Load(const TlsSettings& settings) {
  auto cert = ReadPem("--tls-cert", settings.cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadPem("--tls-key", settings.key_file);
  if (!key.ok()) return key.status();
  auto ca = ReadPem("--tls-ca", settings.ca_file);
  if (!ca.ok()) return ca.status();
  if (settings.identity.empty()) return Status::InvalidArgument("--tls-identity is empty");
  auto m = std::make_unique<Material>();
  std::string stage;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
    stage = "--tls-ca " + settings.ca_file;
    m->ca.emplace_back(kj::StringPtr(ca.value().c_str()));
    stage = "--tls-key " + settings.key_file;
    m->key = kj::heap<kj::TlsPrivateKey>(kj::StringPtr(key.value().c_str()));
    stage = "--tls-cert " + settings.cert_file;
    m->cert = kj::heap<kj::TlsCertificate>(kj::StringPtr(cert.value().c_str()));
    m->keypair = kj::heap<kj::TlsKeypair>(kj::TlsKeypair{*m->key, *m->cert});
    stage = "--tls-cert " + settings.cert_file + " with --tls-key " + settings.key_file;
    kj::TlsContext::Options o;
    o.useSystemTrustStore = false;
    o.verifyClients = true;
    o.trustedCertificates = kj::ArrayPtr<const kj::TlsCertificate>(m->ca.data(), m->ca.size());
    o.defaultKeypair = *m->keypair;
    o.minVersion = kj::TlsVersion::TLS_1_2;
    m->context = kj::heap<kj::TlsContext>(kj::mv(o));
  });
  KJ_IF_MAYBE (e, failure) {
    return Status::InvalidArgument(stage + ": " + e->getDescription().cStr());
  }
  return std::unique_ptr<Tls>(new Tls(settings, std::move(m)));
}

kj::Promise<Tls::Accepted> Tls::Accept(kj::Own<kj::AsyncIoStream> stream, kj::Timer& timer) {
  auto handshake = [this](kj::Own<kj::AsyncIoStream> s) {
    kj::AuthenticatedStream a{kj::mv(s), kj::heap<UnknownPeer>()};
    return material_->context->wrapServer(kj::mv(a)).then([this](kj::AuthenticatedStream&& tls) {
      Accepted out;
      auto& peer = kj::downcast<kj::TlsPeerIdentity>(*tls.peerIdentity);
      if (!peer.hasCertificate()) {
        return kj::Promise<Accepted>(KJ_EXCEPTION(FAILED, "client presented no certificate"));
      }
      out.who = peer.getCommonName().cStr();
      out.role = RoleOf(out.who, settings_.identity);
      if (out.role == Role::kNone) {
        return kj::Promise<Accepted>(KJ_EXCEPTION(
            FAILED, "a node certificate of another cluster identity",
            settings_.identity.c_str()));
      }
      out.stream = kj::heap<TlsStream>(kj::mv(tls.stream));
      return kj::Promise<Accepted>(kj::mv(out));
    });
  };
  kj::Promise<Accepted> accepted = nullptr;
  if (settings_.mode == TlsMode::kRequire) {
    accepted = handshake(kj::mv(stream));
  } else {
    auto first = kj::heapArray<kj::byte>(1);
    auto* s = stream.get();
    auto* b = first.begin();
    accepted = s->tryRead(b, 1, 1).then(
        [handshake, stream = kj::mv(stream), first = kj::mv(first)](size_t n) mutable
        -> kj::Promise<Accepted> {
          if (n == 0) return KJ_EXCEPTION(DISCONNECTED, "closed before its first byte");
          const bool tls = first[0] == 0x16;
          kj::Own<kj::AsyncIoStream> replay = kj::heap<PrefixedStream>(kj::mv(stream), kj::mv(first));
          if (tls) return handshake(kj::mv(replay));
          Accepted out;
          out.stream = kj::mv(replay);
          out.role = Role::kAll;
          out.who = "plain";
          return kj::mv(out);
        });
  }
  return timer.timeoutAfter(kHandshakeTimeout, kj::mv(accepted));
}

kj::Promise<kj::Own<kj::AsyncIoStream>> Tls::Secure(kj::Own<kj::AsyncIoStream> stream) {
  return material_->context->wrapClient(kj::mv(stream), settings_.identity)
      .then([](kj::Own<kj::AsyncIoStream> tls) -> kj::Own<kj::AsyncIoStream> {
        return kj::heap<TlsStream>(kj::mv(tls));
      });
}

}  // namespace kv::rpc
