#include "tools/config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace kv::tools {
namespace {

constexpr std::size_t kMaxConfigBytes = 1 << 20;

std::string At(const std::string& source, int line) {
  return source + ":" + std::to_string(line) + ": ";
}

const char* TypeName(ConfigEntry::Type t) {
  switch (t) {
    case ConfigEntry::Type::kString:
      return "a string";
    case ConfigEntry::Type::kInteger:
      return "an integer";
    case ConfigEntry::Type::kFloat:
      return "a number";
    case ConfigEntry::Type::kBoolean:
      return "true or false";
  }
  return "?";
}

// What TOML type an option takes, from how CLI11 parses it: a switch a boolean, a number a
// number, anything else a string.
ConfigEntry::Type WantedType(const CLI::Option& op) {
  if (op.get_expected_min() == 0) return ConfigEntry::Type::kBoolean;
  const std::string t = op.get_type_name();
  auto starts = [&](const char* p) { return t.rfind(p, 0) == 0; };
  if (starts("INT") || starts("UINT")) return ConfigEntry::Type::kInteger;
  if (starts("FLOAT")) return ConfigEntry::Type::kFloat;
  if (starts("BOOLEAN")) return ConfigEntry::Type::kBoolean;
  return ConfigEntry::Type::kString;
}

bool Accepts(ConfigEntry::Type wanted, ConfigEntry::Type got) {
  return wanted == got ||
         (wanted == ConfigEntry::Type::kFloat && got == ConfigEntry::Type::kInteger);
}

bool Reserved(const std::vector<std::string>& reserved, const std::string& key) {
  return std::find(reserved.begin(), reserved.end(), key) != reserved.end();
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// `text` as comment lines of at most about 96 columns.
std::string Comment(const std::string& text) {
  std::string out, line = "#";
  std::istringstream words(text);
  std::string word;
  while (words >> word) {
    if (line.size() + 1 + word.size() > 96 && line != "#") {
      out += line + "\n";
      line = "#";
    }
    line += " " + word;
  }
  return out + line + "\n";
}

// The options of `app` and of its option groups (nameless subcommands), groups after.
std::vector<const CLI::Option*> AllOptions(const CLI::App& app) {
  std::vector<const CLI::Option*> out = app.get_options();
  for (const CLI::App* group : app.get_subcommands({})) {
    if (!group->get_name().empty()) continue;  // a real subcommand: not kvd's settings
    for (const CLI::Option* op : AllOptions(*group)) out.push_back(op);
  }
  return out;
}

}  // namespace

Result<std::vector<ConfigEntry>> ParseConfig(std::string_view text, const std::string& source) {
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(At(source, static_cast<int>(e.source().begin.line)) +
                                   std::string(e.description()));
  }
  std::vector<ConfigEntry> entries;
  for (auto&& [key, node] : table) {
    ConfigEntry e;
    e.key = std::string(key.str());
    e.line = static_cast<int>(key.source().begin.line);
    if (node.is_table()) {
      return Status::InvalidArgument(At(source, e.line) + "[" + e.key +
                                     "]: sections are not used; every key is at the top level, "
                                     "named as its flag without the dashes");
    }
    if (auto s = node.value_exact<std::string>()) {
      e.value = *s;
      e.type = ConfigEntry::Type::kString;
    } else if (auto i = node.value_exact<std::int64_t>()) {
      e.value = std::to_string(*i);
      e.type = ConfigEntry::Type::kInteger;
    } else if (auto d = node.value_exact<double>()) {
      std::ostringstream out;
      out.precision(17);
      out << *d;
      e.value = out.str();
      e.type = ConfigEntry::Type::kFloat;
    } else if (auto b = node.value_exact<bool>()) {
      e.value = *b ? "true" : "false";
      e.type = ConfigEntry::Type::kBoolean;
    } else {
      return Status::InvalidArgument(At(source, e.line) + e.key +
                                     ": takes one value (a string, a number or true/false), "
                                     "not a list, a date or a time");
    }
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(),
            [](const ConfigEntry& a, const ConfigEntry& b) { return a.line < b.line; });
  return entries;
}

Result<std::vector<ConfigEntry>> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("cannot read the config file " + path);
  std::string text;
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) {
      return Status::InvalidArgument("config file " + path + " is over 1 MiB: not a config file");
    }
  }
  if (in.bad()) return Status::InvalidArgument("cannot read the config file " + path);
  return ParseConfig(text, path);
}

Status ApplyConfig(CLI::App* app, const std::vector<ConfigEntry>& entries,
                   const std::string& source, const std::vector<std::string>& reserved) {
  for (const ConfigEntry& e : entries) {
    const std::string at = At(source, e.line);
    CLI::Option* op = Reserved(reserved, e.key) ? nullptr : app->get_option_no_throw("--" + e.key);
    if (op == nullptr || op->get_lnames().empty() || op->get_lnames()[0] != e.key) {
      return Status::InvalidArgument(at + "unknown key '" + e.key +
                                     "' (keys are kvd's flags without their dashes: kvd "
                                     "--print-config lists them)");
    }
    if (op->count() > 0) continue;  // given on the command line: that wins
    const ConfigEntry::Type wanted = WantedType(*op);
    if (!Accepts(wanted, e.type)) {
      return Status::InvalidArgument(at + e.key + " takes " + TypeName(wanted) + ", not " +
                                     TypeName(e.type) + " (" + e.value + ")");
    }
    try {
      op->add_result(e.value);
      op->run_callback();
    } catch (const CLI::Error& x) {
      return Status::InvalidArgument(at + e.key + " = " + e.value + ": " + x.what());
    }
  }
  return Status::Ok();
}

std::string PrintConfig(const CLI::App& app, const std::vector<std::string>& reserved) {
  std::string out =
      "# kvd configuration (kvd --config FILE). Each key is a kvd flag without its dashes;\n"
      "# a flag given on the command line wins over this file.\n";
  for (const CLI::Option* op : AllOptions(app)) {
    if (op->get_lnames().empty()) continue;  // positional, or short only
    const std::string& key = op->get_lnames()[0];
    if (Reserved(reserved, key)) continue;
    std::string value;
    bool set = false;
    if (op->count() > 0) {
      const auto& results = op->results();
      if (!results.empty()) value = results.back();
      set = true;
      if (op->get_expected_min() == 0) {
        // A switch given as a bare flag holds CLI11's "true" or a count.
        value = (value == "false" || value == "0" || value == "-1") ? "false" : "true";
      }
    } else {
      value = op->get_default_str();
      set = !value.empty();
      if (op->get_expected_min() == 0) {
        value = (value.empty() || value == "false" || value == "0") ? "false" : "true";
        set = true;
      }
    }
    out += "\n" + Comment(op->get_description());
    if (!set) {
      out += "# " + key + " =\n";
      continue;
    }
    switch (WantedType(*op)) {
      case ConfigEntry::Type::kString:
        out += key + " = " + Quoted(value) + "\n";
        break;
      default:
        out += key + " = " + value + "\n";
    }
  }
  return out;
}

}  // namespace kv::tools
