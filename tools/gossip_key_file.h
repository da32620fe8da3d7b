// The gossip key file kvd reads (--gossip-key-file): the keyring of gossip encryption
// (membership/gossip_seal.h), one base64 key per line as `kvtool keygen` prints it, the first
// key the primary; blank lines and lines starting with '#' are skipped. The file must be
// readable and writable by its owner only (as ssh asks of a private key): kvd refuses it
// otherwise, and refuses anything else in it with the line's number.
#pragma once

#include <optional>
#include <string>

#include "membership/gossip_seal.h"

namespace kv::tools {

// The keyring, or nullopt with `*error` set to one line naming the file (and the line) if the
// file cannot be read, is open to other users, is larger than 64 KiB, or holds no key, a
// malformed or repeated key, or more than Keyring::kMaxKeys keys.
std::optional<membership::Keyring> LoadGossipKeyFile(const std::string& path, std::string* error);

}  // namespace kv::tools
