#include "membership/gossip_seal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace kv::membership {
namespace {

constexpr std::string_view kMagic = "kvG1";
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kHeaderBytes = 24;
constexpr std::size_t kTagBytes = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

void PutU64(std::uint64_t v, std::string* out) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}

std::uint64_t GetU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

std::string Aad(std::string_view cluster) {
  std::string aad(kMagic);
  aad.append(cluster);
  return aad;
}

const unsigned char* U(const char* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* U(char* p) { return reinterpret_cast<unsigned char*>(p); }

// Opens `sealed` with one key; false if the tag does not match.
bool OpenWith(const GossipKey& key, const std::string& aad, std::string_view sealed,
              std::string* plain) {
  const char* nonce = sealed.data() + kMagic.size();
  const char* body = nonce + kNonceBytes;
  const std::size_t body_len = sealed.size() - kMagic.size() - kNonceBytes - kTagBytes;
  char tag[kTagBytes];
  std::memcpy(tag, body + body_len, kTagBytes);
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw std::bad_alloc();
  int len = 0;
  plain->resize(body_len);
  return EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
         EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), U(nonce)) == 1 &&
         EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad.data()), static_cast<int>(aad.size())) ==
             1 &&
         EVP_DecryptUpdate(ctx.get(), U(plain->data()), &len, U(body),
                           static_cast<int>(body_len)) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), U(plain->data()) + len, &len) == 1;
}

}  // namespace

GossipKey NewGossipKey() {
  GossipKey key;
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return key;
}

std::string GossipKeyToText(const GossipKey& key) {
  std::string out(4 * ((key.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(U(out.data()), key.data(), static_cast<int>(key.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string KeyFingerprint(const GossipKey& key) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(key.data(), key.size(), md, &len, EVP_sha256(), nullptr) != 1 || len < 8) {
    throw std::runtime_error("SHA-256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool GossipKeyFromText(std::string_view text, GossipKey* key, std::string* error) {
  const auto space = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  // The base64 of 32 bytes: 44 characters, the last one '='.
  const bool shaped = text.size() == 44 && text[43] == '=' && text[42] != '=' &&
                      std::all_of(text.begin(), text.end() - 1, [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
                      });
  if (!shaped) {
    *error = "a gossip key is the base64 of 32 random bytes (44 characters; kvtool keygen makes one)";
    return false;
  }
  unsigned char out[33];
  if (EVP_DecodeBlock(out, U(text.data()), static_cast<int>(text.size())) != 33) {
    *error = "a gossip key is not valid base64";
    return false;
  }
  std::memcpy(key->data(), out, key->size());
  return true;
}

bool Keyring::Install(const GossipKey& key, std::string* error) {
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) {
    *error = "the key is installed already";
    return false;
  }
  if (keys_.size() >= kMaxKeys) {
    *error = "the keyring is full (" + std::to_string(kMaxKeys) + " keys): remove one first";
    return false;
  }
  keys_.push_back(key);
  return true;
}

bool Keyring::Use(const GossipKey& key, std::string* error) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) {
    *error = "the key is not installed: install it on every node first";
    return false;
  }
  std::rotate(keys_.begin(), it, it + 1);  // it becomes the front; the others keep their order
  return true;
}

bool Keyring::Remove(const GossipKey& key, std::string* error) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) {
    *error = "the key is not installed";
    return false;
  }
  if (it == keys_.begin()) {
    *error = "the primary key cannot be removed: use another key first";
    return false;
  }
  keys_.erase(it);
  return true;
}

bool LooksSealed(std::string_view bytes) { return bytes.substr(0, kMagic.size()) == kMagic; }

std::string Seal(const Keyring& ring, std::string_view cluster, const SealHeader& header,
                 std::string_view payload) {
  std::string plain;
  plain.reserve(kHeaderBytes + payload.size());
  PutU64(header.sender, &plain);
  PutU64(header.generation, &plain);
  PutU64(header.seq, &plain);
  plain.append(payload);

  std::string out(kMagic);
  out.resize(kMagic.size() + kNonceBytes + plain.size() + kTagBytes);
  char* nonce = out.data() + kMagic.size();
  char* body = nonce + kNonceBytes;
  if (RAND_bytes(U(nonce), kNonceBytes) != 1) throw std::runtime_error("OpenSSL RAND_bytes failed");
  const std::string aad = Aad(cluster);
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw std::bad_alloc();
  int len = 0, fin = 0;
  const bool ok =
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, ring.primary().data(), U(nonce)) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad.data()), static_cast<int>(aad.size())) ==
          1 &&
      EVP_EncryptUpdate(ctx.get(), U(body), &len, U(plain.data()),
                        static_cast<int>(plain.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), U(body) + len, &fin) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, body + plain.size()) == 1;
  if (!ok) throw std::runtime_error("OpenSSL AES-256-GCM sealing failed");
  return out;
}

OpenResult Open(const Keyring& ring, std::string_view cluster, std::string_view sealed,
                SealHeader* header, std::string* payload) {
  if (!LooksSealed(sealed)) return OpenResult::kNotSealed;
  if (sealed.size() < kSealOverhead) return OpenResult::kMalformed;
  const std::string aad = Aad(cluster);
  std::string plain;
  for (const GossipKey& key : ring.keys()) {
    if (!OpenWith(key, aad, sealed, &plain)) continue;
    header->sender = GetU64(plain.data());
    header->generation = GetU64(plain.data() + 8);
    header->seq = GetU64(plain.data() + 16);
    payload->assign(plain, kHeaderBytes);
    return OpenResult::kOk;
  }
  return OpenResult::kNoKey;
}

bool ReplayWindow::Test(const Sender& s, std::uint64_t back) {
  return (s.seen[back / 64] >> (back % 64)) & 1;
}

void ReplayWindow::Set(Sender* s, std::uint64_t back) {
  s->seen[back / 64] |= std::uint64_t{1} << (back % 64);
}

void ReplayWindow::Shift(Sender* s, std::uint64_t by) {
  constexpr std::size_t kWords = kReplayWindow / 64;
  if (by >= kReplayWindow) {
    s->seen.fill(0);
    return;
  }
  const std::size_t words = by / 64, bits = by % 64;
  for (std::size_t i = kWords; i-- > 0;) {
    std::uint64_t v = 0;
    if (i >= words) {
      v = s->seen[i - words] << bits;
      if (bits != 0 && i > words) v |= s->seen[i - words - 1] >> (64 - bits);
    }
    s->seen[i] = v;
  }
}

bool ReplayWindow::Accept(const SealHeader& h) {
  auto it = senders_.find(h.sender);
  if (it == senders_.end()) {
    if (senders_.size() >= max_senders_ && !lru_.empty()) {
      senders_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(h.sender);
    Sender s;
    s.generation = h.generation;
    s.highest = h.seq;
    Set(&s, 0);
    s.lru = lru_.begin();
    senders_.emplace(h.sender, s);
    return true;
  }
  Sender& s = it->second;
  if (h.generation < s.generation) return false;  // a past life of the sender
  if (h.generation > s.generation) {
    s.generation = h.generation;
    s.highest = h.seq;
    s.seen.fill(0);
    Set(&s, 0);
  } else if (h.seq > s.highest) {
    Shift(&s, h.seq - s.highest);
    s.highest = h.seq;
    Set(&s, 0);
  } else {
    const std::uint64_t back = s.highest - h.seq;
    if (back >= kReplayWindow || Test(s, back)) return false;
    Set(&s, back);
  }
  lru_.splice(lru_.begin(), lru_, s.lru);
  return true;
}

}  // namespace kv::membership
