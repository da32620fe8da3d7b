// The gossip key file kvd reads (--gossip-key-file): the keyring of gossip encryption
// (membership/gossip_seal.h), one base64 key per line as `kvtool keygen` prints it, the first
// key the primary; blank lines and lines starting with '#' are skipped. The file must be
// readable and writable by its owner only (as ssh asks of a private key): kvd refuses it
// otherwise, and refuses anything else in it with the line's number.
//
// The file is also where a node keeps its keyring across restarts: when `kvtool keyring`
// installs, uses or removes a key, kvd rewrites the file (WriteGossipKeyFile) before the change
// takes effect, as Serf keeps its keyring file, so a restarted node opens what the cluster seals.
// Comments in the file are not kept by a rewrite.
#pragma once

#include <optional>
#include <string>

#include "membership/gossip_seal.h"

namespace kv::tools {

// The keyring, or nullopt with `*error` set to one line naming the file (and the line) if the
// file cannot be read, is open to other users, is larger than 64 KiB, or holds no key, a
// malformed or repeated key, or more than Keyring::kMaxKeys keys.
std::optional<membership::Keyring> LoadGossipKeyFile(const std::string& path, std::string* error);

// Replaces the file at `path` with `ring` (the primary first) atomically: a new file of mode 600
// beside it, synced, renamed over the old one, and the directory synced. False, with `*error`
// set, if any step fails; the old file is then unchanged. Blocking: call it off the event loops.
bool WriteGossipKeyFile(const std::string& path, const membership::Keyring& ring,
                        std::string* error);

}  // namespace kv::tools
