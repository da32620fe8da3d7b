#include "tools/log.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>

namespace kv::log {
namespace {

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarning:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

Level FromSpd(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return Level::kDebug;
    case spdlog::level::info:
      return Level::kInfo;
    case spdlog::level::warn:
      return Level::kWarning;
    default:
      return Level::kError;
  }
}

const char* Name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "?";
}

// A JSON string's body: quotes, backslashes and control characters escaped; bytes that are not
// UTF-8 become U+FFFD, so that every line parses.
void JsonEscape(std::string_view s, std::string* out) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += static_cast<char>(c);
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c == '\r') {
      *out += "\\r";
    } else if (c == '\t') {
      *out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      *out += buf;
    } else if (c < 0x80) {
      *out += static_cast<char>(c);
    } else {
      // A well-formed UTF-8 sequence passes whole; anything else is one U+FFFD per byte.
      const std::size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
      bool ok = len != 0 && i + len <= s.size();
      for (std::size_t k = 1; ok && k < len; ++k) {
        ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      }
      if (ok && len == 3) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogate
      }
      if (ok && len == 4) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
      }
      if (ok) {
        out->append(s.substr(i, len));
        i += len - 1;
      } else {
        *out += "\\ufffd";
      }
    }
  }
}

// In text, a message stays on one line: newlines and other control characters are escaped.
void TextEscape(std::string_view s, std::string* out) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      *out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      *out += buf;
    } else {
      *out += ch;
    }
  }
}

struct State {
  std::mutex mu;  // guards everything below but `logger` reads (spdlog loggers are thread-safe)
  Options options;
  std::string node;
  std::shared_ptr<spdlog::logger> logger;
  struct Site {
    std::int64_t second = 0;
    int lines = 0;
    std::uint64_t held = 0;
  };
  std::map<const char*, Site> sites;
  std::mutex logger_mu;  // guards `logger` alone, so that writers never wait on `mu`
};

State& S() {
  static State* s = new State();  // never destroyed: threads may log during exit
  return *s;
}

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_configured{false};

class LineFormatter final : public spdlog::formatter {
 public:
  LineFormatter(Format format, std::string node) : format_(format), node_(std::move(node)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        msg.time.time_since_epoch())
                        .count();
    const std::string line = FormatLine(format_, ms, FromSpd(msg.level), node_,
                                        std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_, node_);
  }

 private:
  Format format_;
  std::string node_;
};

// A new logger for the current options and node; S().mu held.
Status Rebuild(State& s) {
  spdlog::sink_ptr sink;
  try {
    if (s.options.file.empty()) {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(s.options.file, false);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Status::InvalidArgument("cannot open the log file " + s.options.file + ": " + e.what());
  }
  auto logger = std::make_shared<spdlog::logger>("kvd", sink);
  logger->set_formatter(std::make_unique<LineFormatter>(s.options.format, s.node));
  logger->set_level(ToSpd(s.options.level));
  logger->flush_on(spdlog::level::trace);  // every line out at once: a crash loses none
  std::lock_guard<std::mutex> lock(s.logger_mu);
  s.logger = std::move(logger);
  return Status::Ok();
}

}  // namespace

bool ParseLevel(std::string_view text, Level* level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarning, Level::kError}) {
    if (text == Name(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

bool ParseFormat(std::string_view text, Format* format) {
  if (text == "text") {
    *format = Format::kText;
  } else if (text == "json") {
    *format = Format::kJson;
  } else {
    return false;
  }
  return true;
}

std::string FormatLine(Format format, std::int64_t unix_ms, Level level, std::string_view node,
                       std::string_view message) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[96];  // room for any year GCC can imagine
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  std::string out;
  out.reserve(message.size() + 96);
  if (format == Format::kJson) {
    out += "{\"ts\":\"";
    out += ts;
    out += "\",\"level\":\"";
    out += Name(level);
    out += "\",\"node\":\"";
    JsonEscape(node, &out);
    out += "\",\"msg\":\"";
    JsonEscape(message, &out);
    out += "\"}";
    return out;
  }
  out += ts;
  out += ' ';
  out += Name(level);
  out += " node=";
  out += node.empty() ? "-" : node;
  out += ' ';
  TextEscape(message, &out);
  return out;
}

Status Configure(const Options& options) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.options = options;
  Status st = Rebuild(s);
  if (!st.ok()) return st;
  g_level.store(static_cast<int>(options.level));
  g_configured.store(true);
  return Status::Ok();
}

void SetNode(const std::string& id) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.node = id;
  if (g_configured.load()) (void)Rebuild(s);
}

void SetLevel(Level level) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.options.level = level;
  g_level.store(static_cast<int>(level));
  if (g_configured.load()) (void)Rebuild(s);
}

Status Reopen() {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.options.file.empty()) return Status::Ok();
  return Rebuild(s);
}

bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(); }

void Write(Level level, std::string_view message) {
  if (!Enabled(level)) return;
  if (!g_configured.load()) {
    std::fprintf(stderr, "kvd: %.*s\n", static_cast<int>(message.size()), message.data());
    return;
  }
  std::shared_ptr<spdlog::logger> logger;
  {
    std::lock_guard<std::mutex> lock(S().logger_mu);
    logger = S().logger;
  }
  logger->log(ToSpd(level), spdlog::string_view_t(message.data(), message.size()));
}

void WriteLimited(Level level, const char* site, std::string_view message) {
  if (!Enabled(level)) return;
  State& s = S();
  std::uint64_t held = 0;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    State::Site& site_state = s.sites[site];
    if (site_state.second != now) {
      site_state.second = now;
      site_state.lines = 0;
    }
    if (site_state.lines >= s.options.limit_per_second) {
      ++site_state.held;
      return;
    }
    ++site_state.lines;
    held = site_state.held;
    site_state.held = 0;
  }
  if (held == 0) {
    Write(level, message);
  } else {
    Write(level, std::string(message) + " (" + std::to_string(held) +
                     " lines like this one held back)");
  }
}

void KjLogRoute::logMessage(kj::LogSeverity severity, const char* file, int line,
                            int contextDepth, kj::String&& text) {
  (void)contextDepth;
  Level level = Level::kError;
  switch (severity) {
    case kj::LogSeverity::INFO:
    case kj::LogSeverity::DBG:
      level = Level::kDebug;
      break;
    case kj::LogSeverity::WARNING:
      level = Level::kWarning;
      break;
    default:
      level = Level::kError;
  }
  std::string_view message(text.cStr(), text.size());
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.remove_suffix(1);
  }
  // The call site's file name is a literal with a stable address: one budget per file, the
  // line kept in the message.
  WriteLimited(level, file,
               std::string(message) + " (" + file + ":" + std::to_string(line) + ")");
}


}  // namespace kv::log
