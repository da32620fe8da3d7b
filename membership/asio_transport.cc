#include "membership/asio_transport.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility> (C++20, GCC 12).
#include <utility>

#include <array>
#include <boost/asio.hpp>
#include <chrono>

namespace kv::membership {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

// A push-pull message travels as a 4-byte big-endian length and the bytes, one per connection
// (bounded by AgentOptions::streams).
// Views are rebuilt at most this often under a burst of events; the timer catches up.
constexpr auto kPublishEvery = std::chrono::milliseconds(10);

Time Now() {
  return std::chrono::duration_cast<Time>(std::chrono::steady_clock::now().time_since_epoch());
}

asio::ip::address_v4 Addr(const Endpoint& e) { return asio::ip::address_v4(e.ip); }

template <typename AsioEndpoint>
Endpoint FromAsio(const AsioEndpoint& e) {
  Endpoint out;
  if (e.address().is_v4()) out.ip = e.address().to_v4().to_uint();
  out.port = e.port();
  return out;
}

}  // namespace

struct GossipAgent::Impl {
  explicit Impl(AgentOptions o) : opts(std::move(o)) {
    // Sealed datagrams keep within max_datagram_bytes (and every node, whatever its mode,
    // takes datagrams up to it).
    if (opts.security) {
      opts.config.datagram_overhead = kSealOverhead;
      keyring_copy = opts.security->keyring;
    }
  }

  // Holds one of StreamLimits::max_incoming places while an incoming stream is read.
  struct StreamSlot {
    explicit StreamSlot(std::size_t* open) : open(open) { ++*open; }
    ~StreamSlot() { --*open; }
    StreamSlot(const StreamSlot&) = delete;
    StreamSlot& operator=(const StreamSlot&) = delete;
    std::size_t* open;
  };
  // One incoming stream, shared by its pending handlers; its place is given back when the last
  // of them is gone.
  struct IncomingStream {
    IncomingStream(tcp::socket s, asio::io_context& io, std::size_t* open)
        : sock(std::move(s)), deadline(io), slot(open) {}
    tcp::socket sock;
    asio::steady_timer deadline;
    StreamSlot slot;
    Endpoint from;
    std::array<std::uint8_t, 4> header{};
    std::uint32_t len = 0;
    std::string body;   // grows with what arrived, by StreamLimits::read_step at most
    bool done = false;  // finished, refused or timed out: nothing more happens to it
  };

  AgentOptions opts;
  // Membership thread only. Declared before io, whose destructor destroys pending handlers
  // (and with them the StreamSlots that count here).
  std::size_t open_streams = 0;
  std::uint64_t refused_busy = 0, refused_oversize = 0, timed_out = 0;
  // Gossip encryption (membership thread only).
  ReplayWindow replay;
  std::uint64_t seal_seq = 0;
  std::uint64_t dropped_unsealed = 0, dropped_unopened = 0, dropped_replayed = 0;
  std::uint64_t seal_bytes_out = 0, seal_bytes_in = 0;  // what sealing added on the wire
  asio::io_context io;
  udp::socket udp_socket{io};
  tcp::acceptor acceptor{io};
  asio::steady_timer timer{io};
  std::unique_ptr<Membership> m;  // touched on the membership thread only (after Start)
  std::thread thread;
  std::array<char, 65536> rbuf;
  udp::endpoint rfrom;
  bool stopped = false;  // membership thread only
  std::vector<NodeId> last_removed;
  bool refused_reported = false;
  std::chrono::steady_clock::time_point last_publish;

  mutable std::mutex mu;  // guards view, counters and keyring_copy
  std::optional<Keyring> keyring_copy;  // what keyring() answers: opts.security's, as last set
  std::shared_ptr<const ClusterView> view;
  Counters counters;
  TableStats tables;

