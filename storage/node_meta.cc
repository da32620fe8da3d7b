#include "storage/node_meta.h"

#include <string>

namespace kv::storage {
namespace {

void PutU64(std::uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

std::uint64_t GetU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace

Result<std::vector<std::uint64_t>> LoadU64List(Engine& engine, std::string_view name) {
  std::string bytes;
  Status s = engine.GetMeta(name, &bytes);
  if (s.IsNotFound()) return std::vector<std::uint64_t>();
  if (!s.ok()) return s;
  if (bytes.size() % 8 != 0) {
    return Status::Corruption("metadata '" + std::string(name) + "' is not a list of 8-byte ids");
  }
  std::vector<std::uint64_t> v;
  for (std::size_t i = 0; i < bytes.size(); i += 8) v.push_back(GetU64(bytes.data() + i));
  return v;
}

std::string EncodeU64List(const std::vector<std::uint64_t>& v) {
  std::string bytes;
  for (std::uint64_t x : v) PutU64(x, &bytes);
  return bytes;
}

Status StoreU64List(Engine& engine, std::string_view name, const std::vector<std::uint64_t>& v) {
  return engine.PutMeta(name, EncodeU64List(v));
}

Result<std::uint64_t> BumpGeneration(Engine& engine) {
  auto stored = LoadU64List(engine, "generation");
  if (!stored.ok()) return stored.status();
  if (stored->size() > 1) return Status::Corruption("metadata 'generation' has several values");
  const std::uint64_t next = (stored->empty() ? 0 : stored->front()) + 1;
  if (Status s = StoreU64List(engine, "generation", {next}); !s.ok()) return s;
  return next;
}

Result<std::vector<std::uint64_t>> LoadOrCreateTokens(
    Engine& engine, const std::function<std::vector<std::uint64_t>()>& choose) {
  auto stored = LoadU64List(engine, "tokens");
  if (!stored.ok() || !stored->empty()) return stored;
  std::vector<std::uint64_t> tokens = choose();
  if (Status s = StoreU64List(engine, "tokens", tokens); !s.ok()) return s;
  return tokens;
}

Result<SavedLife> TakeSavedLife(Engine& engine) {
  auto stored = LoadU64List(engine, "dots_life");
  if (!stored.ok()) return stored.status();
  if (stored->empty()) return SavedLife{};
  if (stored->size() != 3) return Status::Corruption("metadata 'dots_life' is not three values");
  if (Status s = engine.PutMeta("dots_life", ""); !s.ok()) return s;
  return SavedLife{DotIssuer::Saved{(*stored)[0], (*stored)[1]}, (*stored)[2]};
}

Status SaveLife(Engine& engine, const SavedLife& saved) {
  return StoreU64List(engine, "dots_life", {saved.dots.life, saved.dots.epoch, saved.generation});
}

Result<bool> LoadFlag(Engine& engine, std::string_view name) {
  std::string bytes;
  Status s = engine.GetMeta(name, &bytes);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return s;
  return true;
}

Status StoreFlag(Engine& engine, std::string_view name) { return engine.PutMeta(name, "1"); }

}  // namespace kv::storage
