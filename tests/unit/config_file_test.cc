// The TOML configuration file against a CLI11 app shaped like kvd's: strict types, the line of
// every refusal, the command line winning, and --print-config round trips.
#include "tools/config_file.h"

#include <gtest/gtest.h>

#include <memory>

namespace kv::tools {
namespace {

const std::vector<std::string> kReserved = {"help", "config"};

struct Settings {
  int interval_ms = 1000;
  double phi = 8.0;
  std::string name = "kv";
  std::string rack;
  bool sync = false;
  std::size_t threads = 2;
};

struct TestApp {
  Settings s;
  CLI::App app{"test"};
  explicit TestApp(std::vector<std::string> argv = {}) {
    app.option_defaults()->always_capture_default();
    std::string config;
    app.add_option("--config", config, "the file");
    app.add_option("--interval-ms", s.interval_ms, "An interval")->check(CLI::Range(1, 10000));
    app.add_option("--phi", s.phi, "A threshold");
    auto* g = app.add_option_group("group");
    g->add_option("--name", s.name, "A name with \"quotes\"");
    g->add_option("--rack", s.rack, "A rack");
    app.add_flag("--sync", s.sync, "A switch");
    app.add_option("--threads", s.threads, "Threads")->check(CLI::Range(1, 64));
    argv.insert(argv.begin(), "test");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    app.parse(static_cast<int>(args.size()), args.data());
  }
  Status Apply(const std::string& text) {
    auto entries = ParseConfig(text, "kvd.toml");
    if (!entries.ok()) return entries.status();
    return ApplyConfig(&app, entries.value(), "kvd.toml", kReserved);
  }
};

TEST(ConfigFile, SetsEveryKindOfOptionAndTheCommandLineWins) {
  TestApp t({"--threads", "7"});
  ASSERT_TRUE(t.Apply("# a comment\n"
                      "interval-ms = 250\n"
                      "phi = 5.5\n"
                      "name = \"prod\"\n"  // in an option group
                      "sync = true\n"
                      "threads = 3\n")
                  .ok());
  EXPECT_EQ(t.s.interval_ms, 250);
  EXPECT_DOUBLE_EQ(t.s.phi, 5.5);
  EXPECT_EQ(t.s.name, "prod");
  EXPECT_TRUE(t.s.sync);
  EXPECT_EQ(t.s.threads, 7u);  // given on the command line
  TestApp u;
  ASSERT_TRUE(u.Apply("phi = 9\nsync = false\n").ok());  // an integer where a float goes
  EXPECT_DOUBLE_EQ(u.s.phi, 9.0);
  EXPECT_FALSE(u.s.sync);
}

// Each refusal names the file and the line of the offending key.
TEST(ConfigFile, MistakesAreRefusedWithTheirLine) {
  struct Case {
    std::string text, expect;
  };
  const std::vector<Case> cases = {
      {"phi = 8\n\nintervall-ms = 5\n", "kvd.toml:3: unknown key 'intervall-ms'"},
      {"help = true\n", "kvd.toml:1: unknown key 'help'"},
      {"config = \"x\"\n", "kvd.toml:1: unknown key 'config'"},
      {"\ninterval-ms = \"fast\"\n", "kvd.toml:2: interval-ms takes an integer, not a string"},
      {"interval-ms = 1.5\n", "kvd.toml:1: interval-ms takes an integer, not a number"},
      {"sync = 1\n", "kvd.toml:1: sync takes true or false, not an integer"},
      {"name = 3\n", "kvd.toml:1: name takes a string, not an integer"},
      {"phi = 1\ninterval-ms = 0\n", "kvd.toml:2: interval-ms = 0: "},
      {"threads = 65\n", "kvd.toml:1: threads = 65: "},
      {"threads = -1\n", "kvd.toml:1: threads = -1: "},
      {"rack = [\"a\", \"b\"]\n", "kvd.toml:1: rack: takes one value"},
      {"when = 1979-05-27\n", "kvd.toml:1: when: takes one value"},
      {"[gossip]\nphi = 8\n", "kvd.toml:1: [gossip]: sections are not used"},
      {"phi = 8\nphi = 9\n", "kvd.toml:2:"},  // TOML: a key defined twice
      {"phi = \n", "kvd.toml:1:"},
      {"name = \"unterminated\n", "kvd.toml:1:"},
  };
  for (const Case& c : cases) {
    TestApp t;
    const Status s = t.Apply(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.message().rfind(c.expect, 0), 0u) << c.text << " -> " << s.message();
  }
  // An out-of-range value leaves the setting as it was.
  TestApp t;
  EXPECT_FALSE(t.Apply("threads = 65\n").ok());
  EXPECT_EQ(t.s.threads, 2u);
}

TEST(ConfigFile, PrintedConfigReadsBackToTheSameSettings) {
  TestApp t({"--sync", "--rack", "r\"1\\\n"});
  ASSERT_TRUE(t.Apply("interval-ms = 300\nname = \"x y\"\n").ok());
  const std::string printed = PrintConfig(t.app, kReserved);
  EXPECT_NE(printed.find("interval-ms = 300\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("phi = 8"), std::string::npos) << printed;  // a default
  EXPECT_NE(printed.find("sync = true\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("# A name with \"quotes\"\n"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("config ="), std::string::npos) << printed;
  TestApp u;
  ASSERT_TRUE(u.Apply(printed).ok()) << printed;
  EXPECT_EQ(u.s.interval_ms, 300);
  EXPECT_EQ(u.s.name, "x y");
  EXPECT_EQ(u.s.rack, "r\"1\\\n");
  EXPECT_TRUE(u.s.sync);
  EXPECT_EQ(u.s.threads, 2u);
  EXPECT_EQ(PrintConfig(u.app, kReserved), printed);
  // An option with no value and no default is a comment, and reads back as unset.
  TestApp empty;
  const std::string blank = PrintConfig(empty.app, kReserved);
  EXPECT_NE(blank.find("\n# rack =\n"), std::string::npos) << blank;
  TestApp v;
  ASSERT_TRUE(v.Apply(blank).ok());
  EXPECT_EQ(v.s.rack, "");
}

TEST(ConfigFile, FilesThatCannotBeConfigsAreRefused) {
  EXPECT_FALSE(ReadConfigFile("/nonexistent/kvd.toml").ok());
  auto binary = ParseConfig(std::string("\0\x01\x02", 3), "b.toml");
  EXPECT_FALSE(binary.ok());
}

}  // namespace
}  // namespace kv::tools
