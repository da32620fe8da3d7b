#include "storage/codec.h"

#include <xxhash.h>

#include <map>
#include <set>

namespace kv::storage {
namespace {

constexpr char kContextTag = 'C';
constexpr char kRecordTag = 'R';
constexpr char kVersion = 1;
constexpr std::uint8_t kFlagTombstone = 1;
constexpr std::uint8_t kFlagTime = 2;  // a varint deleted_at follows the flags

void PutVarint(std::uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBody(const CausalContext& c, std::string* out) {
  PutVarint(c.vv().size(), out);
  for (const auto& [node, n] : c.vv()) {
    PutVarint(node, out);
    PutVarint(n, out);
  }
  PutVarint(c.cloud().size(), out);
  for (const Dot& d : c.cloud()) {
    PutVarint(d.node, out);
    PutVarint(d.counter, out);
  }
}

// A bounds-checked reader over untrusted bytes.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool Varint(std::uint64_t* v) {
    std::uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return false;
      const auto byte = static_cast<std::uint8_t>(in_[pos_++]);
      if (shift == 63 && byte > 1) return false;  // overflows 64 bits
      result |= std::uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  bool Byte(std::uint8_t* b) {
    if (pos_ >= in_.size()) return false;
    *b = static_cast<std::uint8_t>(in_[pos_++]);
    return true;
  }
  bool Bytes(std::uint64_t n, std::string_view* out) {
    if (n > in_.size() - pos_) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

// Reads a context body; `what` names the failure.
bool ReadBody(Reader& r, std::uint64_t max_counter, CausalContext* out, const char** what) {
  std::uint64_t nvv = 0;
  // Each entry takes at least two bytes: a count above remaining/2 is a lie.
  if (!r.Varint(&nvv) || nvv > r.remaining() / 2 || nvv > kMaxContextDots) {
    *what = "bad version vector length";
    return false;
  }
  std::map<NodeId, std::uint64_t> vv;
  NodeId prev = 0;
  for (std::uint64_t i = 0; i < nvv; ++i) {
    std::uint64_t node = 0, n = 0;
    if (!r.Varint(&node) || !r.Varint(&n)) {
      *what = "truncated version vector";
      return false;
    }
    if (node == 0 || (i > 0 && node <= prev) || n == 0 || n > max_counter) {
      *what = "invalid version vector entry";
      return false;
    }
    vv.emplace_hint(vv.end(), node, n);
    prev = node;
  }
  std::uint64_t ncloud = 0;
  if (!r.Varint(&ncloud) || ncloud > r.remaining() / 2 || nvv + ncloud > kMaxContextDots) {
    *what = "bad dot cloud length";
    return false;
  }
  std::set<Dot> cloud;
  Dot prev_dot;
  for (std::uint64_t i = 0; i < ncloud; ++i) {
    Dot d;
    if (!r.Varint(&d.node) || !r.Varint(&d.counter)) {
      *what = "truncated dot cloud";
      return false;
    }
    if (d.node == 0 || d.counter == 0 || d.counter > max_counter || (i > 0 && !(prev_dot < d))) {
      *what = "invalid dot";
      return false;
    }
    cloud.emplace_hint(cloud.end(), d);
    prev_dot = d;
  }
  if (!CausalContext::FromParts(std::move(vv), std::move(cloud), out)) {
    *what = "context is not in canonical form";
    return false;
  }
  return true;
}

bool ReadHeader(Reader& r, char tag) {
  std::uint8_t t = 0, v = 0;
  return r.Byte(&t) && r.Byte(&v) && t == static_cast<std::uint8_t>(tag) && v == kVersion;
}

}  // namespace

std::string EncodeContext(const CausalContext& context) {
  std::string out;
  out.push_back(kContextTag);
  out.push_back(kVersion);
  PutBody(context, &out);
  return out;
}

Result<CausalContext> DecodeContext(std::string_view bytes) {
  Reader r(bytes);
  if (!ReadHeader(r, kContextTag)) {
    return Status::InvalidArgument("context: not a context (bad header)");
  }
  CausalContext c;
  const char* what = nullptr;
  if (!ReadBody(r, kMaxClientCounter, &c, &what)) {
    return Status::InvalidArgument(std::string("context: ") + what);
  }
  if (r.remaining() != 0) return Status::InvalidArgument("context: trailing bytes");
  return c;
}

std::string EncodeRecord(const Record& record) {
  std::string out;
  std::size_t values = 0;
  for (const Sibling& s : record.siblings()) values += s.value.size() + 24;
  out.reserve(values + 32);
  out.push_back(kRecordTag);
  out.push_back(kVersion);
  PutBody(record.context(), &out);
  PutVarint(record.siblings().size(), &out);
  for (const Sibling& s : record.siblings()) {
    PutVarint(s.dot.node, &out);
    PutVarint(s.dot.counter, &out);
    const bool timed = s.tombstone && s.deleted_at != 0;
    out.push_back(static_cast<char>((s.tombstone ? kFlagTombstone : 0) | (timed ? kFlagTime : 0)));
    if (timed) PutVarint(s.deleted_at, &out);
    PutVarint(s.value.size(), &out);
    out.append(s.value);
  }
  return out;
}

std::string EncodeHint(std::uint64_t created_s, const Record& record) {
  std::string out = {'H', 0x01};
  PutVarint(created_s, &out);
  out += EncodeRecord(record);
  return out;
}

Result<StoredHint> DecodeHint(std::string_view bytes) {
  StoredHint h;
  if (!bytes.empty() && bytes[0] == 'H') {
    Reader r(bytes);
    if (!ReadHeader(r, 'H') || !r.Varint(&h.created_s) || h.created_s == 0) {
      return Status::Corruption("hint: bad header");
    }
    bytes.remove_prefix(bytes.size() - r.remaining());
  }
  auto rec = DecodeRecord(bytes);
  if (!rec.ok()) return rec.status();
  h.record = std::move(rec.value());
  return h;
}

Result<Record> DecodeRecord(std::string_view bytes) {
  Reader r(bytes);
  if (!ReadHeader(r, kRecordTag)) return Status::Corruption("record: bad header");
  CausalContext c;
  const char* what = nullptr;
  if (!ReadBody(r, UINT64_MAX - 1, &c, &what)) {
    return Status::Corruption(std::string("record: ") + what);
  }
  std::uint64_t nsib = 0;
  if (!r.Varint(&nsib) || nsib > r.remaining() / 4) {
    return Status::Corruption("record: bad sibling count");
  }
  std::vector<Sibling> siblings;
  siblings.reserve(nsib);
  for (std::uint64_t i = 0; i < nsib; ++i) {
    Sibling s;
    std::uint8_t flags = 0;
    std::uint64_t len = 0;
    std::string_view value;
    if (!r.Varint(&s.dot.node) || !r.Varint(&s.dot.counter) || !r.Byte(&flags)) {
      return Status::Corruption("record: truncated sibling");
    }
    if ((flags & ~(kFlagTombstone | kFlagTime)) != 0) {
      return Status::Corruption("record: unknown flags");
    }
    s.tombstone = (flags & kFlagTombstone) != 0;
    if ((flags & kFlagTime) != 0) {
      if (!s.tombstone) return Status::Corruption("record: a deletion time on a value");
      if (!r.Varint(&s.deleted_at) || s.deleted_at == 0) {
        return Status::Corruption("record: bad deletion time");
      }
    }
    if (!r.Varint(&len) || !r.Bytes(len, &value)) {
      return Status::Corruption("record: truncated sibling");
    }
    s.value.assign(value);
    siblings.push_back(std::move(s));
  }
  if (r.remaining() != 0) return Status::Corruption("record: trailing bytes");
  Record record;
  if (!Record::FromParts(std::move(c), std::move(siblings), &record)) {
    return Status::Corruption("record: siblings break the record invariants");
  }
  return record;
}

void AppendTokenPrefix(ring::Token token, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((token >> shift) & 0xff));
  }
}

std::string EncodeStorageKey(std::string_view key) {
  std::string out;
  out.reserve(8 + key.size());
  AppendTokenPrefix(ring::TokenOf(key), &out);
  out.append(key);
  return out;
}

bool DecodeStorageKey(std::string_view storage_key, DecodedKey* out) {
  if (storage_key.size() < 8) return false;
  ring::Token t = 0;
  for (int i = 0; i < 8; ++i) t = (t << 8) | static_cast<std::uint8_t>(storage_key[i]);
  out->token = t;
  out->key = storage_key.substr(8);
  return true;
}

std::uint64_t ContextDots(std::string_view encoded_record) {
  Reader r(encoded_record);
  if (!ReadHeader(r, kRecordTag)) return 0;
  std::uint64_t nvv = 0, dots = 0;
  if (!r.Varint(&nvv)) return 0;
  for (std::uint64_t i = 0; i < nvv; ++i) {
    std::uint64_t node = 0, n = 0;
    if (!r.Varint(&node) || !r.Varint(&n)) return 0;
    dots = n > UINT64_MAX - dots ? UINT64_MAX : dots + n;
  }
  std::uint64_t ncloud = 0;
  if (!r.Varint(&ncloud)) return 0;
  return ncloud > UINT64_MAX - dots ? UINT64_MAX : dots + ncloud;
}

std::uint64_t VersionDigest(std::string_view encoded_record) {
  return XXH3_64bits(encoded_record.data(), encoded_record.size());
}

}  // namespace kv::storage