  void Publish(bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_publish < kPublishEvery) return;
    last_publish = now;
    auto v = std::make_shared<const ClusterView>(m->View(Now()));
    if (opts.on_view) opts.on_view(*v);
    std::lock_guard<std::mutex> lock(mu);
    view = std::move(v);
    counters = WithTransport(m->counters());
    tables = m->table_stats();
  }

  Counters WithTransport(Counters c) const {
    c.streams_refused_busy = refused_busy;
    c.streams_refused_oversize = refused_oversize;
    c.streams_timed_out = timed_out;
    c.dropped_unsealed = dropped_unsealed;
    c.dropped_unopened = dropped_unopened;
    c.dropped_replayed = dropped_replayed;
    // The core counts the messages it sends and takes; on the wire, sealed ones are larger.
    c.bytes_out += seal_bytes_out;
    c.bytes_in += seal_bytes_in;
    return c;
  }

  bool Sealing() const { return opts.security && opts.security->mode != SealMode::kAccept; }

  // What goes on the wire for a message of the core's.
  std::string Outbound(std::string bytes) {
    if (!Sealing()) return bytes;
    std::string sealed = Seal(opts.security->keyring, opts.config.cluster_name,
                              SealHeader{opts.self, opts.generation, ++seal_seq}, bytes);
    seal_bytes_out += sealed.size() - bytes.size();
    return sealed;
  }

  // What the core gets of a message that arrived: false (counted) if it must be dropped; else
  // `*plain` holds it when it was sealed, and `*view` points at what to hand on.
  bool Inbound(std::string_view bytes, std::string* plain, std::string_view* view) {
    *view = bytes;
    if (!opts.security) return true;  // plain gossip: the core drops what does not decode
    SealHeader h;
    switch (Open(opts.security->keyring, opts.config.cluster_name, bytes, &h, plain)) {
      case OpenResult::kNotSealed:
        if (opts.security->mode != SealMode::kRequire) return true;
        ++dropped_unsealed;
        return false;
      case OpenResult::kMalformed:
      case OpenResult::kNoKey:
        ++dropped_unopened;
        return false;
      case OpenResult::kOk:
        break;
    }
    if (!replay.Accept(h)) {
      ++dropped_replayed;
      return false;
    }
    seal_bytes_in += bytes.size() - plain->size();
    *view = *plain;
    return true;
  }

  // Counters alone, without rebuilding the view: cheap enough for every refused stream.
  void PublishCounters() {
    const Counters c = WithTransport(m->counters());
    std::lock_guard<std::mutex> lock(mu);
    counters = c;
    tables = m->table_stats();
  }

  void SendStream(Outgoing o) {
    auto sock = std::make_shared<tcp::socket>(io);
    auto data = std::make_shared<std::string>();
    o.bytes = Outbound(std::move(o.bytes));
    const auto n = static_cast<std::uint32_t>(o.bytes.size());
    data->push_back(static_cast<char>(n >> 24));
    data->push_back(static_cast<char>(n >> 16));
    data->push_back(static_cast<char>(n >> 8));
    data->push_back(static_cast<char>(n));
    data->append(o.bytes);
    auto deadline = std::make_shared<asio::steady_timer>(io, opts.streams.timeout);
    deadline->async_wait([sock](const boost::system::error_code& ec) {
      if (!ec) {
        boost::system::error_code ignored;
        sock->close(ignored);
      }
    });
    // From the gossip address, as the datagrams: peers see one address per node.
    if (opts.gossip.ip != 0) {
      boost::system::error_code ec;
      sock->open(tcp::v4(), ec);
      if (!ec) sock->bind(tcp::endpoint(Addr(opts.gossip), 0), ec);
      if (ec) return;  // a push-pull is retried at the next interval
    }
    sock->async_connect(
        tcp::endpoint(Addr(o.to), o.to.port),
        [sock, data, deadline](const boost::system::error_code& ec) {
          if (ec) return;
          asio::async_write(*sock, asio::buffer(*data),
                            [sock, data, deadline](const boost::system::error_code&, std::size_t) {
                              deadline->cancel();
                              boost::system::error_code ignored;
                              sock->shutdown(tcp::socket::shutdown_both, ignored);
                              sock->close(ignored);
                            });
        });
  }

  void Flush() {
    for (Outgoing& o : m->TakeOutgoing()) {
      if (o.stream) {
        SendStream(std::move(o));
        continue;
      }
      auto data = std::make_shared<std::string>(Outbound(std::move(o.bytes)));
      udp_socket.async_send_to(asio::buffer(*data), udp::endpoint(Addr(o.to), o.to.port),
                               [data](const boost::system::error_code&, std::size_t) {});
    }
  }

  void Arm() {
    // A refused node has nothing to do ever again (NextDeadline is Time::max(), which would
    // overflow the cast to nanoseconds): it looks again in an hour.
    const Time next = std::min(m->NextDeadline(), Now() + std::chrono::hours(1));
    const auto at = std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(next));
    timer.expires_at(at);
    timer.async_wait([this](const boost::system::error_code& ec) {
      // A cancelled wait, or one that completed just before a re-arm: the flag and the code
      // both guard (TOOLCHAIN.md, pitfall 8). An early Tick is harmless.
      if (ec || stopped) return;
      m->Tick(Now());
      AfterEvent(/*force_publish=*/true);
    });
  }

  void AfterEvent(bool force_publish = false) {
    Flush();
    Publish(force_publish);
    std::vector<NodeId> removed = m->Removed();
    if (removed != last_removed) {
      last_removed = removed;
      if (opts.on_removed_changed) opts.on_removed_changed(removed, m->RemovedAges());
    }
    if (m->refused() && !refused_reported) {
      refused_reported = true;
      if (opts.on_refused) opts.on_refused();
    }
    Arm();
  }

  void ReceiveLoop() {
    udp_socket.async_receive_from(
        asio::buffer(rbuf), rfrom, [this](const boost::system::error_code& ec, std::size_t n) {
          if (stopped || ec == asio::error::operation_aborted) return;
          if (!ec) {
            std::string plain;
            std::string_view msg;
            if (Inbound(std::string_view(rbuf.data(), n), &plain, &msg)) {
              m->Receive(FromAsio(rfrom), msg, false, Now());
              AfterEvent();
            } else {
              PublishCounters();
            }
          }
          ReceiveLoop();
        });
  }

  // Reads one length-prefixed message. Refused (and counted) if it announces more than
  // max_bytes or is not complete within the timeout; memory grows with what arrives.
  void ReadStream(tcp::socket s) {
    auto st = std::make_shared<IncomingStream>(std::move(s), io, &open_streams);
    boost::system::error_code ignored;
    st->from = FromAsio(st->sock.remote_endpoint(ignored));
    st->deadline.expires_after(opts.streams.timeout);
    st->deadline.async_wait([this, st](const boost::system::error_code& ec) {
      if (ec || st->done || stopped) return;
      ++timed_out;
      Finish(*st);
      PublishCounters();
    });
    asio::async_read(st->sock, asio::buffer(st->header),
                     [this, st](const boost::system::error_code& ec, std::size_t) {
                       if (st->done || stopped) return;
                       if (ec) return Finish(*st);
                       const auto& h = st->header;
                       st->len = std::uint32_t{h[0]} << 24 | std::uint32_t{h[1]} << 16 |
                                 std::uint32_t{h[2]} << 8 | h[3];
                       if (st->len > opts.streams.max_bytes) {
                         ++refused_oversize;
                         Finish(*st);
                         PublishCounters();
                         return;
                       }
                       ReadBody(st);
                     });
  }

  void ReadBody(const std::shared_ptr<IncomingStream>& st) {
    const std::size_t have = st->body.size();
    if (have == st->len) {
      Finish(*st);
      std::string plain;
      std::string_view msg;
      if (!Inbound(st->body, &plain, &msg)) return PublishCounters();
      m->Receive(st->from, msg, true, Now());
      AfterEvent();
      return;
    }
    const std::size_t want =
        std::min<std::size_t>(std::max<std::size_t>(opts.streams.read_step, 1), st->len - have);
    st->body.resize(have + want);
    st->sock.async_read_some(asio::buffer(st->body.data() + have, want),
                             [this, st, have](const boost::system::error_code& ec, std::size_t n) {
                               if (st->done || stopped) return;
                               st->body.resize(have + n);
                               if (ec) return Finish(*st);
                               ReadBody(st);
                             });
  }

  static void Finish(IncomingStream& st) {
    st.done = true;
    st.deadline.cancel();
    boost::system::error_code ignored;
    st.sock.close(ignored);
  }

  void AcceptLoop() {
    acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (stopped || ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (open_streams >= opts.streams.max_incoming) {
          ++refused_busy;
          boost::system::error_code ignored;
          s.close(ignored);
          PublishCounters();
        } else {
          ReadStream(std::move(s));
        }
      }
      AcceptLoop();
    });
  }

  void StopNow() {
    stopped = true;
    boost::system::error_code ignored;
    timer.cancel();
    udp_socket.close(ignored);
    acceptor.close(ignored);
    io.stop();
  }

  bool Bind(Endpoint* bound, std::string* error) {
    // UDP and TCP share one port number. With port 0, take UDP's and retry if TCP's is taken.
    for (int attempt = 0; attempt < 20; ++attempt) {
      boost::system::error_code ec;
      udp_socket.open(udp::v4(), ec);
      if (!ec) udp_socket.bind(udp::endpoint(Addr(opts.gossip), opts.gossip.port), ec);
      if (ec) {
        *error = "cannot bind UDP " + ToString(opts.gossip) + ": " + ec.message();
        return false;
      }
      const std::uint16_t port = udp_socket.local_endpoint().port();
      acceptor.open(tcp::v4(), ec);
      if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor.bind(tcp::endpoint(Addr(opts.gossip), port), ec);
      if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (!ec) {
        *bound = Endpoint{opts.gossip.ip, port};
        return true;
      }
      boost::system::error_code ignored;
      acceptor.close(ignored);
      udp_socket.close(ignored);
      if (opts.gossip.port != 0) {
        *error = "cannot listen on TCP " + ToString(opts.gossip) + ": " + ec.message();
        return false;
      }
    }
    *error = "no free port for gossip on " + ToString(opts.gossip);
    return false;
  }
};

