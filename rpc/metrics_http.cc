#include "rpc/metrics_http.h"

namespace kv::rpc {

class MetricsServer::Service final : public kj::HttpService {
 public:
  explicit Service(MetricsServer* owner) : owner_(owner) {}
  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response) override {
    (void)headers;
    (void)body;
    if (url != "/metrics" && !url.startsWith("/metrics?")) {
      return response.sendError(404, "Not Found", owner_->table_);
    }
    if (method != kj::HttpMethod::GET && method != kj::HttpMethod::HEAD) {
      return response.sendError(405, "Method Not Allowed", owner_->table_);
    }
    ++owner_->scrapes_;
    auto text = kj::heapString(owner_->render_());
    kj::HttpHeaders out(owner_->table_);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    if (method == kj::HttpMethod::HEAD) {
      response.send(200, "OK", out, text.size());
      return kj::READY_NOW;
    }
    auto stream = response.send(200, "OK", out, text.size());
    auto written = stream->write(text.begin(), text.size());
    return written.attach(kj::mv(stream), kj::mv(text));
  }

 private:
  MetricsServer* owner_;
};

MetricsServer::MetricsServer(kj::Timer& timer, kj::Own<kj::ConnectionReceiver> listener,
                             std::function<std::string()> render, std::size_t max_connections)
    : listener_(kj::mv(listener)),
      render_(std::move(render)),
      max_connections_(max_connections),
      service_(kj::heap<Service>(this)),
      tasks_(errors_) {
  server_ = kj::heap<kj::HttpServer>(timer, table_, *service_);
  port_ = static_cast<std::uint16_t>(listener_->getPort());
}

MetricsServer::~MetricsServer() = default;

std::uint16_t MetricsServer::port() const { return port_; }

kj::Promise<void> MetricsServer::Run() { return AcceptLoop(); }

kj::Promise<void> MetricsServer::AcceptLoop() {
  return listener_->accept().then([this](kj::Own<kj::AsyncIoStream> connection) {
    if (open_ >= max_connections_) {
      ++refused_;  // dropping it closes it
    } else {
      ++open_;
      tasks_.add(server_->listenHttp(kj::mv(connection)).attach(kj::defer([this]() {
        --open_;
      })));
    }
    return AcceptLoop();
  });
}

}  // namespace kv::rpc
