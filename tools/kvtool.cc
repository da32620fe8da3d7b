// kvtool: the command-line client.
//
//   kvtool [--host HOST:PORT] [--json] [--timeout-ms MS] put KEY VALUE [--context CTX] [-c C]
//   kvtool ... get KEY [--consistency one|quorum|all] [--local]
//   kvtool ... delete KEY [--context CTX] [--consistency one|quorum|all]
//   kvtool ... status | ring [--replicas N] | removenode ID | stats | repair [--dry-run]
//   kvtool ... decommission [--no-wait] | cleanup
//   kvtool ... bench [options]
//   kvtool ... keyring list | install KEY | use KEY | remove KEY    every member's gossip keyring
//   kvtool keygen                      a new gossip key (base64), asking no node
//
// Global options (--host, --json, --timeout-ms, the TLS ones) go before or after the command.
// --host defaults to $KV_HOST, else 127.0.0.1:7701; it takes a list (a,b,c): a node that cannot
// be reached is passed over for the next, and a read whose node fails or times out is asked
// again of the next, but a put or delete whose outcome is unknown is never sent twice (it
// says so). Commands about one node (stats, repair, decommission, cleanup, get --local, bench)
// take one host. VALUE "-" reads the value from stdin, binary safe. Contexts are printed and
// taken as base64.
// Exit codes: 0 ok, 1 key not found, 2 bad usage or rejected input, 3 node unreachable or the
// request failed. Every non-zero exit prints one line on stderr saying why.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "membership/gossip_seal.h"
#include "rpc/client_conn.h"
#include "rpc/tls.h"
#include "tools/bench.h"
#include "tools/text.h"

