// Status: the outcome of an operation that can fail in an expected way.
//
// Shaped like leveldb's Status: a code and a one-line message. Functions that can fail return a
// Status (or a Result<T>); callers must look at it ([[nodiscard]]). Broken invariants are not
// statuses: they abort through KV_CHECK. Value type, thread-compatible.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace kv {

class [[nodiscard]] Status {
 public:
  enum class Code : int {
    kOk = 0,
    kNotFound = 1,
    kInvalidArgument = 2,
    kUnavailable = 3,  // not enough replicas, or the node is shutting down
    kTimeout = 4,
    kOverloaded = 5,
    kCorruption = 6,
    kIoError = 7,
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Timeout(std::string msg) { return Status(Code::kTimeout, std::move(msg)); }
  static Status Overloaded(std::string msg) { return Status(Code::kOverloaded, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "invalid argument: key is empty"
  std::string ToString() const;
  static const char* CodeName(Code code);

  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr);

}  // namespace kv

// Always-on invariant check (not compiled out in release builds).
#define KV_CHECK(expr) \
  ((expr) ? static_cast<void>(0) : ::kv::CheckFailed(__FILE__, __LINE__, #expr))
