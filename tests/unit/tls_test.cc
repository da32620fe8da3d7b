// rpc/tls.h: the roles certificates grant, and the handshake over real loopback sockets with
// certificates from tools/certs.sh: what each mode takes, who it refuses, and how a peer that
// vanishes mid-connection reads.
#include "rpc/tls.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "rpc/connect.h"

namespace kv::rpc {
namespace {

namespace fs = std::filesystem;

// KvClient's methods by ordinal (client.capnp).
constexpr std::uint16_t kGet = 0, kPut = 1, kDelete = 2, kStatus = 3, kRing = 4, kRemoveNode = 5,
                        kStats = 6, kReplica = 7, kRepair = 8, kDecommission = 9, kCleanup = 10,
                        kKeyring = 11;

TEST(TlsRoles, TheCommonNameGivesTheRole) {
  EXPECT_EQ(RoleOf("node:kv", "kv"), Role::kPeer);
  EXPECT_EQ(RoleOf("node:other", "kv"), Role::kNone);  // another cluster's node
  EXPECT_EQ(RoleOf("node:", "kv"), Role::kNone);
  EXPECT_EQ(RoleOf("node", "kv"), Role::kClient);  // not a node certificate's name
  EXPECT_EQ(RoleOf("admin", "kv"), Role::kAdmin);
  EXPECT_EQ(RoleOf("admin:alice", "kv"), Role::kAdmin);
  EXPECT_EQ(RoleOf("administrator", "kv"), Role::kClient);
  EXPECT_EQ(RoleOf("client:bob", "kv"), Role::kClient);
  EXPECT_EQ(RoleOf("", "kv"), Role::kClient);
}

TEST(TlsRoles, EachRoleMayCallItsMethodsOnly) {
  const std::vector<std::uint16_t> data = {kGet, kPut, kDelete, kStatus, kRing, kStats};
  const std::vector<std::uint16_t> admin = {kRemoveNode, kRepair, kDecommission, kCleanup,
                                            kKeyring};
  for (auto m : data) {
    EXPECT_FALSE(RoleAllows(Role::kNone, m)) << m;
    for (Role r : {Role::kClient, Role::kAdmin, Role::kPeer, Role::kAll}) {
      EXPECT_TRUE(RoleAllows(r, m)) << Name(r) << " " << m;
    }
  }
  for (auto m : admin) {
    EXPECT_TRUE(RoleAllows(Role::kAdmin, m)) << m;
    EXPECT_TRUE(RoleAllows(Role::kAll, m)) << m;
    EXPECT_FALSE(RoleAllows(Role::kClient, m)) << m;
    EXPECT_FALSE(RoleAllows(Role::kPeer, m)) << m;
    EXPECT_FALSE(RoleAllows(Role::kNone, m)) << m;
  }
  EXPECT_TRUE(RoleAllows(Role::kPeer, kReplica));
  EXPECT_TRUE(RoleAllows(Role::kAll, kReplica));
  EXPECT_FALSE(RoleAllows(Role::kClient, kReplica));
  EXPECT_FALSE(RoleAllows(Role::kAdmin, kReplica));
  EXPECT_FALSE(RoleAllows(Role::kClient, 12));  // a method this build does not know
}

class TlsLoopback : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "kv_tls_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    const std::string cmd = std::string(KV_CERTS_SH) + " " + *dir_ + " n1 n2 >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static std::unique_ptr<Tls> Load(const std::string& who, TlsMode mode = TlsMode::kRequire) {
    TlsSettings s;
    s.cert_file = *dir_ + "/" + who + ".pem";
    s.key_file = *dir_ + "/" + who + "-key.pem";
    s.ca_file = *dir_ + "/ca.pem";
    s.mode = mode;
    auto tls = Tls::Load(s);
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    return tls.ok() ? std::move(tls.value()) : nullptr;
  }

  // One connection from `client` (null: plain) to a server `server`; what the server made of
  // it: the role, or the failure.
  struct Outcome {
    bool accepted = false;
    Role role = Role::kNone;
    std::string who, error;
  };
  Outcome Connect(Tls& server, Tls* client, const std::string& first_bytes = "") {
    auto io = kj::setupAsyncIo();
    auto listener = io.provider->getNetwork()
                        .parseAddress("127.0.0.1", 0)
                        .wait(io.waitScope)
                        ->listen();
    const std::string address = "127.0.0.1:" + std::to_string(listener->getPort());
    Outcome out;
    auto accepted = listener->accept()
                        .then([&](kj::Own<kj::AsyncIoStream> s) {
                          return server.Accept(kj::mv(s), io.provider->getTimer());
                        })
                        .then(
                            [&](Tls::Accepted&& a) {
                              out.accepted = true;
                              out.role = a.role;
                              out.who = a.who;
                            },
                            [&](kj::Exception&& e) { out.error = e.getDescription().cStr(); });
    auto dialed = Dial(*io.provider, *io.lowLevelProvider, address, "");
    kj::Promise<kj::Own<kj::AsyncIoStream>> ready =
        client == nullptr ? kj::mv(dialed)
                          : dialed.then([client](kj::Own<kj::AsyncIoStream> s) {
                              return client->Secure(kj::mv(s));
                            });
    kj::Own<kj::AsyncIoStream> client_stream;
    auto connected = ready.then(
        [&](kj::Own<kj::AsyncIoStream> s) -> kj::Promise<void> {
          client_stream = kj::mv(s);
          if (first_bytes.empty()) return kj::READY_NOW;
          return client_stream->write(first_bytes.data(), first_bytes.size());
        },
        [](kj::Exception&&) {});
    connected.wait(io.waitScope);
    accepted.wait(io.waitScope);
    return out;
  }

