#include "rpc/repair_batch.h"

#include "storage/codec.h"

namespace kv::rpc {
namespace {

void PutVarint(std::uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytes(std::string_view b, std::string* out) {
  PutVarint(b.size(), out);
  out->append(b);
}

// Reads a batch front to back; every read is bounds-checked.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Varint(std::uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (b_.empty()) return false;
      const auto c = static_cast<unsigned char>(b_[0]);
      b_.remove_prefix(1);
      if (shift == 63 && c > 1) return false;  // more than 64 bits
      *v |= static_cast<std::uint64_t>(c & 0x7F) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  }
  bool Bytes(std::string_view* out) {
    std::uint64_t n;
    if (!Varint(&n) || n > b_.size()) return false;
    *out = b_.substr(0, n);
    b_.remove_prefix(n);
    return true;
  }
  bool U8(std::uint8_t* v) {
    if (b_.empty()) return false;
    *v = static_cast<std::uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool U64(std::uint64_t* v) {
    if (b_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) {
      *v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b_[i])) << (8 * i);
    }
    b_.remove_prefix(8);
    return true;
  }
  // The count of a batch, at most `max` (and no more than bytes left: every item takes one).
  bool Count(std::size_t max, std::size_t* n) {
    std::uint64_t v;
    if (!Varint(&v) || v > max || v > b_.size()) return false;
    *n = static_cast<std::size_t>(v);
    return true;
  }
  bool done() const { return b_.empty(); }

 private:
  std::string_view b_;
};

Status Bad(const char* what) {
  return Status::InvalidArgument(std::string("malformed repair batch: ") + what);
}

}  // namespace

std::string EncodeRecords(const KeyRecords& records) {
  std::string out;
  PutVarint(records.size(), &out);
  for (const auto& [key, rec] : records) {
    PutBytes(key, &out);
    PutBytes(storage::EncodeRecord(rec), &out);
  }
  return out;
}

Result<KeyRecords> DecodeRecords(std::string_view bytes, std::size_t max_count) {
  Reader r(bytes);
  std::size_t n;
  if (!r.Count(max_count, &n)) return Bad("record count");
  KeyRecords out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view key, rec;
    if (!r.Bytes(&key) || !r.Bytes(&rec)) return Bad("truncated record");
    auto decoded = storage::DecodeRecord(rec);
    if (!decoded.ok())
      return Status::Corruption("peer sent a bad record: " + decoded.status().message());
    out.emplace_back(std::string(key), std::move(decoded.value()));
  }
  if (!r.done()) return Bad("trailing bytes");
  return out;
}

std::string EncodeOffers(const std::vector<std::string>& keys,
                         const std::vector<storage::CausalContext>& contexts) {
  std::string out;
  PutVarint(keys.size(), &out);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    PutBytes(keys[i], &out);
    PutBytes(storage::EncodeContext(contexts[i]), &out);
  }
  return out;
}

Status DecodeOffers(std::string_view bytes, std::size_t max_count, std::vector<std::string>* keys,
                    std::vector<storage::CausalContext>* contexts) {
  Reader r(bytes);
  std::size_t n;
  if (!r.Count(max_count, &n)) return Bad("offer count");
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view key, ctx;
    if (!r.Bytes(&key) || !r.Bytes(&ctx)) return Bad("truncated offer");
    auto decoded = storage::DecodeContext(ctx);
    if (!decoded.ok()) return decoded.status();
    keys->emplace_back(key);
    contexts->push_back(std::move(decoded.value()));
  }
  if (!r.done()) return Bad("trailing bytes");
  return Status::Ok();
}

std::string EncodeAnswers(const std::vector<repair::OfferAnswer>& answers) {
  std::string out;
  PutVarint(answers.size(), &out);
  for (const auto& a : answers) {
    const std::uint8_t flags =
        (a.need ? 1 : 0) | (a.entry != 0 ? 2 : 0) | (!a.record.empty() ? 4 : 0);
    out.push_back(static_cast<char>(flags));
    if (a.entry != 0) {
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(a.entry >> (8 * i)));
    }
    if (!a.record.empty()) PutBytes(storage::EncodeRecord(a.record), &out);
  }
  return out;
}

Result<std::vector<repair::OfferAnswer>> DecodeAnswers(std::string_view bytes,
                                                       std::size_t max_count) {
  Reader r(bytes);
  std::size_t n;
  if (!r.Count(max_count, &n)) return Bad("answer count");
  std::vector<repair::OfferAnswer> out(n);
  for (auto& a : out) {
    std::uint8_t flags;
    if (!r.U8(&flags) || (flags & ~7u) != 0) return Bad("answer flags");
    a.need = flags & 1;
    if ((flags & 2) && (!r.U64(&a.entry) || a.entry == 0)) return Bad("answer entry");
    if (flags & 4) {
      std::string_view rec;
      if (!r.Bytes(&rec)) return Bad("truncated answer");
      auto decoded = storage::DecodeRecord(rec);
      if (!decoded.ok())
        return Status::Corruption("peer sent a bad record: " + decoded.status().message());
      if (decoded->empty()) return Bad("empty record in an answer");
      a.record = std::move(decoded.value());
    }
  }
  if (!r.done()) return Bad("trailing bytes");
  return out;
}

std::string EncodeNodes(const std::vector<std::uint64_t>& nodes) {
  std::string out;
  PutVarint(nodes.size(), &out);
  std::uint64_t prev = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    KV_CHECK(i == 0 || nodes[i] > prev);
    PutVarint(nodes[i] - prev, &out);
    prev = nodes[i];
  }
  return out;
}

Result<std::vector<std::uint64_t>> DecodeNodes(std::string_view bytes, std::size_t max_count) {
  Reader r(bytes);
  std::size_t n = 0;
  if (!r.Count(max_count, &n)) return Bad("node count");
  std::vector<std::uint64_t> out;
  out.reserve(n);
  std::uint64_t prev = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t delta = 0;
    if (!r.Varint(&delta)) return Bad("truncated nodes");
    if ((i > 0 && delta == 0) || delta > UINT64_MAX - prev) return Bad("nodes not ascending");
    prev += delta;
    out.push_back(prev);
  }
  if (!r.done()) return Bad("trailing bytes");
  return out;
}

}  // namespace kv::rpc
