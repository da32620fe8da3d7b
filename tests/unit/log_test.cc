// kvd's log: the line formats (JSON that parses whatever the message holds), the level, the
// per-site rate limit, reopening after a move, and KJ's log routed through it.
#include "tools/log.h"

#include <gtest/gtest.h>
#include <kj/debug.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/unit/temp_dir.h"

namespace kv::log {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Log, TextLinesCarryUtcTimeLevelAndNodeOnOneLine) {
  const std::string line = FormatLine(Format::kText, 1796688000123, Level::kWarning,
                                      "00ab00cd00ef0011", "two\nlines\tand a \x01");
  EXPECT_EQ(line, "2026-12-08T00:00:00.123Z warning node=00ab00cd00ef0011 two\\nlines\\x09and a "
                  "\\x01");
  EXPECT_EQ(FormatLine(Format::kText, 0, Level::kInfo, "", "x"),
            "1970-01-01T00:00:00.000Z info node=- x");
}

TEST(Log, JsonLinesParseWhateverTheMessageHolds) {
  const std::string nasty = std::string("quote \" backslash \\ newline \n nul ") +
                            std::string(1, '\0') + " bad utf-8 \xff\xc3 good \xc3\xa9 \xf0\x9f\x98\x80" +
                            " surrogate \xed\xa0\x80 overlong \xe0\x80\x80 end";
  const std::string line = FormatLine(Format::kJson, 1796688000123, Level::kError, "00ab", nasty);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);  // throws if not JSON
  EXPECT_EQ(j["ts"], "2026-12-08T00:00:00.123Z");
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["node"], "00ab");
  const std::string msg = j["msg"];
  EXPECT_NE(msg.find("quote \" backslash \\ newline \n nul "), std::string::npos) << msg;
  EXPECT_NE(msg.find("good \xc3\xa9 \xf0\x9f\x98\x80"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad utf-8 \xef\xbf\xbd\xef\xbf\xbd good"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("\xed\xa0\x80"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("\xe0\x80\x80"), std::string::npos) << msg;
}

TEST(Log, LevelRateLimitReopenAndKjRouting) {
  kv::test::TempDir dir("log");
  const std::string path = dir.path() + "/kvd.log";
  Options o;
  o.level = Level::kInfo;
  o.format = Format::kJson;
  o.file = path;
  o.limit_per_second = 5;
  ASSERT_TRUE(Configure(o).ok());
  SetNode("1234567890abcdef");
  Write(Level::kDebug, "not shown");
  Write(Level::kInfo, "shown");
  // A flood from one site: at most 5 a second get through (10 over a second boundary).
  static const char kSite[] = "flood";
  for (int i = 0; i < 1000; ++i) WriteLimited(Level::kError, kSite, "flood " + std::to_string(i));
  {
    // Routed KJ log lines land here, at their level.
    KjLogRoute route;
    KJ_LOG(WARNING, "from kj", 42);
  }
  auto lines = Lines(path);
  int flood = 0;
  bool saw_shown = false, saw_kj = false;
  for (const std::string& l : lines) {
    const auto j = nlohmann::json::parse(l);
    EXPECT_EQ(j["node"], "1234567890abcdef");
    const std::string msg = j["msg"];
    EXPECT_NE(msg, "not shown");
    saw_shown |= msg == "shown";
    if (msg.rfind("flood", 0) == 0) ++flood;
    if (msg.find("from kj") != std::string::npos) {
      saw_kj = true;
      EXPECT_EQ(j["level"], "warning");
      EXPECT_NE(msg.find("log_test.cc"), std::string::npos) << msg;
    }
  }
  EXPECT_TRUE(saw_shown);
  EXPECT_TRUE(saw_kj);
  EXPECT_GE(flood, 5);
  EXPECT_LE(flood, 10);
  // After the flood's second has passed, the next line of that site says what was held back.
  // (The clock's next second is the behaviour under test, not an event to wait for.)
  const auto second = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  std::this_thread::sleep_until(std::chrono::steady_clock::time_point(second + 1s));
  WriteLimited(Level::kError, kSite, "after");
  lines = Lines(path);
  const auto last = nlohmann::json::parse(lines.back());
  EXPECT_NE(last["msg"].get<std::string>().find("after ("), std::string::npos) << last;
  EXPECT_NE(last["msg"].get<std::string>().find("lines like this one held back"),
            std::string::npos);

  // logrotate: the file is moved away, SIGHUP reopens: new lines go to a new file.
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  Write(Level::kInfo, "still to the old file");
  ASSERT_TRUE(Reopen().ok());
  Write(Level::kInfo, "to the new file");
  lines = Lines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("to the new file"), std::string::npos);
  EXPECT_NE(Lines(path + ".1").back().find("still to the old file"), std::string::npos);

  { std::ofstream(dir.path() + "/a-file") << "x"; }
  o.file = dir.path() + "/a-file/kvd.log";  // under a file: cannot be created
  EXPECT_FALSE(Configure(o).ok());
  o.file.clear();
  ASSERT_TRUE(Configure(o).ok());  // back to stderr for the other tests
}

}  // namespace
}  // namespace kv::log
