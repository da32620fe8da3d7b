// kvd: one node of the store.
//
// Wiring only: parse flags, open the engine, serve the client API on --listen, stop cleanly on
// SIGTERM or SIGINT. Prints one line on stdout when it is ready:
//   kvd: node 3f2a... listening on 127.0.0.1:7701
// Logs go to stderr. Exit codes: 0 stopped cleanly, 2 bad flags, 1 could not start.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "rpc/client_conn.h"
#include "rpc/client_server.h"
#include "rpc/client_service.h"
#include "storage/local_store.h"
#include "storage/rocksdb_engine.h"

namespace {

struct Flags {
  std::string data_dir;
  std::string listen = "127.0.0.1:7701";
  std::size_t max_key_bytes = 64 * 1024;
  std::size_t max_value_bytes = 16 * 1024 * 1024;
  bool sync_writes = false;
};

int Fail(const std::string& what) {
  std::fprintf(stderr, "kvd: %s\n", what.c_str());
  return 1;
}

int Run(const Flags& flags) {
  using namespace kv;
  // Capture the stop signals before any thread exists: RocksDB starts threads in Open, and they
  // inherit the blocked mask, so the signals reach only this thread's event loop.
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);

  storage::RocksDbOptions ro;
  ro.sync_writes = flags.sync_writes;
  auto engine = storage::RocksDbEngine::Open(flags.data_dir, ro);
  if (!engine.ok()) return Fail(engine.status().ToString());
  auto node_id = storage::LoadOrCreateNodeId(*engine.value());
  if (!node_id.ok()) return Fail(node_id.status().ToString());

  storage::Limits limits{flags.max_key_bytes, flags.max_value_bytes};
  storage::LocalStore store(engine.value().get(), node_id.value(), limits);

  auto io = kj::setupAsyncIo();

  // A message may hold a key and a value at their limits, plus envelope.
  rpc::ClientServer server(kj::heap<rpc::ClientService>(&store),
                           limits.max_key_bytes + limits.max_value_bytes + 64 * 1024);

  kj::Own<kj::ConnectionReceiver> listener;
  kj::Maybe<kj::Exception> bind_error = kj::runCatchingExceptions([&]() {
    listener = io.provider->getNetwork().parseAddress(flags.listen).wait(io.waitScope)->listen();
  });
  KJ_IF_MAYBE (e, bind_error) {
    return Fail("cannot listen on " + flags.listen + ": " + e->getDescription().cStr());
  }
  std::string host;
  int port = 0;
  (void)rpc::ParseHostPort(flags.listen, true, &host, &port);
  auto accepting = server.Listen(*listener).eagerlyEvaluate([](kj::Exception&& e) {
    std::fprintf(stderr, "kvd: accept failed: %s\n", e.getDescription().cStr());
  });

  std::printf("kvd: node %016" PRIx64 " listening on %s:%u\n", node_id.value(), host.c_str(),
              listener->getPort());
  std::fflush(stdout);

  auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
  siginfo_t info = stop.wait(io.waitScope);
  std::fprintf(stderr, "kvd: caught %s, stopping\n",
               info.si_signo == SIGTERM ? "SIGTERM" : "SIGINT");

  // Handlers run to completion on this thread, so no request is half-applied here. Refuse new
  // requests, stop accepting, then close every connection and the database.
  server.service().BeginShutdown();
  // Writes already received are applied, and every reply ready to go is sent, before the
  // connections close.
  server.service().Drain().wait(io.waitScope);
  io.waitScope.poll();
  accepting = nullptr;
  listener = nullptr;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"kvd: a node of the kv store"};
  app.add_option("--data-dir", flags.data_dir, "Directory for this node's RocksDB data")
      ->required();
  app.add_option("--listen", flags.listen, "HOST:PORT for the client API (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--max-key-bytes", flags.max_key_bytes, "Largest key accepted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--max-value-bytes", flags.max_value_bytes, "Largest value accepted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{256} << 20));
  app.add_flag("--sync-writes", flags.sync_writes,
               "fsync the WAL before acknowledging each write (default: WAL without fsync)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kvd: %s (see kvd --help)\n", e.what());
    return 2;
  }
  std::string host;
  int port = 0;
  if (kv::Status s = kv::rpc::ParseHostPort(flags.listen, true, &host, &port); !s.ok()) {
    std::fprintf(stderr, "kvd: --listen: %s\n", s.message().c_str());
    return 2;
  }
  const int rc = Run(flags);
  if (rc == 0) std::fprintf(stderr, "kvd: stopped\n");
  return rc;
}