GossipAgent::GossipAgent(AgentOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

GossipAgent::~GossipAgent() {
  if (impl_->thread.joinable()) {
    asio::post(impl_->io, [this]() { impl_->StopNow(); });
    impl_->thread.join();
  }
}

bool GossipAgent::Start(std::string* error) {
  Impl& d = *impl_;
  if (!d.Bind(&bound_, error)) return false;
  identity_ = bound_;
  if (d.opts.advertise_ip != 0) identity_.ip = d.opts.advertise_ip;
  d.m = std::make_unique<Membership>(d.opts.config, d.opts.self, identity_, d.opts.generation,
                                     d.opts.app, d.opts.seed, Now());
  d.m->RestoreRemoved(d.opts.removed, d.opts.removed_ages_s);
  d.m->RestoreMembers(d.opts.restored, Now());
  d.last_removed = d.m->Removed();
  if (!d.opts.seeds.empty()) d.m->Join(d.opts.seeds, Now());
  d.Publish(true);
  d.ReceiveLoop();
  d.AcceptLoop();
  d.Flush();
  d.Arm();
  d.thread = std::thread([&d]() { d.io.run(); });
  return true;
}

void GossipAgent::LeaveAndStop(Duration linger) {
  Impl& d = *impl_;
  if (!d.thread.joinable()) return;
  asio::post(d.io, [&d, linger]() {
    d.m->Leave(Now());
    d.AfterEvent(true);
    auto t = std::make_shared<asio::steady_timer>(d.io, linger);
    t->async_wait([&d, t](const boost::system::error_code&) { d.StopNow(); });
  });
  d.thread.join();
}

std::shared_ptr<const ClusterView> GossipAgent::view() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->view;
}

