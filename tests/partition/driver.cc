// partition_driver: the Jepsen-style partition suite's driver. Run it through tests/partition/run,
// which creates the network namespace it needs and runs this inside it.
//
// Starts N real kvd processes on 127.0.0.1..N, runs concurrent clients through different
// coordinators while nemeses cut links, drop packets, kill, crash (losing unsynced writes) and
// pause nodes, set a node's clock minutes off, and join, decommission and replace nodes, on a
// schedule drawn from the seed, then heals everything, waits for hinted handoff, repairs every
// node, compares every replica's own copy of every key, reads every key at consistency ALL and
// checks the history (tests/partition/history.h): nothing acknowledged lost, no acknowledged
// removal undone, nothing refused present, and stale reads counted. With deletes, kvd runs with
// a short tombstone grace and frequent repairs, so tombstones are purged during the run.
// Writes a report folder: history.jsonl, timeline.svg, findings.txt and findings.json, and the
// nodes' logs.
//
// A ring movement runs alone: the driver waits, past the planned end if need be, until every
// member sees the new membership settled (no movement, everyone UP and normal). A movement that
// does not get there within --movement-deadline fails the run and ends the schedule early.
//
// Exit: 0 when nothing acknowledged was lost or undone, every replica agrees and every movement
// finished;
// 1 when the check fails; 2 when the run could not be carried out (bad flags, iptables, nodes
// that never formed).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ring/token.h"
#include "rpc/client_conn.h"
#include "rpc/tls.h"
#include "tests/partition/history.h"
#include "tests/partition/nemesis.h"
#include "tests/partition/timeline.h"

namespace kv::partition {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
namespace fs = std::filesystem;

struct Options {
  int nodes = 5;
  double time_s = 120;
  std::string nemesis = "halves,isolate,kill,pause";
  std::uint64_t seed = 0;
  int clients = 0;  // 0: two per node
  double rate = 40;  // operations per second over all clients
  std::string workload = "set,put,delete";
  // Delete keys: half the operations go to a few hot ones, half to many cold ones, which often
  // stay deleted and untouched past the grace period, so that their tombstones are purged.
  int set_keys = 8, put_keys = 40, del_hot_keys = 4, del_cold_keys = 200;
  // With deletes: kvd's tombstone grace and repair interval, short so that purges happen.
  // The grace must outlast a fault and its handoff: hints live no longer (hint_ttl_s).
  int tombstone_grace_s = 20, repair_every_s = 5;
  double quiet_s = 5, min_fault_s = 8, max_fault_s = 14, loss = 0.3;
  int client_timeout_ms = 5000;
  std::string kvd;
  std::string kvd_args;
  std::string report;       // the report folder; default under --report-root
  std::string report_root = "partition-reports";
  double heal_deadline_s = 120;
  double movement_deadline_s = 180;
  // --scenario heal: one partition between two nodes under load, then the time until requests
  // that need both succeed again.
  std::string scenario = "nemeses";
  double partition_s = 15, heal_bound_s = 2;
  // --secure-dir: a folder with gossip.key, ca.pem and the certificates (with keys) node,
  // client and admin (tests/partition/run --secure makes one): every kvd seals gossip with the
  // key and requires TLS; clients connect with the client certificate, the checker (repairs,
  // movements) with the admin one.
  std::string secure_dir;
};

Clock::time_point g_start;
// With --secure-dir (set once in main, before any client runs; else null): the TLS of the
// clients (a client certificate) and of the checker, which runs repairs and movements as an
// operator would (an admin certificate).
rpc::Tls* g_client_tls = nullptr;
rpc::Tls* g_admin_tls = nullptr;

// Every connection of the run: clients and heal probes, or (`admin`) the checker.
Result<std::unique_ptr<rpc::BlockingClient>> Connect(const std::string& host,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& source,
                                                     bool admin = false) {
  return rpc::BlockingClient::Connect(host, timeout, source, admin ? g_admin_tls : g_client_tls);
}
double Now() { return std::chrono::duration<double>(Clock::now() - g_start).count(); }

std::string Ip(int node) { return "127.0.0." + std::to_string(node); }
std::string Rpc(int node) { return Ip(node) + ":7701"; }
// Clients and the checker connect from 127.0.1.x: outside every node's address, so faults
// (rules between node addresses) never cut them.
std::string ClientIp(int client) { return "127.0.1." + std::to_string(1 + client % 250); }
const std::string kCheckerIp = "127.0.1.254";

// ---- kvd processes ---------------------------------------------------------------------------

struct Node {
  int index = 0;
  pid_t pid = -1;
  bool paused = false;
};

class Cluster {
 public:
  // Slots 1..slots; a slot is used by one node only, ever.
  Cluster(const Options& o, std::string dir, int slots)
      : o_(o), dir_(std::move(dir)), nodes_(static_cast<std::size_t>(slots)) {
    for (int i = 0; i < slots; ++i) nodes_[static_cast<std::size_t>(i)].index = i + 1;
  }
  ~Cluster() { StopAll(); }

  // Starts (or restarts) the node of slot i, joining through `seeds` (slots) when it has no
  // ring of its own yet; `extra` are more kvd flags (--replace ID).
  bool Start(int i, const std::vector<int>& seeds, const std::vector<std::string>& extra = {}) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    const std::string data = dir_ + "/n" + std::to_string(i);
    const std::string log = dir_ + "/n" + std::to_string(i) + ".log";
    std::vector<std::string> args = {o_.kvd,    "--data-dir", data,
                                     "--listen", Rpc(i),       "--gossip",
                                     Ip(i) + ":7946"};
    std::string seed_list;
    for (int s : seeds) {
      if (s != i) seed_list += (seed_list.empty() ? "" : ",") + Ip(s) + ":7946";
    }
    if (!seed_list.empty()) {
      args.push_back("--seeds");
      args.push_back(seed_list);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    std::istringstream flags(o_.kvd_args);
    for (std::string a; flags >> a;) args.push_back(a);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    n.pid = pid;
    n.paused = false;
    return true;
  }

  void Kill(int i) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    if (n.pid <= 0) return;
    ::kill(n.pid, SIGKILL);
    waitpid(n.pid, nullptr, 0);
    n.pid = -1;
    n.paused = false;
  }

  // SIGTERM, and wait for the node to stop (SIGKILL after 20 s).
  void Stop(int i) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    if (n.pid <= 0) return;
    ::kill(n.pid, SIGCONT);
    ::kill(n.pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (waitpid(n.pid, nullptr, WNOHANG) != n.pid) {
      if (Clock::now() > deadline) {
        ::kill(n.pid, SIGKILL);
        waitpid(n.pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling for exit
    }
    n.pid = -1;
    n.paused = false;
  }

  void Pause(int i, bool pause) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    if (n.pid <= 0) return;
    ::kill(n.pid, pause ? SIGSTOP : SIGCONT);
    n.paused = pause;
  }

  // Whether node i is not running, reaping it. A node that exited without being killed by the
  // nemesis crashed (or a sanitizer stopped it): that is recorded in crashes().
  bool Exited(int i) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    if (n.pid <= 0) return true;
    int status = 0;
    if (waitpid(n.pid, &status, WNOHANG) == n.pid) {
      n.pid = -1;
      crashes_.push_back("node " + std::to_string(i) + " exited by itself (" +
                         (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                              : "status " + std::to_string(WEXITSTATUS(status))) +
                         "); see n" + std::to_string(i) + ".log");
      return true;
    }
    return false;
  }
  const std::vector<std::string>& crashes() const { return crashes_; }

