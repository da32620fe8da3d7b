#include "ring/token.h"

#include <xxhash.h>

namespace kv::ring {

Token TokenOf(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace kv::ring