namespace {

using kv::Status;

constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;
constexpr int kExitUsage = 2;
constexpr int kExitFailed = 3;

struct Globals {
  std::vector<std::string> hosts = {"127.0.0.1:7701"};  // --host, in the order given
  // The entry of `hosts` in use: Connect moves past those it cannot reach, and a read moves
  // past one that fails it.
  mutable std::size_t current = 0;
  const std::string& host() const { return hosts[std::min(current, hosts.size() - 1)]; }
  bool json = false;
  int timeout_ms = 10000;
  kv::rpc::Consistency consistency = kv::rpc::Consistency::kDefault;
  bool local = false;
  kv::rpc::TlsSettings tls_settings;
  std::unique_ptr<kv::rpc::Tls> tls;  // with --tls-cert, --tls-key and --tls-ca
};

int ExitFor(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
      return kExitOk;
    case Status::Code::kNotFound:
      return kExitNotFound;
    case Status::Code::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

// One line on stderr; newlines inside server messages are flattened.
int Complain(int code, const std::string& what) {
  std::string line = what;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "kvtool: %s\n", line.c_str());
  return code;
}

// Whether kvtool talks TLS (set once in main): a node that requires TLS closes a plain
// connection at its first byte, which the first request sees as a disconnection.
bool g_plain = true;

int Report(const Status& s) {
  std::string line = s.ToString();
  if (g_plain && s.code() == Status::Code::kUnavailable &&
      line.find("isconnected") != std::string::npos) {
    line += " (if the node requires TLS, give --tls-cert, --tls-key and --tls-ca)";
  }
  return Complain(ExitFor(s), line);
}

// JSON string for bytes: as is when valid UTF-8, else base64 and marked so.
nlohmann::json Blob(const std::string& bytes) {
  if (kv::tools::IsValidUtf8(bytes)) return {{"value", bytes}, {"encoding", "utf-8"}};
  return {{"value", kv::tools::Base64Encode(bytes)}, {"encoding", "base64"}};
}

std::string JsonKey(const std::string& key) {
  // Keys come from argv and may not be UTF-8: keep them readable rather than failing.
  return nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void PrintJson(nlohmann::json j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

kv::Result<std::string> DecodeContextFlag(const std::string& ctx) {
  if (ctx.empty()) return std::string();
  auto bytes = kv::tools::Base64Decode(ctx);
  if (!bytes) return Status::InvalidArgument("--context is not valid base64");
  return *bytes;
}

// A connection to the node in use, or to the next of --host that can be reached: a node that
// cannot be connected to was sent nothing, so passing it over is safe for every command.
kv::Result<std::unique_ptr<kv::rpc::BlockingClient>> Connect(const Globals& g) {
  std::string tried;
  Status last;
  for (; g.current < g.hosts.size(); ++g.current) {
    auto c = kv::rpc::BlockingClient::Connect(g.hosts[g.current],
                                              std::chrono::milliseconds(g.timeout_ms), "",
                                              g.tls.get());
    if (c.ok() || !kv::rpc::IsUnreachable(c.status())) return c;
    last = c.status();
    tried += (tried.empty() ? "" : "; ") + c.status().message();
  }
  g.current = g.hosts.size() - 1;  // FollowMovement polls again: start over from the last
  if (g.hosts.size() == 1) return last;
  return Status::Unavailable("no node of --host could be reached: " + tried);
}

// Whether a read that failed with `s` is asked again of the next node of --host: when the node
// could not be reached or did not answer in time, and another node remains.
bool NextNodeFor(const Globals& g, const Status& s) {
  if (!(kv::rpc::IsUnreachable(s) || s.code() == Status::Code::kTimeout)) return false;
  if (g.current + 1 >= g.hosts.size()) return false;
  ++g.current;
  return true;
}

// A put or delete that failed with `s` may have been applied when the node failed or timed out
// after it was sent: it is not sent again to another node (a retried blind put would add a
// second sibling), and with several hosts the message says why.
Status UnknownOutcome(const Globals& g, const char* what, Status s) {
  if (g.hosts.size() < 2 ||
      !(kv::rpc::IsUnreachable(s) || s.code() == Status::Code::kTimeout)) {
    return s;
  }
  return Status(s.code(), std::string(what) + " outcome unknown, not retried on another node " +
                              "(it may have been applied; read the key to know): " +
                              s.message());
}

int DoGet(const Globals& g, const std::string& key) {
  kv::rpc::GetReply r;
  do {
    auto client = Connect(g);
    if (!client.ok()) return Report(client.status());
    r = client.value()->Get(key, g.consistency, g.local);
  } while (!r.status.ok() && NextNodeFor(g, r.status));
  if (!r.status.ok()) {
    if (r.status.IsNotFound()) return Complain(kExitNotFound, "not found: " + JsonKey(key));
    return Report(r.status);
  }
  const std::string ctx = kv::tools::Base64Encode(r.context);
  if (g.json) {
    nlohmann::json siblings = nlohmann::json::array();
    for (const auto& s : r.siblings) siblings.push_back(Blob(s));
    nlohmann::json out = {{"key", key}, {"siblings", siblings}, {"context", ctx}};
    PrintJson(out);
    return kExitOk;
  }
  if (r.siblings.size() == 1) {
    std::cout.write(r.siblings[0].data(), r.siblings[0].size());
    std::cout << "\n";
  } else {
    std::cout << "(" << r.siblings.size() << " siblings)\n";
    for (std::size_t i = 0; i < r.siblings.size(); ++i) {
      std::cout << (i + 1) << ") ";
      std::cout.write(r.siblings[i].data(), r.siblings[i].size());
      std::cout << "\n";
    }
  }
  std::cout << "context: " << ctx << "\n";
  return kExitOk;
}

int DoPut(const Globals& g, const std::string& key, const std::string& value_arg,
          const std::string& ctx_arg) {
  auto ctx = DecodeContextFlag(ctx_arg);
  if (!ctx.ok()) return Report(ctx.status());
  std::string value = value_arg;
  if (value_arg == "-") {
    std::ios::sync_with_stdio(false);
    std::cin >> std::noskipws;
    value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return Complain(kExitUsage, "cannot read the value from stdin");
  }
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::WriteReply r = client.value()->Put(key, value, ctx.value(), g.consistency);
  if (!r.status.ok()) return Report(UnknownOutcome(g, "put:", r.status));
  const std::string out_ctx = kv::tools::Base64Encode(r.context);
  if (g.json) {
    PrintJson({{"key", key}, {"context", out_ctx}});
  } else {
    std::cout << "OK\ncontext: " << out_ctx << "\n";
  }
  return kExitOk;
}

int DoDelete(const Globals& g, const std::string& key, const std::string& ctx_arg) {
  auto ctx = DecodeContextFlag(ctx_arg);
  if (!ctx.ok()) return Report(ctx.status());
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::WriteReply r = client.value()->Delete(key, ctx.value(), g.consistency);
  if (r.status.IsNotFound()) return Complain(kExitNotFound, "not found: " + JsonKey(key));
  if (!r.status.ok()) return Report(UnknownOutcome(g, "delete:", r.status));
  if (g.json) {
    PrintJson({{"key", key}, {"deleted", true}, {"context", kv::tools::Base64Encode(r.context)}});
  } else {
    std::cout << "OK\n";
  }
  return kExitOk;
}

std::string Hex(std::uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

std::string HumanBytes(std::uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

nlohmann::json MemberJson(const kv::rpc::MemberInfo& m) {
  return {{"id", Hex(m.id)},
          {"rpc", m.rpc},
          {"gossip", m.gossip},
          {"status", m.status},
          {"state", m.state},
          {"generation", m.generation},
          {"incarnation", m.incarnation},
          {"phi", m.phi},
          {"tokens", m.tokens},
          {"owns", m.owns * 100},
          {"load", m.load},
          {"rack", m.rack},
          {"hints", m.hints},
          {"last_repair", m.last_repair > 0 ? nlohmann::json(m.last_repair) : nlohmann::json()},
          {"repair_keys_moved", m.repair_keys_moved}};
}

nlohmann::json MovementJson(const kv::rpc::MovementView& m) {
  if (!m.active) return nlohmann::json();
  nlohmann::json j = {{"kind", m.kind},         {"driver", Hex(m.driver)},
                      {"subject", Hex(m.subject)}, {"reads_new", m.reads_new},
                      {"description", m.description}};
  if (m.progress) {
    j["phase"] = m.phase;
    j["note"] = m.note;
    j["copies_done"] = m.copies_done;
    j["copies_total"] = m.copies_total;
    j["bytes_copied"] = m.bytes_copied;
  }
  return j;
}

// "join of 00ab... (copying): 12 of 40 ranges copied, 3.1 MiB; waiting for ..."
std::string MovementLine(const kv::rpc::MovementView& m) {
  std::string line = m.description;
  if (m.progress) {
    line += ": " + m.phase + ", " + std::to_string(m.copies_done) + " of " +
            std::to_string(m.copies_total) + " range copies done, " + HumanBytes(m.bytes_copied) +
            " copied";
    if (!m.note.empty()) line += "; " + m.note;
  }
  return line;
}

int DoStatus(const Globals& g) {
  kv::rpc::StatusReply r;
  do {
    auto client = Connect(g);
    if (!client.ok()) return Report(client.status());
    r = client.value()->ClusterStatus();
  } while (!r.status.ok() && NextNodeFor(g, r.status));
  if (!r.status.ok()) return Report(r.status);
  if (g.json) {
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& m : r.members) nodes.push_back(MemberJson(m));
    PrintJson({{"nodes", nodes}, {"movement", MovementJson(r.movement)}});
    return kExitOk;
  }
  std::printf("%-8s %-16s %-21s %-21s %-8s %5s %5s %7s %6s %7s %10s %7s %-14s %s\n", "Status",
              "ID", "RPC", "Gossip", "State", "Gen", "Inc", "Phi", "Tokens", "Owns", "Load",
              "Hints", "Repaired", "Rack");
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  for (const auto& m : r.members) {
    // "12s ago/340" : when the member last repaired, and the keys that moved.
    std::string repaired = "-";
    if (m.last_repair > 0) {
      repaired = std::to_string(static_cast<long long>(std::max(0.0, now - m.last_repair))) +
                 "s ago/" + std::to_string(m.repair_keys_moved);
    }
    std::printf("%-8s %-16s %-21s %-21s %-8s %5llu %5llu %7.2f %6u %6.1f%% %10s %7llu %-14s %s\n",
                m.status.c_str(), Hex(m.id).c_str(), m.rpc.c_str(), m.gossip.c_str(),
                m.state.c_str(), static_cast<unsigned long long>(m.generation),
                static_cast<unsigned long long>(m.incarnation), m.phi, m.tokens, m.owns * 100,
                HumanBytes(m.load).c_str(), static_cast<unsigned long long>(m.hints),
                repaired.c_str(), m.rack.c_str());
  }
  std::printf("Movement: %s\n", r.movement.active ? MovementLine(r.movement).c_str() : "none");
  return kExitOk;
}

// Follows the movement the host drives until it drives none: prints its progress now and then
// (not with --json). Returns the last view of it; `gone` tells whether the host stopped
// answering (a decommissioned node exits), and `left` whether another member then saw it LEFT.
kv::rpc::MovementView FollowMovement(const Globals& g, bool* gone, bool* left = nullptr) {
  kv::rpc::MovementView last;
  *gone = false;
  if (left != nullptr) *left = false;
  std::string printed;
  std::vector<kv::rpc::MemberInfo> members;  // as the host last listed them
  int failures = 0;  // in a row: a busy node may miss one answer; a stopped one misses all
  for (;; std::this_thread::sleep_for(std::chrono::milliseconds(500))) {  // poll interval
    auto client = Connect(g);
    kv::rpc::StatusReply r;
    if (client.ok()) r = client.value()->ClusterStatus();
    if (!client.ok() || !r.status.ok()) {
      if (client.ok()) client.value().reset();
      // Does another member see the host LEFT? Then it is done, without waiting out the misses.
      // (One client at a time: each has its own event loop on this thread.) The host is known
      // by the id of the movement it drove, or else by its address.
      int asked = 0;
      for (const auto& m : members) {
        if (asked == 3) break;
        const bool is_host = last.driver != 0 ? m.id == last.driver : m.rpc == g.host();
        if (is_host || m.status != "UP") continue;
        auto other = kv::rpc::BlockingClient::Connect(m.rpc, std::chrono::milliseconds(g.timeout_ms));
        if (!other.ok()) continue;
        auto seen = other.value()->ClusterStatus();
        if (!seen.status.ok()) continue;
        ++asked;
        for (const auto& o : seen.members) {
          const bool is_host = last.driver != 0 ? o.id == last.driver : o.rpc == g.host();
          if (is_host && o.status == "LEFT") {
            *gone = true;
            if (left != nullptr) *left = true;
            return last;
          }
        }
      }
      if (++failures >= 10) {
        *gone = true;
        return last;
      }
      continue;
    }
    failures = 0;
    members = r.members;
    if (!r.movement.progress) {
      last.outcome = r.movement.outcome;
      return last;
    }
    last = r.movement;
    const std::string line = MovementLine(r.movement);
    if (!g.json && line != printed) {
      std::fprintf(stderr, "%s\n", line.c_str());
      printed = line;
    }
  }
}

int DoDecommission(const Globals& g, bool wait) {
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  Status s = client.value()->Decommission();
  if (!s.ok()) return Complain(ExitFor(s), "decommission: " + s.ToString());
  if (!wait) {
    std::printf("decommission started\n");
    return kExitOk;
  }
  client.value().reset();
  bool gone = false, left = false;
  kv::rpc::MovementView last = FollowMovement(g, &gone, &left);
  // Done: the node leaves and stops (it may still answer for a moment while it does).
  if (!gone && last.outcome != "done") {
    return Complain(kExitFailed, "decommission failed and was withdrawn: " +
                                     (last.outcome.empty() ? last.note : last.outcome));
  }
  // It stopped answering, and no other member saw it leave: it crashed or was stopped before
  // its decommission finished (it is still in the ring; run decommission again once it is up).
  if (gone && !left && last.phase != "finishing" && last.phase != "done") {
    return Complain(kExitFailed, "the node stopped answering before its decommission finished "
                                 "(last seen: " + MovementLine(last) + "); it is still in the "
                                 "ring: start it and decommission again");
  }
  if (g.json) {
    PrintJson({{"decommissioned", g.host()}, {"bytes_copied", last.bytes_copied}});
  } else {
    std::printf("decommissioned %s: its ranges were copied to their new replicas (%s), it left "
                "and stopped\n",
                g.host().c_str(), HumanBytes(last.bytes_copied).c_str());
  }
  return kExitOk;
}

int DoCleanup(const Globals& g) {
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::CleanupReply r = client.value()->Cleanup();
  if (!r.status.ok()) return Complain(ExitFor(r.status), "cleanup: " + r.status.ToString());
  if (g.json) {
    PrintJson({{"keys_deleted", r.keys_deleted}, {"bytes_freed", r.bytes_freed}});
  } else {
    std::printf("deleted %llu keys of ranges this node no longer replicates, %s freed\n",
                static_cast<unsigned long long>(r.keys_deleted), HumanBytes(r.bytes_freed).c_str());
  }
  return kExitOk;
}

// `keyring`: the request goes to --host, which applies it and asks every other live member
// (rpc/keyring.h); one line per member, then what the keys look like across the cluster.
int DoKeyring(const Globals& g, const std::string& verb, const std::string& key_text) {
  kv::rpc::KeyringOp op = kv::rpc::KeyringOp::kList;
  if (verb == "install") op = kv::rpc::KeyringOp::kInstall;
  if (verb == "use") op = kv::rpc::KeyringOp::kUse;
  if (verb == "remove") op = kv::rpc::KeyringOp::kRemove;
  std::string key;
  if (op == kv::rpc::KeyringOp::kList) {
    if (!key_text.empty()) return Complain(kExitUsage, "keyring list takes no KEY");
  } else {
    if (key_text.empty()) return Complain(kExitUsage, "keyring " + verb + " needs a KEY");
    kv::membership::GossipKey k;
    std::string error;
    if (!kv::membership::GossipKeyFromText(key_text, &k, &error)) {
      return Complain(kExitUsage, "keyring " + verb + ": KEY: " + error);
    }
    key.assign(reinterpret_cast<const char*>(k.data()), k.size());
  }
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::KeyringReply r = client.value()->Keyring(op, key);
  if (r.nodes.empty()) return Complain(ExitFor(r.status), "keyring: " + r.status.ToString());
  // Per key: on how many members it is installed, and on how many it is the primary.
  std::map<std::string, std::pair<int, int>> spread;
  int answered = 0;
  for (const auto& n : r.nodes) {
    if (!n.status.ok()) continue;
    ++answered;
    for (std::size_t i = 0; i < n.keys.size(); ++i) {
      ++spread[n.keys[i]].first;
      spread[n.keys[i]].second += i == 0;
    }
  }
  if (g.json) {
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& n : r.nodes) {
      nlohmann::json j = {{"id", Hex(n.id)}, {"address", n.address}, {"ok", n.status.ok()}};
      if (!n.status.ok()) j["error"] = n.status.ToString();
      if (n.status.ok()) {
        j["primary"] = n.keys.empty() ? "" : n.keys.front();
        j["keys"] = n.keys;
      }
      nodes.push_back(j);
    }
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& [fp, counts] : spread) {
      keys.push_back({{"key", fp}, {"installed", counts.first}, {"primary", counts.second}});
    }
    PrintJson({{"operation", verb},
               {"ok", r.status.ok()},
               {"members", r.nodes.size()},
               {"answered", answered},
               {"nodes", nodes},
               {"keys", keys}});
  } else {
    for (const auto& n : r.nodes) {
      std::string line = Hex(n.id) + "  " + n.address + "  ";
      if (n.status.ok()) {
        line += "ok   primary " + (n.keys.empty() ? std::string("-") : n.keys.front());
        line += "  keys";
        for (const auto& k : n.keys) line += " " + k;
      } else {
        line += "FAILED  " + n.status.ToString();
      }
      std::printf("%s\n", line.c_str());
    }
    for (const auto& [fp, counts] : spread) {
      std::printf("key %s: installed on %d of %zu members, primary on %d\n", fp.c_str(),
                  counts.first, r.nodes.size(), counts.second);
    }
  }
  if (!r.status.ok()) return Complain(ExitFor(r.status), "keyring " + verb + ": " + r.status.ToString());
  return kExitOk;
}

int DoRing(const Globals& g, std::uint32_t replicas) {
  kv::rpc::RingReply r;
  do {
    auto client = Connect(g);
    if (!client.ok()) return Report(client.status());
    r = client.value()->Ring(replicas);
  } while (!r.status.ok() && NextNodeFor(g, r.status));
  if (!r.status.ok()) return Report(r.status);
  std::map<std::uint64_t, std::string> rpc_of;
  for (const auto& m : r.members) rpc_of[m.id] = m.rpc;
  if (g.json) {
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& range : r.ranges) {
      nlohmann::json reps = nlohmann::json::array();
      for (auto id : range.replicas) reps.push_back({{"id", Hex(id)}, {"rpc", rpc_of[id]}});
      ranges.push_back({{"start", std::to_string(range.begin)},
                        {"end", std::to_string(range.end)},
                        {"replicas", reps}});
    }
    std::size_t n = replicas;  // 0 asked for the node's N: as many as the ranges show
    for (const auto& range : r.ranges) n = std::max(n, range.replicas.size());
    PrintJson({{"replicas", n}, {"ranges", ranges}});
    return kExitOk;
  }
  std::printf("%-20s %-20s replicas (first is primary)\n", "start", "end (exclusive)");
  for (const auto& range : r.ranges) {
    std::printf("%-20llu %-20s", static_cast<unsigned long long>(range.begin),
                range.end == 0 ? "2^64" : std::to_string(range.end).c_str());
    for (auto id : range.replicas) std::printf(" %s", rpc_of[id].c_str());
    std::printf("\n");
  }
  return kExitOk;
}

std::string Rate(double bytes, double secs) {
  return HumanBytes(static_cast<std::uint64_t>(secs > 0 ? bytes / secs : 0)) + "/s";
}

int DoRepair(const Globals& g, bool dry_run) {
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  const bool tty = isatty(STDERR_FILENO) != 0;
  bool drew = false;
  auto on_progress = [&](const kv::rpc::RepairProgressInfo& p) {
    if (g.json) return;
    const int width = 30;
    const int filled = p.ranges_total ? static_cast<int>(width * p.ranges_done / p.ranges_total) : 0;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, ' ');
    std::fprintf(stderr, "%s[%s] %llu/%llu ranges, %llu keys moved, %s%s", tty ? "\r" : "",
                 bar.c_str(), static_cast<unsigned long long>(p.ranges_done),
                 static_cast<unsigned long long>(p.ranges_total),
                 static_cast<unsigned long long>(p.keys_moved),
                 Rate(static_cast<double>(p.bytes_moved), p.elapsed_s).c_str(), tty ? "" : "\n");
    drew = true;
  };
  kv::rpc::RepairReply r =
      client.value()->Repair(dry_run, std::chrono::milliseconds(tty ? 200 : 1000), on_progress);
  if (drew && tty) std::fprintf(stderr, "\n");
  if (!r.status.ok()) return Report(r.status);
  std::uint64_t sent = 0, received = 0;
  for (const auto& p : r.peers) {
    sent += p.keys_sent;
    received += p.keys_received;
  }
  if (g.json) {
    nlohmann::json peers = nlohmann::json::array();
    for (const auto& p : r.peers) {
      peers.push_back({{"id", Hex(p.id)},
                       {"keys_sent", p.keys_sent},
                       {"keys_received", p.keys_received},
                       {"bytes_sent", p.bytes_sent},
                       {"bytes_received", p.bytes_received}});
    }
    PrintJson({{"dry_run", r.dry_run},
               {"consistent", r.outcome.ok()},
               {"ranges", r.ranges_total},
               {"ranges_compared", r.ranges_compared},
               {"skipped", r.skipped},
               {"tree_nodes_exchanged", r.nodes_exchanged},
               {"segments_differing", r.leaves_differing},
               {"keys_differing", r.keys_differing},
               {"keys_moved", sent + received},
               {"bytes_on_wire", r.bytes_on_wire},
               {"tombstones_purged", r.tombstones_purged},
               {"elapsed_s", r.elapsed_s},
               {"peers", peers}});
  } else {
    std::printf("%s%llu of %llu ranges compared in %.2f s\n", r.dry_run ? "dry run: " : "",
                static_cast<unsigned long long>(r.ranges_compared),
                static_cast<unsigned long long>(r.ranges_total), r.elapsed_s);
    std::printf("tree nodes exchanged %llu, segments differing %llu, keys differing %llu, "
                "bytes on the wire %s\n",
                static_cast<unsigned long long>(r.nodes_exchanged),
                static_cast<unsigned long long>(r.leaves_differing),
                static_cast<unsigned long long>(r.keys_differing),
                HumanBytes(r.bytes_on_wire).c_str());
    if (r.tombstones_purged > 0) {
      std::printf("tombstones purged %llu\n", static_cast<unsigned long long>(r.tombstones_purged));
    }
    for (const auto& p : r.peers) {
      std::printf("  with %s: sent %llu keys (%s), received %llu keys (%s)\n", Hex(p.id).c_str(),
                  static_cast<unsigned long long>(p.keys_sent), HumanBytes(p.bytes_sent).c_str(),
                  static_cast<unsigned long long>(p.keys_received),
                  HumanBytes(p.bytes_received).c_str());
    }
    for (const auto& s : r.skipped) std::printf("  skipped %s\n", s.c_str());
  }
  if (!r.outcome.ok()) return Report(r.outcome);
  return kExitOk;
}