  // Whether node i has exited with status 0, as a decommissioned node does; reaps it. Any other
  // exit is a crash, as in Exited().
  bool Left(int i) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    if (n.pid <= 0) return true;
    int status = 0;
    if (waitpid(n.pid, &status, WNOHANG) != n.pid) return false;
    n.pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      crashes_.push_back("node " + std::to_string(i) + " did not exit cleanly after its " +
                         "decommission; see n" + std::to_string(i) + ".log");
    }
    return true;
  }

  void StopAll() {
    for (Node& n : nodes_) {
      if (n.pid <= 0) continue;
      ::kill(n.pid, SIGCONT);
      ::kill(n.pid, SIGTERM);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    for (Node& n : nodes_) {
      while (n.pid > 0) {
        if (waitpid(n.pid, nullptr, WNOHANG) == n.pid) {
          n.pid = -1;
        } else if (Clock::now() > deadline) {
          ::kill(n.pid, SIGKILL);
          waitpid(n.pid, nullptr, 0);
          n.pid = -1;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling for exit
        }
      }
    }
  }


 private:
  const Options& o_;
  std::string dir_;
  std::vector<Node> nodes_;
  std::vector<std::string> crashes_;
};

bool ApplyRules(const Fault* f, int slots, std::string* error) {
  FILE* p = popen("iptables-restore -w 5 2>&1", "w");
  if (p == nullptr) {
    *error = "cannot run iptables-restore";
    return false;
  }
  const std::string rules = IptablesRules(f, slots);
  fwrite(rules.data(), 1, rules.size(), p);
  const int rc = pclose(p);
  if (rc != 0) {
    *error = "iptables-restore failed (exit " + std::to_string(rc) + ") on:\n" + rules;
    return false;
  }
  return true;
}

// ---- status polling (one client at a time on this thread) ------------------------------------

std::unique_ptr<rpc::BlockingClient> ConnectChecker(int node, int timeout_ms = 2000) {
  auto c = Connect(Rpc(node), std::chrono::milliseconds(timeout_ms), kCheckerIp, true);
  if (!c.ok()) return nullptr;
  return std::move(c.value());
}

// What node `node` sees: the slots of the members UP and normal, the hints it holds in all, and
// whether a movement is under way; nullopt if it cannot answer.
struct Seen {
  std::set<int> up;
  std::uint64_t hints = 0;
  bool moving = false;
  std::string movement;  // what it says of the movement, or of the last one it drove
};
std::optional<Seen> Look(int node) {
  auto c = ConnectChecker(node);
  if (!c) return std::nullopt;
  auto s = c->ClusterStatus();
  if (!s.status.ok()) return std::nullopt;
  Seen seen;
  for (const auto& m : s.members) {
    const auto colon = m.rpc.rfind(':');
    const auto dot = m.rpc.rfind('.', colon);
    if (m.status == "UP" && m.state == "normal" && dot != std::string::npos) {
      seen.up.insert(std::atoi(m.rpc.substr(dot + 1, colon - dot - 1).c_str()));
    }
    seen.hints += m.hints;
  }
  seen.moving = s.movement.active;
  seen.movement = s.movement.active ? s.movement.description + " (" + s.movement.phase + ", " +
                                          s.movement.note + ")"
                                    : s.movement.outcome;
  return seen;
}

// Every member answers and sees exactly the members UP and normal, and no movement.
bool AllUp(const std::vector<int>& members) {
  const std::set<int> want(members.begin(), members.end());
  for (int i : members) {
    auto s = Look(i);
    if (!s || s->up != want || s->moving) return false;
  }
  return true;
}

std::optional<std::uint64_t> TotalHints(const std::vector<int>& members) {
  std::uint64_t total = 0;
  for (int i : members) {
    auto s = Look(i);
    if (!s) return std::nullopt;
    total += s->hints;
  }
  return total;
}

// The node id of slot `slot` as `asked` knows it; 0 if unknown.
std::uint64_t IdOf(int slot, int asked) {
  auto c = ConnectChecker(asked);
  if (!c) return 0;
  auto s = c->ClusterStatus();
  for (const auto& m : s.members) {
    if (m.rpc == Rpc(slot)) return m.id;
  }
  return 0;
}

// The members clients send their requests through: changed by the movements.
class Coordinators {
 public:
  explicit Coordinators(std::vector<int> nodes) : nodes_(std::move(nodes)) {}
  int For(int client) {
    std::lock_guard<std::mutex> lock(mu_);
    return nodes_[static_cast<std::size_t>(client) % nodes_.size()];
  }
  void Set(std::vector<int> nodes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!nodes.empty()) nodes_ = std::move(nodes);
  }

 private:
  std::mutex mu_;
  std::vector<int> nodes_;
};

// ---- clients -------------------------------------------------------------------------------

// Whether a failed write certainly changed nothing: the coordinator refused before writing, or
// no connection was made. Anything else (a timeout, a partial acknowledgement, a connection
// lost mid-request) may have been applied: unknown.
Outcome Classify(const Status& s, bool is_delete = false) {
  if (s.ok()) return Outcome::kOk;
  if (is_delete && s.IsNotFound()) return Outcome::kOk;  // nothing live: the tombstone is written
  const std::string& m = s.message();
  for (const char* definite : {"required replicas are up", "every owner of the key is DOWN",
                               "no node owns ring tokens", "no address for the key"}) {
    if (m.find(definite) != std::string::npos) return Outcome::kFail;
  }
  if (s.code() == Status::Code::kInvalidArgument) return Outcome::kFail;
  return Outcome::kUnknown;
}

struct Progress {
  std::atomic<std::uint64_t> ok{0}, fail{0}, unknown{0};
};

struct Workload {
  bool sets = false, puts = false, deletes = false;
};

