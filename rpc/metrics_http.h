// The /metrics endpoint: HTTP/1.1 on the RPC thread's event loop (kj-http), answering
// GET /metrics with what `render` returns, in the Prometheus text format. Anything else gets
// 404 (another path) or 405 (another method). Bounded: at most `max_connections` scrapes open
// at once (more are closed at once and counted), a request must arrive whole within 15 s,
// and kj-http bounds its headers.
//
// Lives on the RPC thread; `render` runs there, once per scrape.
#pragma once

#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <cstdint>
#include <functional>
#include <string>

namespace kv::rpc {

class MetricsServer {
 public:
  MetricsServer(kj::Timer& timer, kj::Own<kj::ConnectionReceiver> listener,
                std::function<std::string()> render, std::size_t max_connections = 16);
  ~MetricsServer();

  // Accepts scrapes until the promise is dropped.
  kj::Promise<void> Run();
  std::uint16_t port() const;
  std::uint64_t scrapes() const { return scrapes_; }
  std::uint64_t refused() const { return refused_; }

 private:
  class Service;
  kj::Promise<void> AcceptLoop();

  kj::Own<kj::ConnectionReceiver> listener_;
  std::function<std::string()> render_;
  std::size_t max_connections_;
  std::size_t open_ = 0;
  std::uint16_t port_ = 0;
  std::uint64_t scrapes_ = 0, refused_ = 0;
  kj::HttpHeaderTable table_;
  kj::Own<Service> service_;
  kj::Own<kj::HttpServer> server_;
  kj::TaskSet tasks_;
  class Errors final : public kj::TaskSet::ErrorHandler {
   public:
    void taskFailed(kj::Exception&&) override {}  // a scraper that hung up: nothing to do
  } errors_;
};

}  // namespace kv::rpc
