// kvd's config file (tools/config_file.h): any bytes as a TOML file, applied to options of every
// kind kvd has (integers with ranges, a float, strings, a choice, a switch). What applies must
// print (--print-config) as a file that applies again to the same settings and prints the same.
#include <CLI/CLI.hpp>

#include "tests/fuzz/fuzz.h"
#include "tools/config_file.h"

namespace {

struct App {
  int interval_ms = 1000;
  std::size_t threads = 2;
  std::int64_t offset_s = 0;
  double phi = 8.0;
  std::string name = "kv", rack, mode = "on";
  bool sync = false;
  CLI::App app{"fuzz"};
  App() {
    app.option_defaults()->always_capture_default();
    app.add_option("--interval-ms", interval_ms, "i")->check(CLI::Range(1, 600000));
    app.add_option("--threads", threads, "t")->check(CLI::Range(std::size_t{1}, std::size_t{64}));
    app.add_option("--offset-s", offset_s, "o");
    app.add_option("--phi", phi, "p");
    auto* g = app.add_option_group("group");
    g->add_option("--name", name, "n");
    g->add_option("--rack", rack, "r");
    g->add_option("--mode", mode, "m")->check(CLI::IsMember({"on", "off"}));
    app.add_flag("--sync", sync, "s");
    const char* argv[] = {"fuzz"};
    app.parse(1, const_cast<char**>(argv));
  }
};

const std::vector<std::string> kReserved = {"help"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto entries = kv::tools::ParseConfig(Bytes(data, size), "fuzz.toml");
  if (!entries.ok()) {
    FUZZ_CHECK(entries.status().message().rfind("fuzz.toml:", 0) == 0);  // says where
    return 0;
  }
  App a;
  const kv::Status applied = kv::tools::ApplyConfig(&a.app, entries.value(), "fuzz.toml", kReserved);
  if (!applied.ok()) {
    FUZZ_CHECK(applied.message().rfind("fuzz.toml:", 0) == 0);
    return 0;
  }
  const std::string printed = kv::tools::PrintConfig(a.app, kReserved);
  auto again = kv::tools::ParseConfig(printed, "printed.toml");
  FUZZ_CHECK(again.ok());
  App b;
  FUZZ_CHECK(kv::tools::ApplyConfig(&b.app, again.value(), "printed.toml", kReserved).ok());
  FUZZ_CHECK(b.interval_ms == a.interval_ms && b.threads == a.threads &&
             b.offset_s == a.offset_s && b.name == a.name && b.rack == a.rack &&
             b.mode == a.mode && b.sync == a.sync);
  FUZZ_CHECK(kv::tools::PrintConfig(b.app, kReserved) == printed);
  return 0;
}