int DoRemoveNode(const Globals& g, const std::string& id_text) {
  std::string hex = id_text;
  if (hex.rfind("0x", 0) == 0) hex = hex.substr(2);
  if (hex.empty() || hex.size() > 16 ||
      hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return Complain(kExitUsage, "invalid argument: node id '" + id_text +
                                    "' is not a hex id as `kvtool status` shows it");
  }
  const std::uint64_t id = std::stoull(hex, nullptr, 16);
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  Status s = client.value()->RemoveNode(id);
  if (!s.ok()) return Complain(ExitFor(s), "removenode " + Hex(id) + ": " + s.ToString());
  // Its ranges are re-replicated first (a movement this node drives): follow it to its end.
  client.value().reset();
  bool gone = false;
  kv::rpc::MovementView last = FollowMovement(g, &gone);
  client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::StatusReply after = client.value()->ClusterStatus();
  bool removed = false;
  for (const auto& m : after.members) removed |= m.id == id && m.status == "REMOVED";
  if (!removed) {
    return Complain(kExitFailed, "removenode " + Hex(id) + " failed and was withdrawn: " +
                                     (last.outcome.empty() ? last.note : last.outcome));
  }
  if (g.json) {
    PrintJson({{"removed", Hex(id)}});
  } else {
    std::printf("removed %s\n", Hex(id).c_str());
  }
  return kExitOk;
}

