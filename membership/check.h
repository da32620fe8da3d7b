// An always-on invariant check for the membership module.
//
// storage/status.h has KV_CHECK, but membership must not depend on the storage target (and so on
// RocksDB), so this is its own copy of the idea: a broken invariant aborts loudly, in release
// builds too. Never used for network input, which is dropped and counted instead.
#pragma once

namespace kv::membership {

[[noreturn]] void MembershipCheckFailed(const char* file, int line, const char* expr);

}  // namespace kv::membership

#define KV_MEMBERSHIP_CHECK(expr) \
  ((expr) ? static_cast<void>(0)  \
          : ::kv::membership::MembershipCheckFailed(__FILE__, __LINE__, #expr))
