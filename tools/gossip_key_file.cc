#include "tools/gossip_key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

namespace kv::tools {

std::optional<membership::Keyring> LoadGossipKeyFile(const std::string& path,
                                                     std::string* error) {
  constexpr std::size_t kMaxBytes = 64 << 10;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  std::string text;
  bool ok = ::fstat(fd, &st) == 0;
  if (ok && !S_ISREG(st.st_mode)) {
    *error = path + ": not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  if (ok && (st.st_mode & 077) != 0) {
    *error = path + ": a gossip key file must be readable by its owner only (chmod 600 it)";
    ::close(fd);
    return std::nullopt;
  }
  char buf[4096];
  while (ok) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxBytes) {
      *error = path + ": larger than 64 KiB: not a gossip key file";
      ::close(fd);
      return std::nullopt;
    }
  }
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    *error = path + ": " + std::strerror(saved);
    return std::nullopt;
  }
  std::vector<membership::GossipKey> keys;
  std::istringstream lines(text);
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    membership::GossipKey key;
    std::string why;
    if (!membership::GossipKeyFromText(line, &key, &why)) {
      *error = path + ", line " + std::to_string(number) + ": " + why;
      return std::nullopt;
    }
    for (const auto& k : keys) {
      if (k == key) {
        *error = path + ", line " + std::to_string(number) + ": the same key twice";
        return std::nullopt;
      }
    }
    keys.push_back(key);
  }
  if (keys.empty()) {
    *error = path + ": no key in it (kvtool keygen makes one)";
    return std::nullopt;
  }
  if (keys.size() > membership::Keyring::kMaxKeys) {
    *error = path + ": more than " + std::to_string(membership::Keyring::kMaxKeys) + " keys";
    return std::nullopt;
  }
  membership::Keyring ring(keys.front());
  for (std::size_t i = 1; i < keys.size(); ++i) (void)ring.Install(keys[i], error);
  return ring;
}

bool WriteGossipKeyFile(const std::string& path, const membership::Keyring& ring,
                        std::string* error) {
  std::string text =
      "# The gossip keyring of this kvd (kvtool keyring rewrites it); the first key seals.\n";
  for (const auto& key : ring.keys()) text += membership::GossipKeyToText(key) + "\n";
  const std::string tmp = path + ".new";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = tmp + ": " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const std::string& what) {
    *error = what + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  };
  // O_CREAT's mode is masked by the umask and ignored for a file left by an earlier attempt.
  if (::fchmod(fd, 0600) != 0) return fail(tmp);
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(tmp);
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(tmp);
  if (::close(fd) != 0) {
    *error = tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

}  // namespace kv::tools
