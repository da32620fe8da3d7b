// kvd's log: one line per event, with a UTC timestamp, a level and the node's id, as text or
// as JSON (one object per line), on stderr or in a file that SIGHUP reopens (logrotate). Built
// on spdlog; KJ's own log output (KJ_LOG, its warnings) is routed here too.
//
// Lines a fault can repeat thousands of times a second go through WriteLimited, which lets at
// most a few lines per second through for each call site and says how many it held back.
//
// Configure, SetNode and Reopen are for kvd's main thread; Write and WriteLimited may be called
// from any thread once Configure has run (before it, they write plain text on stderr).
#pragma once

#include <kj/exception.h>

#include <string>
#include <string_view>

#include "storage/status.h"

namespace kv::log {

enum class Level { kDebug, kInfo, kWarning, kError };
enum class Format { kText, kJson };

// "debug", "info", "warning", "error"; false if `text` is none of them.
bool ParseLevel(std::string_view text, Level* level);
// "text", "json".
bool ParseFormat(std::string_view text, Format* format);

struct Options {
  Level level = Level::kInfo;
  Format format = Format::kText;
  std::string file;  // empty: stderr
  // WriteLimited: lines per second let through for one call site.
  int limit_per_second = 10;
};

// Starts logging as `options` say. Fails if the file cannot be opened for appending.
Status Configure(const Options& options);
// The node id every line carries from now on (16 hex digits).
void SetNode(const std::string& id);
// Changes the least level logged (SIGHUP re-reads it from the config file).
void SetLevel(Level level);
// Reopens the log file (after logrotate moved it away); nothing to do on stderr.
Status Reopen();

bool Enabled(Level level);
void Write(Level level, std::string_view message);
// As Write, but at most Options::limit_per_second lines a second for `site` (a string literal
// naming the call site: its address is the key); the next line let through says how many were
// held back.
void WriteLimited(Level level, const char* site, std::string_view message);

// One line in the format of `options`, as Write emits it (without the newline). Pure: for tests
// and for the formatter.
std::string FormatLine(Format format, std::int64_t unix_ms, Level level, std::string_view node,
                       std::string_view message);

// Routes KJ's log output on the thread that creates it (KJ_LOG, and what KJ itself logs)
// through this log, rate-limited per source file, for as long as it lives. KJ requires it on
// the stack: declare one at the top of each thread that runs a KJ event loop.
class KjLogRoute final : public kj::ExceptionCallback {
 public:
  void logMessage(kj::LogSeverity severity, const char* file, int line, int contextDepth,
                  kj::String&& text) override;
};

}  // namespace kv::log
