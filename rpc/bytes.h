// Views between Cap'n Proto Data and the byte strings the rest of the code uses. No copies
// except Str. Pure; thread-safe.
#pragma once

#include <capnp/blob.h>
#include <capnp/common.h>
#include <kj/array.h>

#include <string>
#include <string_view>

namespace kv::rpc {

// Bytes of `s` for a Data field (valid while `s` is).
inline kj::ArrayPtr<const capnp::byte> Bytes(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

// A Data field as characters (valid while its message is).
inline std::string_view View(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}

// A copy of a Data field.
inline std::string Str(capnp::Data::Reader d) { return std::string(View(d)); }

}  // namespace kv::rpc
