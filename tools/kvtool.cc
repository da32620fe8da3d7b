// kvtool: the command-line client.
//
//   kvtool [--host HOST:PORT] [--json] [--timeout-ms MS] put KEY VALUE [--context CTX]
//   kvtool ... get KEY
//   kvtool ... delete KEY [--context CTX]
//   kvtool ... bench [options]
//
// --host defaults to $KV_HOST, else 127.0.0.1:7701. VALUE "-" reads the value from stdin,
// binary safe. Contexts are printed and taken as base64.
// Exit codes: 0 ok, 1 key not found, 2 bad usage or rejected input, 3 node unreachable or the
// request failed. Every non-zero exit prints one line on stderr saying why.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "rpc/client_conn.h"
#include "tools/bench.h"
#include "tools/text.h"

namespace {

using kv::Status;

constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;
constexpr int kExitUsage = 2;
constexpr int kExitFailed = 3;

struct Globals {
  std::string host = "127.0.0.1:7701";
  bool json = false;
  int timeout_ms = 10000;
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

int Report(const Status& s) { return Complain(ExitFor(s), s.ToString()); }

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

kv::Result<std::unique_ptr<kv::rpc::BlockingClient>> Connect(const Globals& g) {
  return kv::rpc::BlockingClient::Connect(g.host, std::chrono::milliseconds(g.timeout_ms));
}

int DoGet(const Globals& g, const std::string& key) {
  auto client = Connect(g);
  if (!client.ok()) return Report(client.status());
  kv::rpc::GetReply r = client.value()->Get(key);
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
  kv::rpc::WriteReply r = client.value()->Put(key, value, ctx.value());
  if (!r.status.ok()) return Report(r.status);
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
  kv::rpc::WriteReply r = client.value()->Delete(key, ctx.value());
  if (r.status.IsNotFound()) return Complain(kExitNotFound, "not found: " + JsonKey(key));
  if (!r.status.ok()) return Report(r.status);
  if (g.json) {
    PrintJson({{"key", key}, {"deleted", true}, {"context", kv::tools::Base64Encode(r.context)}});
  } else {
    std::cout << "OK\n";
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"kvtool: client for the kv store"};
  app.require_subcommand(1);
  app.add_option("--host", g.host, "Node to talk to, HOST:PORT")
      ->envname("KV_HOST")
      ->capture_default_str();
  app.add_flag("--json", g.json, "Print results as JSON");
  app.add_option("--timeout-ms", g.timeout_ms, "Bound on connecting and on each request")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600 * 1000));

  std::string key, value, context;
  auto* get = app.add_subcommand("get", "Print the value (or every sibling) and the context");
  get->add_option("KEY", key)->required();

  auto* put = app.add_subcommand("put", "Write a value; without --context it adds a sibling");
  put->add_option("KEY", key)->required();
  put->add_option("VALUE", value, "The value, or - to read it from stdin")->required();
  put->add_option("--context", context, "Context from a get: supersede what it saw");

  auto* del = app.add_subcommand(
      "delete", "Delete the key; without --context, everything the node holds for it");
  del->add_option("KEY", key)->required();
  del->add_option("--context", context, "Context from a get: delete only what it saw");

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
  std::string host;
  int port = 0;
  if (Status s = kv::rpc::ParseHostPort(g.host, false, &host, &port); !s.ok()) {
    return Complain(kExitUsage, "--host: " + s.message());
  }
  if ((get->parsed() || put->parsed() || del->parsed()) && key.empty()) {
    return Complain(kExitUsage, "invalid argument: key is empty");
  }
  if (get->parsed()) return DoGet(g, key);
  if (put->parsed()) return DoPut(g, key, value, context);
  if (del->parsed()) return DoDelete(g, key, context);
  if (bench->parsed()) {
    Status s = kv::tools::RunBench(g.host, bench_options, g.json);
    return s.ok() ? kExitOk : Report(s);
  }
  return Complain(kExitUsage, "no command (see kvtool --help)");
}
