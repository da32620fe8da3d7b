// The small value types of membership.h: endpoints, names, the view lookup, and the check.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "membership/check.h"
#include "membership/membership.h"

namespace kv::membership {

void MembershipCheckFailed(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "%s:%d: membership invariant broken: %s\n", file, line, expr);
  std::abort();
}

std::string ToString(const Endpoint& e) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u:%u", (e.ip >> 24) & 0xff, (e.ip >> 16) & 0xff,
                (e.ip >> 8) & 0xff, e.ip & 0xff, static_cast<unsigned>(e.port));
  return buf;
}

namespace {

// Reads a decimal number of at most `max` from the front of `s`: digits only, no sign, no
// leading zeros beyond a lone "0".
bool TakeNumber(std::string_view* s, std::uint32_t max, std::uint32_t* out) {
  std::size_t n = 0;
  while (n < s->size() && n < 6 && (*s)[n] >= '0' && (*s)[n] <= '9') ++n;
  if (n == 0 || (n > 1 && (*s)[0] == '0')) return false;
  std::uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(s->data(), s->data() + n, v);
  if (ec != std::errc() || ptr != s->data() + n || v > max) return false;
  s->remove_prefix(n);
  *out = v;
  return true;
}

}  // namespace

bool ParseEndpoint(std::string_view s, Endpoint* out) {
  std::uint32_t ip = 0;
  for (int i = 0; i < 4; ++i) {
    std::uint32_t octet = 0;
    if (!TakeNumber(&s, 255, &octet)) return false;
    ip = (ip << 8) | octet;
    const char sep = i < 3 ? '.' : ':';
    if (s.empty() || s[0] != sep) return false;
    s.remove_prefix(1);
  }
  std::uint32_t port = 0;
  if (!TakeNumber(&s, 65535, &port) || !s.empty()) return false;
  out->ip = ip;
  out->port = static_cast<std::uint16_t>(port);
  return true;
}

const char* Name(Liveness l) {
  switch (l) {
    case Liveness::kUp:
      return "UP";
    case Liveness::kSuspect:
      return "SUSPECT";
    case Liveness::kDown:
      return "DOWN";
    case Liveness::kLeft:
      return "LEFT";
    case Liveness::kRemoved:
      return "REMOVED";
  }
  return "?";
}

const char* Name(NodeState s) {
  switch (s) {
    case NodeState::kJoining:
      return "joining";
    case NodeState::kNormal:
      return "normal";
    case NodeState::kLeaving:
      return "leaving";
    case NodeState::kLeft:
      return "left";
  }
  return "?";
}

const MemberView* ClusterView::Find(NodeId id) const {
  auto it = std::lower_bound(members.begin(), members.end(), id,
                             [](const MemberView& m, NodeId v) { return m.id < v; });
  if (it == members.end() || it->id != id) return nullptr;
  return &*it;
}

}  // namespace kv::membership
