// Stored records, hints and causal contexts (storage/codec.h): what RocksDB hands back, and
// what replicas send each other inside repair batches and hints.
#include "storage/codec.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kv::storage;
  const std::string_view in = Bytes(data, size);
  if (auto r = DecodeRecord(in); r.ok()) {
    const std::string again = EncodeRecord(r.value());
    auto back = DecodeRecord(again);
    FUZZ_CHECK(back.ok() && back.value() == r.value());
    (void)VersionDigest(in);
    (void)ContextDots(in);
  }
  if (auto h = DecodeHint(in); h.ok()) {
    // A hint kept before hints had an age is a bare record (created_s 0); stores never write one.
    auto back = DecodeHint(h->created_s == 0 ? EncodeRecord(h->record)
                                             : EncodeHint(h->created_s, h->record));
    FUZZ_CHECK(back.ok() && back->record == h->record && back->created_s == h->created_s);
  }
  if (auto c = DecodeContext(in); c.ok()) {
    auto back = DecodeContext(EncodeContext(c.value()));
    FUZZ_CHECK(back.ok() && back.value() == c.value());
  }
  return 0;
}