Counters GossipAgent::counters() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->counters;
}

std::optional<Keyring> GossipAgent::keyring() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->keyring_copy;
}

void GossipAgent::SetKeyring(Keyring ring, std::function<void()> done) {
  asio::post(impl_->io, [this, ring = std::move(ring), done = std::move(done)]() mutable {
    if (impl_->opts.security) {
      impl_->opts.security->keyring = ring;
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->keyring_copy = std::move(ring);
    }
    if (done) done();
  });
}

TableStats GossipAgent::table_stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->tables;
}

void GossipAgent::Remove(NodeId id, std::function<void(bool)> done) {
  asio::post(impl_->io, [this, id, done = std::move(done)]() {
    const bool ok = impl_->m->Remove(id, Now());
    impl_->AfterEvent(true);
    done(ok);
  });
}

void GossipAgent::MutateApp(std::function<void(AppState&)> change, std::function<void()> done) {
  asio::post(impl_->io, [this, change = std::move(change), done = std::move(done)]() {
    const Membership& m = *impl_->m;
    std::optional<MemberView> self = m.Lookup(impl_->opts.self, Now());
    AppState app = self ? self->app : impl_->opts.app;
    const AppState before = app;
    change(app);
    if (!(app == before)) impl_->m->UpdateApp(app, Now());
    impl_->AfterEvent(true);  // publishes the view: `done` runs once readers can see the change
    if (done) done();
  });
}

void GossipAgent::Reseed(std::vector<Endpoint> seeds) {
  asio::post(impl_->io, [this, seeds = std::move(seeds)]() {
    if (impl_->m->synced() || seeds.empty()) return;
    impl_->m->Join(seeds, Now());
    impl_->AfterEvent(false);
  });
}

void GossipAgent::UpdateApp(AppState app) {
  asio::post(impl_->io, [this, app = std::move(app)]() {
    impl_->m->UpdateApp(app, Now());
    impl_->AfterEvent(true);
  });
}

}  // namespace kv::membership
