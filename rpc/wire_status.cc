#include "rpc/wire_status.h"

namespace kv::rpc {

void ToWire(const Status& status, wire::Status::Builder out) {
  using C = wire::Status::Code;
  C code = C::OK;
  switch (status.code()) {
    case Status::Code::kOk:
      code = C::OK;
      break;
    case Status::Code::kNotFound:
      code = C::NOT_FOUND;
      break;
    case Status::Code::kInvalidArgument:
      code = C::INVALID_ARGUMENT;
      break;
    case Status::Code::kUnavailable:
      code = C::UNAVAILABLE;
      break;
    case Status::Code::kTimeout:
      code = C::TIMEOUT;
      break;
    case Status::Code::kOverloaded:
      code = C::OVERLOADED;
      break;
    case Status::Code::kCorruption:
      code = C::CORRUPTION;
      break;
    case Status::Code::kIoError:
      code = C::IO_ERROR;
      break;
  }
  out.setCode(code);
  out.setMessage(status.message());
}

Status FromWire(wire::Status::Reader in) {
  using C = wire::Status::Code;
  std::string msg = in.getMessage();
  switch (in.getCode()) {
    case C::OK:
      return Status::Ok();
    case C::NOT_FOUND:
      return Status::NotFound(std::move(msg));
    case C::INVALID_ARGUMENT:
      return Status::InvalidArgument(std::move(msg));
    case C::UNAVAILABLE:
      return Status::Unavailable(std::move(msg));
    case C::TIMEOUT:
      return Status::Timeout(std::move(msg));
    case C::OVERLOADED:
      return Status::Overloaded(std::move(msg));
    case C::CORRUPTION:
      return Status::Corruption(std::move(msg));
    case C::IO_ERROR:
      return Status::IoError(std::move(msg));
  }
  // A code from a newer server that this client does not know.
  return Status::IoError("unknown status code from server: " + msg);
}

std::optional<KeyringOp> FromWire(wire::KeyringOp op) {
  switch (op) {
    case wire::KeyringOp::LIST:
      return KeyringOp::kList;
    case wire::KeyringOp::INSTALL:
      return KeyringOp::kInstall;
    case wire::KeyringOp::USE:
      return KeyringOp::kUse;
    case wire::KeyringOp::REMOVE:
      return KeyringOp::kRemove;
  }
  return std::nullopt;
}

wire::KeyringOp ToWire(KeyringOp op) {
  switch (op) {
    case KeyringOp::kList:
      return wire::KeyringOp::LIST;
    case KeyringOp::kInstall:
      return wire::KeyringOp::INSTALL;
    case KeyringOp::kUse:
      return wire::KeyringOp::USE;
    case KeyringOp::kRemove:
      return wire::KeyringOp::REMOVE;
  }
  return wire::KeyringOp::LIST;
}

}  // namespace kv::rpc
