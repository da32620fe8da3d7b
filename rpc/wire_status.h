// Conversions between the types of common.capnp and their C++ counterparts: Status
// (storage/status.h) and KeyringOp (keyring_op.h).
// Pure functions; thread-safe.
#pragma once

#include <optional>

#include "rpc/common.capnp.h"
#include "rpc/keyring_op.h"
#include "storage/status.h"

namespace kv::rpc {

// Fills a wire status from a Status.
void ToWire(const Status& status, wire::Status::Builder out);
// The Status a wire status carries; a code this build does not know is an IoError.
Status FromWire(wire::Status::Reader in);

// The op a request named; nullopt for one this build does not know.
std::optional<KeyringOp> FromWire(wire::KeyringOp op);
wire::KeyringOp ToWire(KeyringOp op);

}  // namespace kv::rpc
