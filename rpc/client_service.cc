#include "rpc/client_service.h"

#include <string_view>

#include "storage/codec.h"

namespace kv::rpc {
namespace {

std::string_view View(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}

kj::ArrayPtr<const capnp::byte> Bytes(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

// An empty context means "saw nothing".
Result<storage::CausalContext> ClientContext(capnp::Data::Reader bytes) {
  if (bytes.size() == 0) return storage::CausalContext();
  return storage::DecodeContext(View(bytes));
}

}  // namespace

void ToWire(const Status& status, wire::Status::Builder out) {
  using C = wire::Status::Code;
  C code = C::OK;
  switch (status.code()) {
    case Status::Code::kOk: code = C::OK; break;
    case Status::Code::kNotFound: code = C::NOT_FOUND; break;
    case Status::Code::kInvalidArgument: code = C::INVALID_ARGUMENT; break;
    case Status::Code::kUnavailable: code = C::UNAVAILABLE; break;
    case Status::Code::kTimeout: code = C::TIMEOUT; break;
    case Status::Code::kOverloaded: code = C::OVERLOADED; break;
    case Status::Code::kCorruption: code = C::CORRUPTION; break;
    case Status::Code::kIoError: code = C::IO_ERROR; break;
  }
  out.setCode(code);
  out.setMessage(status.message());
}

Status FromWire(wire::Status::Reader in) {
  using C = wire::Status::Code;
  std::string msg = in.getMessage();
  switch (in.getCode()) {
    case C::OK: return Status::Ok();
    case C::NOT_FOUND: return Status::NotFound(std::move(msg));
    case C::INVALID_ARGUMENT: return Status::InvalidArgument(std::move(msg));
    case C::UNAVAILABLE: return Status::Unavailable(std::move(msg));
    case C::TIMEOUT: return Status::Timeout(std::move(msg));
    case C::OVERLOADED: return Status::Overloaded(std::move(msg));
    case C::CORRUPTION: return Status::Corruption(std::move(msg));
    case C::IO_ERROR: return Status::IoError(std::move(msg));
  }
  // A code from a newer server that this client does not know.
  return Status::IoError("unknown status code from server: " + msg);
}

ClientService::ClientService(storage::LocalStore* store) : store_(store) {}

kj::Promise<void> ClientService::get(GetContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), results.initStatus());
    return kj::READY_NOW;
  }
  Result<storage::Record> record = store_->Read(View(params.getKey()));
  if (!record.ok()) {
    ToWire(record.status(), results.initStatus());
    return kj::READY_NOW;
  }
  const auto& siblings = record->siblings();
  std::size_t live = 0;
  for (const auto& s : siblings) live += s.tombstone ? 0 : 1;
  auto out = results.initSiblings(live);
  std::size_t i = 0;
  for (const auto& s : siblings) {
    if (s.tombstone) continue;
    out[i++].setValue(Bytes(s.value));
  }
  if (!record->empty()) results.setContext(Bytes(storage::EncodeContext(record->context())));
  ToWire(live == 0 ? Status::NotFound("key not found") : Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::put(PutContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), results.initStatus());
    return kj::READY_NOW;
  }
  Result<storage::CausalContext> seen = ClientContext(params.getContext());
  if (!seen.ok()) {
    ToWire(seen.status(), results.initStatus());
    return kj::READY_NOW;
  }
  auto value = params.getValue();
  Result<storage::Record> record =
      store_->Write(View(params.getKey()), seen.value(), /*tombstone=*/false,
                    std::string(View(value)));
  if (!record.ok()) {
    ToWire(record.status(), results.initStatus());
    return kj::READY_NOW;
  }
  results.setContext(Bytes(storage::EncodeContext(record->context())));
  ToWire(Status::Ok(), results.initStatus());
  return kj::READY_NOW;
}

kj::Promise<void> ClientService::delete_(DeleteContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  if (shutting_down_) {
    ToWire(Status::Unavailable("node is shutting down"), results.initStatus());
    return kj::READY_NOW;
  }
  const std::string_view key = View(params.getKey());
  Result<storage::Record> record = storage::Record();
  bool had_value = false;
  if (params.getContext().size() == 0) {
    record = store_->DeleteSeen(key, &had_value);
  } else {
    Result<storage::CausalContext> seen = ClientContext(params.getContext());
    if (!seen.ok()) {
      ToWire(seen.status(), results.initStatus());
      return kj::READY_NOW;
    }
    Result<storage::Record> before = store_->Read(key);
    if (!before.ok()) {
      ToWire(before.status(), results.initStatus());
      return kj::READY_NOW;
    }
    had_value = before->HasLiveValue();
    record = store_->Write(key, seen.value(), /*tombstone=*/true, std::string());
  }
  if (!record.ok()) {
    ToWire(record.status(), results.initStatus());
    return kj::READY_NOW;
  }
  results.setContext(Bytes(storage::EncodeContext(record->context())));
  ToWire(had_value ? Status::Ok() : Status::NotFound("key not found"), results.initStatus());
  return kj::READY_NOW;
}

}  // namespace kv::rpc