void RunClient(const Options& o, int client, double end_s, Workload w,
               Coordinators* coordinators, std::vector<Op>* out, Progress* progress) {
  Rng rng(o.seed * 0x100000001b3ull + static_cast<std::uint64_t>(client) + 1);
  int node = coordinators->For(client);
  const double every_s = o.clients / o.rate;
  double next_s = Now() + every_s * rng.Unit();
  std::unique_ptr<rpc::BlockingClient> conn;
  std::uint64_t seq = 0;
  std::vector<char> spaces;  // which keyspaces this run writes: s(et), p(ut), d(elete)
  if (w.sets) spaces.push_back('s');
  if (w.puts) spaces.push_back('p');
  if (w.deletes) spaces.push_back('d');
  while (true) {
    if (next_s >= end_s) break;
    // Pacing: operations are issued on a schedule, not in response to an event.
    const double wait = next_s - Now();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    next_s += every_s;
    if (Now() >= end_s) break;

    Op op;
    op.client = client;
    op.node = node;
    const char space = spaces[rng.Below(spaces.size())];
    if (space == 'p') {
      op.kind = OpKind::kPut;
      op.key = "put-" + std::to_string(rng.Below(o.put_keys));
    } else if (space == 's') {
      op.kind = OpKind::kSetAdd;
      op.key = "set-" + std::to_string(rng.Below(o.set_keys));
    } else {
      const auto r = rng.Below(20);
      op.kind = r < 10 ? OpKind::kSetAdd : r < 17 ? OpKind::kSetRemove : OpKind::kDeleteKey;
      op.key = "del-" + std::to_string(rng.Below(2) == 0
                                           ? rng.Below(o.del_hot_keys)
                                           : o.del_hot_keys + rng.Below(o.del_cold_keys));
    }
    op.element = "c" + std::to_string(client) + "-" + std::to_string(seq++);
    const std::uint64_t pick = rng.Next();  // which element a removal takes out
    op.invoke_s = Now();
    Status st;
    bool sent = false;
    if (!conn) {
      node = coordinators->For(client);
      op.node = node;
      // The bound covers connecting and each request: longer than a coordinator takes to give
      // its own verdict (a forwarded write waits up to twice kvd's --request-timeout-ms).
      auto c = Connect(
          Rpc(node), std::chrono::milliseconds(o.client_timeout_ms), ClientIp(client));
      if (c.ok()) conn = std::move(c.value());
      else st = c.status();
    }
    if (conn) {
      if (op.IsSetOp()) {
        auto r = conn->Get(op.key);
        op.read_done_s = Now();
        if (r.status.ok() || r.status.IsNotFound()) {
          op.read = true;
          for (const auto& sib : r.siblings) {
            for (const auto& e : DecodeSet(sib)) op.seen.insert(e);
          }
          if (op.kind == OpKind::kSetRemove && op.seen.empty()) op.kind = OpKind::kSetAdd;
          // A delete with an empty context deletes everything the coordinator holds (kvtool's
          // plain delete), not what the read saw: with nothing seen, it adds instead.
          if (op.kind == OpKind::kDeleteKey && r.context.empty()) op.kind = OpKind::kSetAdd;
          if (op.kind == OpKind::kDeleteKey) op.element.clear();
          std::set<std::string> elements = op.seen;
          if (op.kind == OpKind::kSetRemove) {
            op.removed = *std::next(op.seen.begin(),
                                    static_cast<std::ptrdiff_t>(pick % op.seen.size()));
            elements.erase(op.removed);
          }
          elements.insert(op.element);
          sent = true;
          st = op.kind == OpKind::kDeleteKey ? conn->Delete(op.key, r.context).status
                                             : conn->Put(op.key, EncodeSet(elements), r.context).status;
        } else {
          st = r.status;  // nothing was written
        }
      } else {
        sent = true;
        st = conn->Put(op.key, op.element, "").status;
      }
    }
    op.complete_s = Now();
    op.outcome = sent ? Classify(st, op.kind == OpKind::kDeleteKey)
                      : (st.ok() ? Outcome::kOk : Outcome::kFail);
    if (op.outcome != Outcome::kOk) op.error = st.ToString();
    // After a failure the connection is replaced before the next operation: it may be broken
    // (a killed node) or hold a late reply.
    if (op.outcome != Outcome::kOk) conn.reset();
    next_s = std::max(next_s, Now());  // no burst to catch up after slow operations
    (op.outcome == Outcome::kOk     ? progress->ok
     : op.outcome == Outcome::kFail ? progress->fail
                                    : progress->unknown)++;
    out->push_back(std::move(op));
  }
}

// ---- the run -------------------------------------------------------------------------------

std::string Counts(const Progress& p) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "ops ok %llu, failed %llu, unknown %llu",
                static_cast<unsigned long long>(p.ok.load()),
                static_cast<unsigned long long>(p.fail.load()),
                static_cast<unsigned long long>(p.unknown.load()));
  return buf;
}

