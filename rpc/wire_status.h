// Conversions between Status (storage/status.h) and the wire Status of common.capnp.
// Pure functions; thread-safe.
#pragma once

#include "rpc/common.capnp.h"
#include "storage/status.h"

namespace kv::rpc {

// Fills a wire status from a Status.
void ToWire(const Status& status, wire::Status::Builder out);
// The Status a wire status carries; a code this build does not know is an IoError.
Status FromWire(wire::Status::Reader in);

}  // namespace kv::rpc
