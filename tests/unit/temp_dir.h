// A temporary directory for a unit test, removed with everything in it at the end of its scope.
// For tests only.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "storage/status.h"

namespace kv::test {

class TempDir {
 public:
  // `prefix` names the directory under the system's temporary directory (prefix_XXXXXX).
  explicit TempDir(const std::string& prefix = "kv_test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    KV_CHECK(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kv::test
