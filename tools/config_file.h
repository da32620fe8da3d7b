// kvd's configuration file: TOML, one top-level key per command-line flag, named as the flag
// without its dashes (`probe-interval-ms = 200` is `--probe-interval-ms 200`). A flag given on
// the command line wins over the file. The file is read once, at start, before anything else
// is done; kvd calls these from main only.
//
// Strict, as an operator's typo must not pass silently: an unknown key, a section, a value of
// the wrong TOML type (a string for a number, a number for a switch) and a value the flag's own
// check refuses (out of range, not one of its choices) each fail the start with FILE:LINE.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace kv::tools {

// One `key = value` of the file, as text: a boolean as true or false, a number as written in
// decimal, a string as is.
struct ConfigEntry {
  enum class Type { kString, kInteger, kFloat, kBoolean };
  std::string key;
  std::string value;
  Type type = Type::kString;
  int line = 0;  // 1-based
};

// Parses TOML `text` (named `source` in errors). Tables, arrays, dates and times are refused:
// every setting is one scalar at the top level. Pure.
Result<std::vector<ConfigEntry>> ParseConfig(std::string_view text, const std::string& source);

// Reads and parses the file at `path`; refuses files over 1 MiB and files it cannot read.
Result<std::vector<ConfigEntry>> ReadConfigFile(const std::string& path);

// Sets the options of `app` (already parsed from the command line, so that what it holds wins)
// from `entries`, running each option's conversion and checks. `reserved` names options that
// are not settings (help, config itself) and so are unknown keys in a file.
Status ApplyConfig(CLI::App* app, const std::vector<ConfigEntry>& entries,
                   const std::string& source, const std::vector<std::string>& reserved);

// The effective configuration of `app` as a file ApplyConfig accepts: every option but
// `reserved`, with its help as a comment, the value given (command line or file) or else its
// default. An option with no value and no default is written as a comment. Each option must
// capture its default (App::option_defaults()->always_capture_default()).
std::string PrintConfig(const CLI::App& app, const std::vector<std::string>& reserved);

}  // namespace kv::tools