  static std::string* dir_;
};
std::string* TlsLoopback::dir_ = nullptr;

TEST_F(TlsLoopback, RequireTakesClusterCertificatesOnlyWithTheirRoles) {
  auto server = Load("n1");
  auto node = Load("n2");
  auto client = Load("client");
  auto admin = Load("admin");
  auto stranger = Load("stranger");
  ASSERT_TRUE(server && node && client && admin && stranger);
  Outcome o = Connect(*server, node.get());
  EXPECT_TRUE(o.accepted) << o.error;
  EXPECT_EQ(o.role, Role::kPeer);
  EXPECT_EQ(o.who, "node:kv");
  o = Connect(*server, client.get());
  EXPECT_EQ(o.role, Role::kClient) << o.error;
  o = Connect(*server, admin.get());
  EXPECT_EQ(o.role, Role::kAdmin) << o.error;
  o = Connect(*server, stranger.get());
  EXPECT_FALSE(o.accepted);
  EXPECT_NE(o.error.find("SSL"), std::string::npos) << o.error;
  // A plain connection (a Cap'n Proto message's first bytes) is refused in require mode.
  o = Connect(*server, nullptr, std::string(8, '\0'));
  EXPECT_FALSE(o.accepted);
}

TEST_F(TlsLoopback, TheTransitionalModesTakePlainConnectionsWithEveryRoleAndTlsByItsCertificate) {
  for (TlsMode mode : {TlsMode::kAccept, TlsMode::kConnect}) {
    auto server = Load("n1", mode);
    auto client = Load("client");
    ASSERT_TRUE(server && client);
    EXPECT_EQ(server->dials_tls(), mode == TlsMode::kConnect);
    Outcome o = Connect(*server, nullptr, std::string(8, '\0'));
    EXPECT_TRUE(o.accepted) << o.error;
    EXPECT_EQ(o.role, Role::kAll);
    EXPECT_EQ(o.who, "plain");
    o = Connect(*server, client.get());
    EXPECT_TRUE(o.accepted) << o.error;
    EXPECT_EQ(o.role, Role::kClient);
  }
}

TEST_F(TlsLoopback, APeerThatVanishesReadsAsDisconnectedNotAsAFailure) {
  auto server = Load("n1");
  auto client = Load("n2");
  ASSERT_TRUE(server && client);
  auto io = kj::setupAsyncIo();
  auto listener =
      io.provider->getNetwork().parseAddress("127.0.0.1", 0).wait(io.waitScope)->listen();
  const std::string address = "127.0.0.1:" + std::to_string(listener->getPort());
  auto accepted = listener->accept().then([&](kj::Own<kj::AsyncIoStream> s) {
    return server->Accept(kj::mv(s), io.provider->getTimer());
  });
  auto dialed = Dial(*io.provider, *io.lowLevelProvider, address, "")
                    .then([&](kj::Own<kj::AsyncIoStream> s) { return client->Secure(kj::mv(s)); })
                    .wait(io.waitScope);
  Tls::Accepted a = accepted.wait(io.waitScope);
  // The client goes away without a TLS close_notify: the socket simply closes.
  dialed = nullptr;
  char buf[16];
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions(
      [&]() { EXPECT_EQ(a.stream->tryRead(buf, 1, sizeof buf).wait(io.waitScope), 0u); });
  KJ_IF_MAYBE (e, failure) {
    EXPECT_EQ(e->getType(), kj::Exception::Type::DISCONNECTED) << e->getDescription().cStr();
  }
}

TEST(TlsLoad, BadFilesAreRefusedNamingThem) {
  TlsSettings s;
  s.cert_file = "/nonexistent/cert.pem";
  s.key_file = "/nonexistent/key.pem";
  s.ca_file = "/nonexistent/ca.pem";
  auto tls = Tls::Load(s);
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.status().message().find("--tls-cert /nonexistent/cert.pem"), std::string::npos)
      << tls.status().ToString();
  const std::string junk = (fs::temp_directory_path() / "kv_tls_junk.pem").string();
  {
    FILE* f = fopen(junk.c_str(), "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
  }
  s.cert_file = s.key_file = s.ca_file = junk;
  tls = Tls::Load(s);
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.status().message().find(junk), std::string::npos) << tls.status().ToString();
  fs::remove(junk);
}

}  // namespace
}  // namespace kv::rpc