int DoStats(const Globals& g) {
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::StatsReply r = client.value()->Stats();
  if (!r.status.ok()) return Report(r.status);
  if (g.json) {
    nlohmann::json gossip = nlohmann::json::object(), node = nlohmann::json::object();
    for (const auto& [name, value] : r.counters) gossip[name] = value;
    for (const auto& [name, value] : r.node) node[name] = value;
    PrintJson({{"gossip", r.gossip ? gossip : nlohmann::json()}, {"node", node}});
    return kExitOk;
  }
  if (!r.gossip) {
    std::printf("gossip: off (no --gossip)\n");
  } else {
    for (const auto& [name, value] : r.counters) {
      std::printf("gossip.%-26s %llu\n", name.c_str(), static_cast<unsigned long long>(value));
    }
  }
  for (const auto& [name, value] : r.node) {
    std::printf("node.%-28s %llu\n", name.c_str(), static_cast<unsigned long long>(value));
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"kvtool: client for the kv store"};
  app.require_subcommand(1);
  // Subcommands hand the options they do not know to this level: global options may follow
  // the command (kvtool status --json), as with nodetool and redis-cli.
  app.fallthrough();
  app.add_option("--host", g.hosts,
                 "Node to talk to, HOST:PORT, or a comma-separated list tried in order: an "
                 "unreachable node is passed over, a read is asked again of the next node, a "
                 "write whose outcome is unknown is not")
      ->envname("KV_HOST")
      ->delimiter(',')
      ->capture_default_str();
  app.add_flag("--json", g.json, "Print results as JSON");
  app.add_option("--tls-cert", g.tls_settings.cert_file,
                 "Mutual TLS: this client's certificate (PEM); its common name gives its role: "
                 "admin for removenode, repair, decommission, cleanup and keyring");
  app.add_option("--tls-key", g.tls_settings.key_file, "Its private key (PEM)");
  app.add_option("--tls-ca", g.tls_settings.ca_file, "The cluster CA (PEM)");
  app.add_option("--tls-identity", g.tls_settings.identity,
                 "The cluster identity the node's certificate must name")
      ->capture_default_str();
  app.add_option("--timeout-ms", g.timeout_ms, "Bound on connecting and on each request")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600 * 1000));

  std::string key, value, context, consistency;
  auto add_consistency = [&](CLI::App* cmd) {
    cmd->add_option("--consistency,-c", consistency,
                    "Replicas that must answer: one, quorum or all (default: the node's R or W)")
        ->check(CLI::IsMember({"one", "quorum", "all"}));
  };
  auto* get = app.add_subcommand("get", "Print the value (or every sibling) and the context");
  get->add_option("KEY", key)->required();
  add_consistency(get);
  get->add_flag("--local", g.local,
                "Only the contacted node's own stored record, with no coordination");

  auto* put = app.add_subcommand("put", "Write a value; without --context it adds a sibling");
  put->add_option("KEY", key)->required();
  put->add_option("VALUE", value, "The value, or - to read it from stdin")->required();
  put->add_option("--context", context, "Context from a get: supersede what it saw");
  add_consistency(put);

  auto* del = app.add_subcommand(
      "delete", "Delete the key; without --context, everything the node holds for it");
  del->add_option("KEY", key)->required();
  del->add_option("--context", context, "Context from a get: delete only what it saw");
  add_consistency(del);

  auto* status = app.add_subcommand("status", "Every member: status, state, generation, phi, ...");
  std::uint32_t replicas = 0;
  auto* ring = app.add_subcommand("ring", "Token ranges and their replicas");
  ring->add_option("--replicas", replicas, "Replicas per range (default: the node's N)")
      ->check(CLI::Range(1, 16));
  std::string remove_id;
  auto* removenode = app.add_subcommand(
      "removenode", "Remove a dead node for good, re-replicating its ranges from the survivors");
  removenode->add_option("ID", remove_id, "Node id as `kvtool status` shows it")->required();

  bool no_wait = false;
  auto* decommission = app.add_subcommand(
      "decommission",
      "Copy this node's ranges to their new replicas, then leave the cluster and stop the node");
  decommission->add_flag("--no-wait", no_wait, "Return once started (status shows progress)");
  auto* cleanup = app.add_subcommand(
      "cleanup", "Delete the data of ranges this node no longer replicates (after a movement)");

  auto* stats = app.add_subcommand("stats", "This node's counters (gossip traffic and drops; requests, connections, bounds hit)");

  bool dry_run = false;
  auto* repair = app.add_subcommand(
      "repair", "Anti-entropy of this node's ranges against their other replicas, now");
  repair->add_flag("--dry-run", dry_run, "Find what differs, move nothing");

  std::string keyring_verb, keyring_key;
  auto* keyring = app.add_subcommand(
      "keyring",
      "Every member's gossip keyring: list, install KEY, use KEY (make it the one that seals), "
      "remove KEY; each member answers for itself");
  keyring->add_option("OPERATION", keyring_verb, "list, install, use or remove")
      ->required()
      ->check(CLI::IsMember({"list", "install", "use", "remove"}));
  keyring->add_option("KEY", keyring_key, "A key as kvtool keygen prints it (base64)");

  auto* keygen = app.add_subcommand(
      "keygen", "Print a new random 256-bit gossip key (base64), for kvd --gossip-key-file");

  kv::tools::BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench", "Closed-loop load against one node");
  kv::tools::AddBenchFlags(bench, &bench_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Complain(kExitUsage, std::string(e.what()) + " (see kvtool --help)");
  }
  if (keygen->parsed()) {  // local: no node is asked
    std::printf("%s\n", kv::membership::GossipKeyToText(kv::membership::NewGossipKey()).c_str());
    return kExitOk;
  }
  const int tls_files = !g.tls_settings.cert_file.empty() + !g.tls_settings.key_file.empty() +
                        !g.tls_settings.ca_file.empty();
  if (tls_files != 0 && tls_files != 3) {
    return Complain(kExitUsage, "TLS needs all three of --tls-cert, --tls-key and --tls-ca");
  }
  if (tls_files == 3) {
    auto tls = kv::rpc::Tls::Load(g.tls_settings);
    if (!tls.ok()) return Complain(kExitUsage, tls.status().message());
    g.tls = std::move(tls.value());
    g_plain = false;
  }
  if (g.hosts.empty()) return Complain(kExitUsage, "--host: no node given");
  for (const std::string& h : g.hosts) {
    std::string host;
    int port = 0;
    if (Status s = kv::rpc::ParseHostPort(h, false, &host, &port); !s.ok()) {
      return Complain(kExitUsage, "--host: " + s.message());
    }
  }
  // These act on, or report about, the node they are sent to: another node is not the same.
  const std::pair<CLI::App*, const char*> one_node[] = {
      {stats, "stats"}, {repair, "repair"}, {decommission, "decommission"},
      {cleanup, "cleanup"}, {bench, "bench"}};
  for (const auto& [cmd, name] : one_node) {
    if (cmd->parsed() && g.hosts.size() > 1) {
      return Complain(kExitUsage, std::string(name) + " acts on one node: give one --host");
    }
  }
  if (g.local && g.hosts.size() > 1) {
    return Complain(kExitUsage, "get --local reads one node's record: give one --host");
  }
  if ((get->parsed() || put->parsed() || del->parsed()) && key.empty()) {
    return Complain(kExitUsage, "invalid argument: key is empty");
  }
  if (!consistency.empty()) (void)kv::rpc::ParseConsistency(consistency, &g.consistency);
  if (g.local && !consistency.empty()) {
    return Complain(kExitUsage, "--local reads one node: it takes no --consistency");
  }
  if (get->parsed()) return DoGet(g, key);
  if (put->parsed()) return DoPut(g, key, value, context);
  if (del->parsed()) return DoDelete(g, key, context);
  if (status->parsed()) return DoStatus(g);
  if (stats->parsed()) return DoStats(g);
  if (ring->parsed()) return DoRing(g, replicas);
  if (removenode->parsed()) return DoRemoveNode(g, remove_id);
  if (decommission->parsed()) return DoDecommission(g, !no_wait);
  if (cleanup->parsed()) return DoCleanup(g);
  if (keyring->parsed()) return DoKeyring(g, keyring_verb, keyring_key);
  if (repair->parsed()) return DoRepair(g, dry_run);
  if (bench->parsed()) {
    Status s = kv::tools::RunBench(g.host(), bench_options, g.json, g.tls.get());
    return s.ok() ? kExitOk : Report(s);
  }
  return Complain(kExitUsage, "no command (see kvtool --help)");
}
