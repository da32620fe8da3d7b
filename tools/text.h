// Text helpers for the command-line tools: base64 for opaque contexts and binary values, and a
// UTF-8 validity check. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kv::tools {

// Standard alphabet with '=' padding (RFC 4648 section 4).
std::string Base64Encode(std::string_view bytes);
// nullopt if `text` is not canonical padded base64.
std::optional<std::string> Base64Decode(std::string_view text);

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace kv::tools
