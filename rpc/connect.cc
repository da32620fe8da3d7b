#include "rpc/connect.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <kj/debug.h>

#include "rpc/client_conn.h"

namespace kv::rpc {
namespace {

bool ParseIpv4(const std::string& host, in_addr* out) {
  return inet_pton(AF_INET, host.c_str(), out) == 1;
}

}  // namespace

std::string SourceHostOf(const std::string& listen) {
  std::string host;
  int port = 0;
  if (!ParseHostPort(listen, true, &host, &port).ok()) return "";
  in_addr a{};
  if (!ParseIpv4(host, &a) || a.s_addr == htonl(INADDR_ANY)) return "";
  return host;
}

kj::Promise<kj::Own<kj::AsyncIoStream>> Dial(kj::AsyncIoProvider& provider,
                                             kj::LowLevelAsyncIoProvider& low_level,
                                             const std::string& host_port,
                                             const std::string& source_host) {
  in_addr src{};
  if (source_host.empty() || (ParseIpv4(source_host, &src) && src.s_addr == htonl(INADDR_ANY))) {
    return provider.getNetwork().parseAddress(host_port).then(
        [](kj::Own<kj::NetworkAddress> addr) { return addr->connect(); });
  }
  if (!ParseIpv4(source_host, &src)) {
    return KJ_EXCEPTION(FAILED, "source address is not an IPv4 address", source_host);
  }
  std::string host;
  int port = 0;
  Status parsed = ParseHostPort(host_port, false, &host, &port);
  if (!parsed.ok()) return KJ_EXCEPTION(FAILED, parsed.message());
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<std::uint16_t>(port));
  if (!ParseIpv4(host, &dst.sin_addr)) {
    return KJ_EXCEPTION(FAILED, "binding a source address needs an IPv4 peer address", host_port);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return KJ_EXCEPTION(DISCONNECTED, "socket() failed", strerror(errno));
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr = src;
  from.sin_port = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&from), sizeof(from)) != 0) {
    const int err = errno;
    ::close(fd);
    return KJ_EXCEPTION(DISCONNECTED, "cannot bind the source address", source_host,
                        strerror(err));
  }
  // As KJ does on the streams it connects itself: every write carries a whole loop turn's
  // messages (buffered_stream.h), so Nagle's algorithm only holds a small request back until
  // the peer's delayed ACK, 40 ms a step (a repair of 212 agreeing ranges took 9.4 s, not 0.1).
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    const int err = errno;
    ::close(fd);
    return KJ_EXCEPTION(DISCONNECTED, "setsockopt(TCP_NODELAY) failed", strerror(err));
  }
  using Flags = kj::LowLevelAsyncIoProvider;
  return low_level.wrapConnectingSocketFd(
      fd, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst),
      Flags::TAKE_OWNERSHIP | Flags::ALREADY_CLOEXEC | Flags::ALREADY_NONBLOCK);
}

}  // namespace kv::rpc