void Line(const char* fmt, const std::string& text) {
  std::printf("[%7.1fs] ", Now());
  std::printf(fmt, text.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

// Runs `f` until it returns true or `deadline_s` passes; polls every `every`.
template <typename F>
bool PollUntil(double deadline_s, F&& f, std::chrono::milliseconds every = std::chrono::milliseconds(250)) {
  while (Now() < deadline_s) {
    if (f()) return true;
    std::this_thread::sleep_for(every);  // polling with a deadline
  }
  return f();
}


// Starts nodes 1..o.nodes (each joining through node 1) and waits until every one sees every
// other UP; false, having said why, if that does not happen within 180 s. Each join is a ring
// movement, one at a time: under TSan on a loaded 2-core machine, 4 joins once took over 60 s.
bool FormCluster(const Options& o, Cluster& cluster, std::vector<int>* members) {
  for (int i = 1; i <= o.nodes; ++i) {
    members->push_back(i);
    if (!cluster.Start(i, i == 1 ? std::vector<int>{} : std::vector<int>{1})) {
      std::fprintf(stderr, "partition: cannot start kvd %d\n", i);
      return false;
    }
  }
  if (!PollUntil(Now() + 180, [&] { return AllUp(*members); })) {
    std::fprintf(stderr, "partition: the %d nodes did not all see each other UP within 180 s; "
                         "logs in %s/nodes\n", o.nodes, o.report.c_str());
    return false;
  }
  Line("cluster of %s formed", std::to_string(o.nodes) + " nodes");
  return true;
}

// ---- scenario heal ---------------------------------------------------------------------------
//
// Nodes 1 and 2 are cut from each other (both still reach node 3) for --partition-s while
// clients write through every node, then healed. From the heal on, a probe per side writes at
// consistency ALL through node 1 and through node 2 (every key has all three nodes as replicas
// when N = 3 = nodes), and the time from the heal to the first success is recorded. A node
// whose connections to the other stay stuck in TCP retransmission backoff answers "timed out"
// for as long as the backoff lasts. Fails (exit 1) when either side takes longer than
// --heal-bound-s, or never succeeds within --heal-deadline.
int RunHeal(const Options& o) {
  std::string error;
  const int slots = o.nodes;
  if (!ApplyRules(nullptr, slots, &error)) {
    std::fprintf(stderr, "partition: %s\n", error.c_str());
    return 2;
  }
  Cluster cluster(o, o.report + "/nodes", slots);
  std::vector<int> members;
  if (!FormCluster(o, cluster, &members)) return 2;
  // Load: each client writes at consistency ONE through its node, paced, until told to stop.
  std::atomic<bool> stop{false};
  Progress progress;
  std::vector<std::thread> load;
  for (int c = 0; c < o.clients; ++c) {
    load.emplace_back([&, c] {
      const int node = 1 + c % o.nodes;
      const double every_s = o.clients / o.rate;
      double next_s = Now();
      std::unique_ptr<rpc::BlockingClient> conn;
      for (std::uint64_t seq = 0; !stop && seq < 10'000'000; ++seq) {
        const double wait = next_s - Now();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));  // pacing
        next_s += every_s;
        if (!conn) {
          auto r = Connect(
              Rpc(node), std::chrono::milliseconds(o.client_timeout_ms), ClientIp(c));
          if (!r.ok()) continue;
          conn = std::move(r.value());
        }
        const Status st = conn->Put("load-" + std::to_string(c) + "-" + std::to_string(seq % 500),
                                    "v" + std::to_string(seq), "", rpc::Consistency::kOne)
                              .status;
        (st.ok() ? progress.ok : progress.fail)++;
        if (!st.ok() && st.message().find("unreachable") != std::string::npos) conn.reset();
      }
    });
  }
  auto stop_load = [&] {
    stop = true;
    for (auto& t : load) t.join();
    load.clear();
  };
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the schedule: load before the cut
  Fault cut;
  cut.kind = NemesisKind::kBridge;
  cut.groups = {{1}, {2}};
  for (int i = 3; i <= o.nodes; ++i) {
    cut.groups[0].push_back(i);
    cut.groups[1].push_back(i);
  }
  if (!ApplyRules(&cut, slots, &error)) {
    stop_load();
    std::fprintf(stderr, "partition: %s\n", error.c_str());
    return 2;
  }
  Line("cut %s", cut.Describe() + " for " + std::to_string(static_cast<int>(o.partition_s)) + " s");
  std::this_thread::sleep_for(std::chrono::duration<double>(o.partition_s));  // the schedule
  if (!ApplyRules(nullptr, slots, &error)) {
    stop_load();
    std::fprintf(stderr, "partition: %s\n", error.c_str());
    return 2;
  }
  const double heal_s = Now();
  Line("healed; load so far: %s", std::to_string(progress.ok.load()) + " ok, " +
                                      std::to_string(progress.fail.load()) + " failed");
  // Probes: a put at ALL through node 1 and through node 2, again and again from the heal on.
  struct Probe {
    double first_ok_s = -1;
    int failures = 0;
    std::string last_error;
  };
  std::vector<Probe> probes(2);
  std::vector<std::thread> probing;
  for (int side = 0; side < 2; ++side) {
    probing.emplace_back([&, side] {
      const int node = side + 1;
      Probe& p = probes[static_cast<std::size_t>(side)];
      std::unique_ptr<rpc::BlockingClient> conn;
      for (int n = 0; Now() < heal_s + o.heal_deadline_s && n < 100000; ++n) {
        if (!conn) {
          auto r = Connect(Rpc(node), std::chrono::milliseconds(5000),
                                                "127.0.1." + std::to_string(240 + side));
          if (!r.ok()) {
            p.last_error = r.status().ToString();
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // pacing retries
            continue;
          }
          conn = std::move(r.value());
        }
        const Status st = conn->Put("probe-" + std::to_string(node) + "-" + std::to_string(n),
                                    "x", "", rpc::Consistency::kAll)
                              .status;
        if (st.ok()) {
          p.first_ok_s = Now() - heal_s;
          return;
        }
        ++p.failures;
        p.last_error = st.ToString();
        if (st.message().find("unreachable") != std::string::npos) conn.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // pacing retries
      }
    });
  }
  for (auto& t : probing) t.join();
  stop_load();
  bool pass = true;
  Json sides = Json::array();
  std::string out;
  for (int side = 0; side < 2; ++side) {
    const Probe& p = probes[static_cast<std::size_t>(side)];
    const bool ok = p.first_ok_s >= 0 && p.first_ok_s <= o.heal_bound_s;
    pass = pass && ok;
    char line[512];
    std::snprintf(line, sizeof(line),
                  "node %d: first write at ALL %s after the heal (%d failed before%s%s)\n",
                  side + 1,
                  p.first_ok_s >= 0 ? (std::to_string(p.first_ok_s).substr(0, 5) + " s").c_str()
                                    : "NEVER",
                  p.failures, p.failures ? "; last: " : "", p.failures ? p.last_error.c_str() : "");
    out += line;
    sides.push_back({{"node", side + 1},
                     {"first_ok_after_heal_s", p.first_ok_s >= 0 ? Json(p.first_ok_s) : Json(nullptr)},
                     {"failures", p.failures},
                     {"last_error", p.last_error}});
  }
  out += "load: " + std::to_string(progress.ok.load()) + " ok, " +
         std::to_string(progress.fail.load()) + " failed\n";
  out += std::string("verdict: ") + (pass ? "pass" : "FAIL") + " (bound " +
         std::to_string(o.heal_bound_s).substr(0, 4) + " s)\n";
  for (const auto& e : cluster.crashes()) out += "crash: " + e + "\n";
  pass = pass && cluster.crashes().empty();
  Json findings{{"scenario", "heal"},
                {"partition_s", o.partition_s},
                {"heal_bound_s", o.heal_bound_s},
                {"sides", sides},
                {"load_ok", progress.ok.load()},
                {"load_failed", progress.fail.load()},
                {"verdict", pass ? "pass" : "FAIL"}};
  std::ofstream(o.report + "/findings.json") << findings.dump(2) << "\n";
  std::ofstream(o.report + "/findings.txt") << out;
  std::printf("%s", out.c_str());
  cluster.StopAll();
  return pass ? 0 : 1;
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"Jepsen-style partition suite driver (run it through tests/partition/run)"};
  app.add_option("--nodes", o.nodes, "Number of kvd nodes (127.0.0.1..N)")->check(CLI::Range(3, 50));
  app.add_option("--time", o.time_s, "Seconds of workload under nemeses")->check(CLI::Range(10.0, 3600.0));
  app.add_option("--nemesis", o.nemesis,
                 "Comma list: halves,isolate,bridge,random,loss,kill,pause,join,decommission,"
                 "replace,crash,skew");
  app.add_option("--seed", o.seed, "Seed of the schedule and the clients (default: from the clock)");
  app.add_option("--clients", o.clients, "Concurrent clients (default: two per node)")->check(CLI::Range(1, 250));
  app.add_option("--rate", o.rate, "Operations per second over all clients")->check(CLI::Range(1.0, 2000.0));
  app.add_option("--workload", o.workload,
                 "Comma list: set (read-modify-write adds), put (blind unique puts), delete (sets "
                 "whose elements are removed and whole keys deleted, with purges)");
  app.add_option("--tombstone-grace", o.tombstone_grace_s,
                 "With deletes: kvd --tombstone-grace-s, short so that purges happen in the run")
      ->check(CLI::Range(1, 86400));
  app.add_option("--repair-every", o.repair_every_s,
                 "With deletes: kvd --repair-interval-s (repairs purge the tombstones)")
      ->check(CLI::Range(1, 86400));
  app.add_option("--loss", o.loss, "Share of packets the loss nemesis drops")->check(CLI::Range(0.01, 0.9));
  app.add_option("--quiet", o.quiet_s, "Seconds of quiet between faults")->check(CLI::Range(1.0, 600.0));
  app.add_option("--fault-min", o.min_fault_s, "Shortest fault, seconds")->check(CLI::Range(1.0, 600.0));
  app.add_option("--fault-max", o.max_fault_s, "Longest fault, seconds")->check(CLI::Range(1.0, 600.0));
  app.add_option("--kvd", o.kvd, "Path of the kvd binary")->required()->check(CLI::ExistingFile);
  app.add_option("--kvd-args", o.kvd_args, "Extra kvd flags, space-separated (e.g. \"--hinted-handoff off\")");
  app.add_option("--client-timeout-ms", o.client_timeout_ms, "Clients' bound on each request")
      ->check(CLI::Range(100, 60000));
  app.add_option("--movement-deadline", o.movement_deadline_s,
                 "Seconds a join, decommission or replace may take before the run fails")
      ->check(CLI::Range(10.0, 3600.0));
  app.add_option("--report", o.report, "Report folder (default: REPORT_ROOT/DATE-seedS)");
  app.add_option("--report-root", o.report_root, "Where default report folders go");
  app.add_option("--secure-dir", o.secure_dir,
                 "Seal gossip and require TLS with the key and certificates in this folder "
                 "(tests/partition/run --secure makes one)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--scenario", o.scenario,
                 "nemeses (the schedule), or heal (one partition between nodes 1 and 2 under "
                 "load, then how soon writes at ALL succeed through both)")
      ->check(CLI::IsMember({"nemeses", "heal"}))
      ->capture_default_str();
  app.add_option("--partition-s", o.partition_s, "heal: seconds nodes 1 and 2 stay cut")
      ->check(CLI::Range(1.0, 600.0))
      ->capture_default_str();
  app.add_option("--heal-bound-s", o.heal_bound_s,
                 "heal: the run fails if a write at ALL through either node first succeeds "
                 "later than this after the heal")
      ->check(CLI::Range(0.1, 600.0))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (o.min_fault_s > o.max_fault_s) {
    std::fprintf(stderr, "partition: --fault-min exceeds --fault-max\n");
    return 2;
  }
  std::string error;
  auto kinds = ParseNemeses(o.nemesis, &error);
  if (!kinds) {
    std::fprintf(stderr, "partition: %s\n", error.c_str());
    return 2;
  }
  Workload workload;
  {
    std::stringstream in(o.workload);
    for (std::string name; std::getline(in, name, ',');) {
      if (name == "set") workload.sets = true;
      else if (name == "put") workload.puts = true;
      else if (name == "delete") workload.deletes = true;
      else {
        std::fprintf(stderr, "partition: --workload: unknown '%s' (expected set, put, delete)\n",
                     name.c_str());
        return 2;
      }
    }
  }
  if (!workload.sets && !workload.puts && !workload.deletes) {
    std::fprintf(stderr, "partition: --workload names nothing\n");
    return 2;
  }
  // Flags every kvd gets from what the run does (flags in --kvd-args win: they come later).
  {
    std::string auto_args;
    const bool crash = std::count(kinds->begin(), kinds->end(), NemesisKind::kCrash) > 0;
    if (crash) auto_args += " --testing-lose-unsynced-on-kill";
    if (workload.deletes) {
      if (o.kvd_args.find("--tombstone-grace-s") == std::string::npos) {
        auto_args += " --tombstone-grace-s " + std::to_string(o.tombstone_grace_s);
      }
      if (o.kvd_args.find("--repair-interval-s") == std::string::npos) {
        auto_args += " --repair-interval-s " + std::to_string(o.repair_every_s);
      }
    }
    o.kvd_args = auto_args + " " + o.kvd_args;
  }
  std::unique_ptr<rpc::Tls> client_tls, admin_tls;
  if (!o.secure_dir.empty()) {
    const std::string& d = o.secure_dir;
    o.kvd_args += " --gossip-key-file " + d + "/gossip.key --tls-cert " + d + "/node.pem" +
                  " --tls-key " + d + "/node-key.pem --tls-ca " + d + "/ca.pem";
    for (const std::string who : {"client", "admin"}) {
      rpc::TlsSettings ts;
      ts.cert_file = d + "/" + who + ".pem";
      ts.key_file = d + "/" + who + "-key.pem";
      ts.ca_file = d + "/ca.pem";
      auto loaded = rpc::Tls::Load(ts);
      if (!loaded.ok()) {
        std::fprintf(stderr, "partition: --secure-dir: %s\n", loaded.status().ToString().c_str());
        return 2;
      }
      (who == "client" ? client_tls : admin_tls) = std::move(loaded.value());
    }
    g_client_tls = client_tls.get();
    g_admin_tls = admin_tls.get();
  }
  if (o.seed == 0) o.seed = static_cast<std::uint64_t>(std::time(nullptr));
  if (o.clients == 0) o.clients = 2 * o.nodes;
  if (o.report.empty()) {
    char stamp[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
    o.report = o.report_root + "/" + stamp + "-seed" + std::to_string(o.seed);
  }
  // A report folder used before keeps nothing of that run: its nodes' data would come back as
  // values no client of this run wrote.
  std::error_code ec;
  fs::remove_all(o.report + "/nodes", ec);
  if (ec) {
    std::fprintf(stderr, "partition: cannot clear %s/nodes: %s\n", o.report.c_str(),
                 ec.message().c_str());
    return 2;
  }
  fs::create_directories(o.report + "/nodes");
  std::printf("partition suite: seed %llu, %d nodes, %d clients, %.0f s, nemeses %s, workload %s\n"
              "replay: tests/partition/run --nodes %d --time %.0f --nemesis %s --workload %s "
              "--seed %llu\n"
              "report: %s\n",
              static_cast<unsigned long long>(o.seed), o.nodes, o.clients, o.time_s,
              o.nemesis.c_str(), o.workload.c_str(), o.nodes, o.time_s, o.nemesis.c_str(),
              o.workload.c_str(), static_cast<unsigned long long>(o.seed), o.report.c_str());
  std::fflush(stdout);

  g_start = Clock::now();
  if (o.scenario == "heal") return RunHeal(o);
  const auto schedule = PlanSchedule(*kinds, o.nodes, o.time_s, o.quiet_s, o.min_fault_s,
                                     o.max_fault_s, o.seed, o.loss);
  const int slots = SlotsOf(schedule, o.nodes);
  if (slots > 250) {
    std::fprintf(stderr, "partition: the schedule needs %d node addresses, more than 250\n", slots);
    return 2;
  }
  if (!ApplyRules(nullptr, slots, &error)) {
    std::fprintf(stderr, "partition: %s\n", error.c_str());
    return 2;
  }
  Cluster cluster(o, o.report + "/nodes", slots);
  std::vector<int> members;  // slots of the nodes in the ring, as the movements went
  if (!FormCluster(o, cluster, &members)) return 2;

  // Workload and nemeses, on the run's own clock from here.
  const double t0 = Now();
  Progress progress;
  Coordinators coordinators(members);
  std::vector<std::vector<Op>> per_client(o.clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back(RunClient, std::cref(o), c, t0 + o.time_s, workload, &coordinators,
                         &per_client[c], &progress);
  }
  std::vector<Period> periods;
  auto wait_until = [](double t) {
    const double w = t - Now();
    if (w > 0) std::this_thread::sleep_for(std::chrono::duration<double>(w));  // the schedule
  };
  bool setup_failed = false;
  // A movement that outlasts its planned end pushes the rest of the schedule back by as much.
  double lag = 0;
  Json movements = Json::array();
  std::vector<std::string> movement_failures;
  auto without = [](std::vector<int> v, int x) {
    v.erase(std::remove(v.begin(), v.end(), x), v.end());
    return v;
  };
  std::size_t steps_run = 0;  // of the schedule's; the rest did not fit after late movements
  for (const Step& step : schedule) {
    if (step.start_s + lag + o.min_fault_s > o.time_s) break;
    ++steps_run;
    wait_until(t0 + step.start_s + lag);
    const Fault& f = step.fault;
    Period p{NemesisName(f.kind), f.Describe(), Now(), 0};
    if (f.IsMovement()) {
      Line("%s", f.Describe() + "   (" + Counts(progress) + ")");
      const double began = Now();
      const double deadline = std::max(t0 + step.end_s + lag, began + o.movement_deadline_s);
      const int victim = f.victims.empty() ? 0 : f.victims[0];
      std::vector<int> after = members;
      if (f.newcomer != 0) after.push_back(f.newcomer);
      if (victim != 0) after = without(after, victim);
      std::sort(after.begin(), after.end());
      std::string failure;
      if (f.kind == NemesisKind::kJoin) {
        cluster.Start(f.newcomer, members);
      } else if (f.kind == NemesisKind::kDecommission) {
        auto c = ConnectChecker(victim, 5000);
        const Status st = c ? c->Decommission() : Status::Unavailable("cannot connect");
        if (!st.ok()) failure = "decommission of node " + std::to_string(victim) + " refused: " + st.ToString();
      } else {  // replace: the victim dies; once the others see it DOWN, a new node takes its place
        const std::uint64_t id = IdOf(victim, without(members, victim).front());
        cluster.Kill(victim);
        coordinators.Set(without(members, victim));
        const bool down = id != 0 && PollUntil(deadline, [&] {
          for (int i : without(members, victim)) {
            auto c = ConnectChecker(i);
            if (!c) return false;
            auto st = c->ClusterStatus();
            bool seen_down = false;
            for (const auto& m : st.members) seen_down |= m.id == id && m.status == "DOWN";
            if (!seen_down) return false;
          }
          return true;
        });
        if (!down) {
          failure = "node " + std::to_string(victim) + " (id " + std::to_string(id) +
                    ") was not seen DOWN by every member";
        } else {
          char hex[17];
          std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(id));
          cluster.Start(f.newcomer, without(members, victim), {"--replace", hex});
        }
      }
      if (failure.empty() &&
          !PollUntil(deadline, [&] {
            if (f.kind == NemesisKind::kDecommission && !cluster.Left(victim)) return false;
            return AllUp(after);
          }, std::chrono::milliseconds(500))) {
        std::string seen;
        for (int i : after) {
          auto l = Look(i);
          seen += "; node " + std::to_string(i) + ": " +
                  (l ? (l->moving ? "moving " : "") + l->movement : std::string("no answer"));
        }
        failure = f.Describe() + " did not settle within " +
                  std::to_string(static_cast<int>(deadline - began)) + " s" + seen;
      }
      const double took = Now() - began;
      movements.push_back({{"movement", f.Describe()},
                           {"start", began - t0},
                           {"seconds", took},
                           {"outcome", failure.empty() ? "done" : failure}});
      if (failure.empty()) {
        members = after;
      } else {
        movement_failures.push_back(failure);
        // Best effort to leave a cluster that the checks can still read: the newcomer goes,
        // a replaced victim comes back.
        if (f.newcomer != 0) cluster.Kill(f.newcomer);
        if (f.kind == NemesisKind::kReplace) cluster.Start(victim, without(members, victim));
        if (f.kind == NemesisKind::kDecommission && cluster.Left(victim)) {
          members = without(members, victim);
        }
      }
      coordinators.Set(members);
      p.end_s = Now();
      periods.push_back(p);
      lag = std::max(lag, p.end_s - (t0 + step.end_s));
      Line("%s", (failure.empty() ? "done: " : "FAILED: ") + f.Describe() + " in " +
                     std::to_string(took).substr(0, 5) + " s   (" + Counts(progress) + ")");
      if (!failure.empty()) {
        Line("%s", failure);
        break;  // the rest of the plan assumed this movement
      }
      continue;
    }
    if (f.IsNetwork()) {
      if (!ApplyRules(&f, slots, &error)) {
        setup_failed = true;
        break;
      }
    } else {
      for (int v : f.victims) {
        if (f.kind == NemesisKind::kKill || f.kind == NemesisKind::kCrash) {
          cluster.Kill(v);
        } else if (f.kind == NemesisKind::kSkew) {
          cluster.Stop(v);
          cluster.Start(v, members, {"--testing-clock-offset-s", std::to_string(f.clock_offset_s)});
        } else {
          cluster.Pause(v, true);
        }
      }
    }
    Line("%s", std::string(NemesisName(f.kind)) + ": " + f.Describe() + "   (" + Counts(progress) + ")");
    wait_until(t0 + step.end_s + lag);
    if (f.IsNetwork()) {
      if (!ApplyRules(nullptr, slots, &error)) {
        setup_failed = true;
        break;
      }
    } else {
      for (int v : f.victims) {
        if (f.kind == NemesisKind::kKill || f.kind == NemesisKind::kCrash) {
          cluster.Start(v, members);
        } else if (f.kind == NemesisKind::kSkew) {
          cluster.Stop(v);
          cluster.Start(v, members);
        } else {
          cluster.Pause(v, false);
        }
      }
    }
    p.end_s = Now();
    periods.push_back(p);
    for (int i : members) {
      if (cluster.Exited(i)) cluster.Start(i, members);  // a crash: recorded, and the node restarted
    }
    Line("heal %s", std::string(NemesisName(f.kind)) + "   (" + Counts(progress) + ")");
  }
  for (auto& t : threads) t.join();
  // The final heal: no rule, every node running.
  (void)ApplyRules(nullptr, slots, &error);
  for (int i : members) {
    cluster.Pause(i, false);
    if (cluster.Exited(i)) cluster.Start(i, members);
  }
  const double heal_s = Now();
  Line("final heal; workload done (%s)", Counts(progress));
  if (setup_failed) {
    std::fprintf(stderr, "partition: %s\n", error.c_str());
    return 2;
  }

  std::vector<Op> history;
  for (auto& v : per_client) history.insert(history.end(), v.begin(), v.end());
  std::sort(history.begin(), history.end(),
            [](const Op& a, const Op& b) { return a.invoke_s < b.invoke_s; });

  // After the heal: every node UP, hints delivered, every node repaired.
  const bool up = PollUntil(heal_s + o.heal_deadline_s, [&] { return AllUp(members); });
  const double up_s = Now() - heal_s;
  Line("%s", up ? "every node sees every node UP" : "NOT every node UP within the deadline");
  std::uint64_t hints_left = 0;
  const bool handed_off = PollUntil(Now() + 60, [&] {
    auto h = TotalHints(members);
    if (h) hints_left = *h;
    return h && *h == 0;
  });
  const double handoff_s = Now() - heal_s;
  Line("%s", handed_off ? "hinted handoff done" : "hints still held: " + std::to_string(hints_left));
  Json repairs = Json::array();
  for (int i : members) {
    rpc::RepairReply r;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto c = ConnectChecker(i, 5000);
      if (!c) continue;
      r = c->Repair(false, std::chrono::milliseconds(500), [](const rpc::RepairProgressInfo&) {});
      if (r.status.ok() && r.outcome.ok()) break;
    }
    std::uint64_t moved = 0;
    for (const auto& p : r.peers) moved += p.keys_sent + p.keys_received;
    repairs.push_back({{"node", i},
                       {"outcome", r.status.ok() ? r.outcome.ToString() : r.status.ToString()},
                       {"keys_moved", moved},
                       {"keys_differing", r.keys_differing}});
    Line("%s", "repair node " + std::to_string(i) + ": " +
                   (r.status.ok() ? r.outcome.ToString() : r.status.ToString()) + ", " +
                   std::to_string(moved) + " keys moved");
  }

  // Tombstones purged by the background repairs during the run (each node logs its own).
  std::uint64_t purged_in_run = 0;
  for (int i = 1; i <= slots; ++i) {
    std::ifstream log(o.report + "/nodes/n" + std::to_string(i) + ".log");
    for (std::string line; std::getline(log, line);) {
      const auto at = line.find(" tombstones purged");
      if (line.find("background repair:") == std::string::npos || at == std::string::npos) continue;
      const auto from = line.rfind(' ', at - 1);
      purged_in_run += std::strtoull(line.c_str() + from + 1, nullptr, 10);
    }
  }
  Line("%s", std::to_string(purged_in_run) + " tombstones purged by background repairs");

  std::set<std::string> keys;
  for (const Op& op : history) keys.insert(op.key);

  // Convergence, before any read at ALL (which repairs what it reads): every replica's own
  // record of every key, and the trees (a dry-run repair on every node finds nothing
  // differing). The replicas per key are the cluster's own N. Hints converge what their
  // coordinators saw fail; a write whose outcome was unknown (its coordinator cut off after it
  // reached one replica) leaves no hint, and only anti-entropy brings it to the others: both
  // are polled until they agree, for as long as background repairs need.
  std::vector<std::string> divergent;
  std::map<std::uint64_t, int> node_of_id;
  rpc::RingReply ring;
  if (auto c = ConnectChecker(members.front(), 5000)) ring = c->Ring(0);
  std::size_t n = 0;
  for (const auto& r : ring.ranges) n = std::max(n, r.replicas.size());
  for (const auto& m : ring.members) {
    for (int i = 1; i <= slots; ++i) {
      if (m.rpc == Rpc(i)) node_of_id[m.id] = i;
    }
  }
  std::map<int, std::vector<std::string>> keys_of_node;
  for (const auto& k : keys) {
    const auto t = ring::TokenOf(k);
    for (const auto& r : ring.ranges) {
      if (ring::TokenRange{r.begin, r.end}.Contains(t)) {
        for (auto id : r.replicas) keys_of_node[node_of_id[id]].push_back(k);
        break;
      }
    }
  }
  auto find_divergent = [&]() {
    std::map<std::string, std::vector<std::string>> replica_views;  // key -> one per replica
    for (const auto& [node, ks] : keys_of_node) {
      auto c = node > 0 ? ConnectChecker(node, 5000) : nullptr;
      for (const auto& k : ks) {
        std::string view = "(unreadable)";
        if (c) {
          auto r = c->Get(k, rpc::Consistency::kDefault, /*local=*/true);
          if (r.status.IsNotFound() && r.siblings.empty()) {
            // Nothing live: a tombstone, or nothing once a purge passed (background repairs
            // keep purging while this runs). Both read as absent.
            view = "(no live value)";
          } else if (r.status.ok()) {
            auto sibs = r.siblings;
            std::sort(sibs.begin(), sibs.end());
            view.clear();
            for (const auto& v : sibs) view += v + "\n";
            view += "ctx " + r.context;
          }
        }
        replica_views[k].push_back(view);
      }
    }
    divergent.clear();
    for (const auto& k : keys) {
      const auto& views = replica_views[k];
      const bool same = n > 0 && views.size() == n &&
                        std::all_of(views.begin(), views.end(), [&](const std::string& v) {
                          return v == views[0] && v != "(unreadable)";
                        });
      if (!same) divergent.push_back(k);
    }
  };
  find_divergent();
  const std::size_t divergent_at_heal = divergent.size();
  // The trees: background repairs go on purging while this runs (every tombstone of the run's
  // last seconds comes of age after it), and a purge reaches the replicas one after the other,
  // so a difference counts only if it outlasts the grace period and two repair rounds, plus 30 s.
  const double settle_s =
      30 + (workload.deletes ? o.tombstone_grace_s + 2.0 * o.repair_every_s : 0);
  // Each member's latest answer to a dry-run repair: keys differing with its peers, or 1 while
  // it has given none. A member busy with a background repair refuses a dry run (overloaded);
  // it keeps its last answer then, rather than counting as differing: under a slow build a
  // background repair may be running on some member at nearly every poll.
  std::map<int, std::uint64_t> latest;
  for (int i : members) latest[i] = 1;
  std::uint64_t tree_differing = 0;
  PollUntil(Now() + settle_s, [&] {
    if (!divergent.empty()) find_divergent();
    tree_differing = 0;
    for (int i : members) {
      auto c = ConnectChecker(i, 5000);
      if (!c) {
        latest[i] = 1;
      } else {
        auto r = c->Repair(true, std::chrono::milliseconds(500),
                           [](const rpc::RepairProgressInfo&) {});
        const bool busy = r.status.code() == Status::Code::kOverloaded ||
                          r.outcome.code() == Status::Code::kOverloaded;
        if (!busy) {
          latest[i] = (!r.status.ok() || !r.outcome.ok()) ? 1 : r.keys_differing;
        }
      }
      tree_differing += latest[i];
    }
    return divergent.empty() && tree_differing == 0;
  }, std::chrono::milliseconds(1000));
  Line("%s", std::to_string(divergent_at_heal) +
                 " keys differed between replicas after the heal and handoff, before repairs");
  const bool converged = divergent.empty() && tree_differing == 0;
  const double converged_s = Now() - heal_s;
  Line("%s", converged ? "every replica of every key agrees, trees included (N=" +
                             std::to_string(n) + ")"
                       : std::to_string(divergent.size()) + " divergent keys, " +
                             std::to_string(tree_differing) + " differing in the trees");

  // Final reads at ALL, through any node that answers.
  FinalState final;
  for (int node : members) {
    if (final.size() == keys.size()) break;
    auto c = ConnectChecker(node, 5000);
    if (!c) continue;
    for (const auto& k : keys) {
      if (final.count(k)) continue;
      auto r = c->Get(k, rpc::Consistency::kAll);
      if (r.status.ok()) final[k] = r.siblings;
      else if (r.status.IsNotFound()) final[k] = {};
    }
  }

  Findings f = Check(history, final, periods);
  for (int i : members) (void)cluster.Exited(i);
  const bool pass = f.lost == 0 && f.phantoms == 0 && f.unreadable_keys == 0 && f.undone == 0 &&
                    f.failed_present == 0 && converged && cluster.crashes().empty() &&
                    movement_failures.empty();

  // The report.
  {
    std::ofstream h(o.report + "/history.jsonl");
    for (const Op& op : history) {
      Json line{{"client", op.client},         {"node", op.node},
                {"kind", OpKindName(op.kind)}, {"key", op.key},
                {"element", op.element},       {"invoke", op.invoke_s - t0},
                {"complete", op.complete_s - t0}, {"outcome", OutcomeName(op.outcome)},
                {"error", op.error}};
      if (op.read) {
        line["read"] = std::vector<std::string>(op.seen.begin(), op.seen.end());
        line["read_done"] = op.read_done_s - t0;
      }
      if (!op.removed.empty()) line["removed"] = op.removed;
      h << line.dump() << "\n";
    }
  }
  {
    std::vector<Op> shifted = history;
    for (Op& op : shifted) {
      op.invoke_s -= t0;
      op.complete_s -= t0;
    }
    std::vector<Period> ps = periods;
    for (Period& p : ps) {
      p.start_s -= t0;
      p.end_s -= t0;
    }
    TimelineMarks marks{(Now() - t0) * 1.06, heal_s - t0,
                        converged ? heal_s + converged_s - t0 : -1};
    std::ofstream(o.report + "/timeline.svg") << TimelineSvg(shifted, ps, o.clients, marks);
  }
  Json avail = Json::array();
  std::string avail_text;
  for (const auto& a : f.availability) {
    const double share = a.ops ? static_cast<double>(a.ok) / a.ops : 0;
    avail.push_back({{"during", a.during}, {"ops", a.ops}, {"ok", a.ok}, {"share", share}});
    char buf[128];
    std::snprintf(buf, sizeof(buf), "  %-12s %6llu ops, %5.1f%% ok\n", a.during.c_str(),
                  static_cast<unsigned long long>(a.ops), 100 * share);
    avail_text += buf;
  }
  Json stale = Json::array();
  std::string stale_text;
  for (const auto& st : f.stale_reads) {
    stale.push_back({{"during", st.during}, {"reads", st.reads}, {"stale", st.stale}});
    char buf[128];
    std::snprintf(buf, sizeof(buf), "  %-12s %6llu reads, %5llu stale\n", st.during.c_str(),
                  static_cast<unsigned long long>(st.reads),
                  static_cast<unsigned long long>(st.stale));
    stale_text += buf;
  }
  Json findings = {
      {"seed", o.seed},
      {"nodes", o.nodes},
      {"clients", o.clients},
      {"time_s", o.time_s},
      {"nemesis", o.nemesis},
      {"workload", o.workload},
      {"attempted", f.attempted},
      {"acknowledged", f.acknowledged},
      {"failed", f.failed},
      {"unknown", f.unknown},
      {"lost", f.lost},
      {"lost_examples", f.lost_examples},
      {"failed_present", f.failed_present},
      {"unknown_present", f.unknown_present},
      {"phantoms", f.phantoms},
      {"phantom_examples", f.phantom_examples},
      {"undone", f.undone},
      {"undone_examples", f.undone_examples},
      {"failed_present_examples", f.failed_present_examples},
      {"removals", f.removals},
      {"removals_acknowledged", f.removals_acknowledged},
      {"stale_reads", stale},
      {"replicas_per_key", n},
      {"tombstones_purged_in_run", purged_in_run},
      {"unreadable_keys", f.unreadable_keys},
      {"keys", keys.size()},
      {"divergent_keys", divergent.size()},
      {"divergent_at_heal", divergent_at_heal},
      {"divergent_examples", Json(std::vector<std::string>(
                                 divergent.begin(),
                                 divergent.begin() + std::min<std::size_t>(20, divergent.size())))},
      {"tree_keys_differing", tree_differing},
      {"availability", avail},
      {"heal_to_all_up_s", up_s},
      {"heal_to_handoff_done_s", handed_off ? Json(handoff_s) : Json(nullptr)},
      {"heal_to_converged_s", converged ? Json(converged_s) : Json(nullptr)},
      {"repairs", repairs},
      {"faults", [&] {
         Json a = Json::array();
         for (const auto& p : periods)
           a.push_back({{"nemesis", p.nemesis}, {"detail", p.detail}, {"start", p.start_s - t0},
                        {"end", p.end_s - t0}});
         return a;
       }()},
      {"crashes", cluster.crashes()},
      {"movements", movements},
      {"steps_planned", schedule.size()},
      {"steps_run", steps_run},
      {"members_at_end", members},
      {"verdict", pass ? "pass" : "FAIL"}};
  std::ofstream(o.report + "/findings.json") << findings.dump(2) << "\n";
  char text[8192];
  std::snprintf(
      text, sizeof(text),
      "seed %llu: %llu attempted, %llu acknowledged, %llu failed, %llu unknown; "
      "%llu removals (%llu acknowledged), %llu tombstones purged in the run\n"
      "lost %llu, undone removals %llu, phantoms %llu, unreadable keys %llu, divergent keys %zu "
      "of %zu (trees: %llu keys differing)\n"
      "failed writes present anyway %llu, unknown present %llu\n"
      "heal -> all UP %.1f s, -> handoff done %s, -> converged %s\n"
      "availability by nemesis:\n%s"
      "stale quorum reads by nemesis:\n%s"
      "verdict: %s\n",
      static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(f.attempted),
      static_cast<unsigned long long>(f.acknowledged), static_cast<unsigned long long>(f.failed),
      static_cast<unsigned long long>(f.unknown), static_cast<unsigned long long>(f.removals),
      static_cast<unsigned long long>(f.removals_acknowledged),
      static_cast<unsigned long long>(purged_in_run), static_cast<unsigned long long>(f.lost), static_cast<unsigned long long>(f.undone),
      static_cast<unsigned long long>(f.phantoms),
      static_cast<unsigned long long>(f.unreadable_keys), divergent.size(), keys.size(),
      static_cast<unsigned long long>(tree_differing),
      static_cast<unsigned long long>(f.failed_present),
      static_cast<unsigned long long>(f.unknown_present), up_s,
      handed_off ? (std::to_string(handoff_s).substr(0, 5) + " s").c_str() : "not within 60 s",
      converged ? (std::to_string(converged_s).substr(0, 5) + " s").c_str() : "NO",
      avail_text.c_str(), stale_text.c_str(), pass ? "pass" : "FAIL");
  std::string out = text;
  for (const auto& e : f.lost_examples) out += "lost: " + e + "\n";
  for (const auto& e : f.phantom_examples) out += "phantom: " + e + "\n";
  for (const auto& e : f.undone_examples) out += "undone: " + e + "\n";
  for (const auto& e : f.failed_present_examples) out += "failed yet present: " + e + "\n";
  for (const auto& e : cluster.crashes()) out += "crash: " + e + "\n";
  for (const auto& e : movement_failures) out += "movement failed: " + e + "\n";
  {
    std::set<std::string> planned, ran;
    for (const Step& st : schedule) planned.insert(NemesisName(st.fault.kind));
    for (const Period& pr : periods) ran.insert(pr.nemesis);
    std::string missing;
    for (const auto& n : planned) {
      if (!ran.count(n)) missing += (missing.empty() ? "" : ", ") + n;
    }
    out += "steps run " + std::to_string(steps_run) + " of " + std::to_string(schedule.size()) +
           " planned" + (missing.empty() ? "" : "; never ran: " + missing) + "\n";
  }
  for (const auto& m : movements) {
    char line[160];
    std::snprintf(line, sizeof(line), "movement at %.1f s: %s, %s in %.1f s\n",
                  m["start"].get<double>(), m["movement"].get<std::string>().c_str(),
                  m["outcome"] == "done" ? "done" : "FAILED", m["seconds"].get<double>());
    out += line;
  }
  for (std::size_t i = 0; i < divergent.size() && i < 20; ++i) out += "divergent: " + divergent[i] + "\n";
  out += "report: " + o.report + "\n";
  std::ofstream(o.report + "/findings.txt") << out;
  std::printf("%s", out.c_str());
  cluster.StopAll();
  return pass ? 0 : 1;
}

}  // namespace
}  // namespace kv::partition

int main(int argc, char** argv) { return kv::partition::Main(argc, argv); }
