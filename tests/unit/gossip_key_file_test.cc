// The gossip key file: what kvd writes when its keyring changes reads back as the same keyring,
// only its owner can read it, and a failed write leaves the old file as it was.
#include "tools/gossip_key_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace kv::tools {
namespace {

namespace fs = std::filesystem;
using membership::GossipKey;
using membership::Keyring;

struct Dir {
  Dir() {
    std::string tmpl = (fs::temp_directory_path() / "kv_keyfile_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path = tmpl;
  }
  ~Dir() { fs::remove_all(path); }
  std::string path;
};

TEST(GossipKeyFile, WhatIsWrittenReadsBackAsTheSameKeyringOwnerOnly) {
  Dir dir;
  const std::string path = dir.path + "/cluster.key";
  Keyring ring(membership::NewGossipKey());
  std::string error;
  ASSERT_TRUE(ring.Install(membership::NewGossipKey(), &error)) << error;
  ASSERT_TRUE(ring.Install(membership::NewGossipKey(), &error)) << error;
  ASSERT_TRUE(ring.Use(ring.keys()[2], &error)) << error;
  // A file left open to others (as an operator might have made it) is replaced by one that is not.
  { std::ofstream(path) << membership::GossipKeyToText(ring.keys()[1]) << "\n"; }
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  ASSERT_TRUE(WriteGossipKeyFile(path, ring, &error)) << error;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = LoadGossipKeyFile(path, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->keys(), ring.keys());
  EXPECT_EQ(back->primary(), ring.primary());
  EXPECT_FALSE(fs::exists(path + ".new"));
}

TEST(GossipKeyFile, AFailedWriteLeavesTheOldFile) {
  Dir dir;
  const std::string path = dir.path + "/cluster.key";
  Keyring old_ring(membership::NewGossipKey());
  std::string error;
  ASSERT_TRUE(WriteGossipKeyFile(path, old_ring, &error)) << error;
  // The new file cannot be made: a directory stands where it would go.
  fs::create_directory(path + ".new");
  Keyring new_ring(membership::NewGossipKey());
  EXPECT_FALSE(WriteGossipKeyFile(path, new_ring, &error));
  EXPECT_NE(error.find("cluster.key.new"), std::string::npos) << error;
  auto back = LoadGossipKeyFile(path, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->primary(), old_ring.primary());
}

TEST(GossipKeyFile, FingerprintsTellKeysApartAndRevealNoKeyBytes) {
  const GossipKey a = membership::NewGossipKey();
  const GossipKey b = membership::NewGossipKey();
  const std::string fa = membership::KeyFingerprint(a);
  EXPECT_EQ(fa.size(), 16u);
  EXPECT_EQ(fa, membership::KeyFingerprint(a));
  EXPECT_NE(fa, membership::KeyFingerprint(b));
  // Not the key's leading bytes in hex.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string leading;
  for (int i = 0; i < 8; ++i) {
    leading += kHex[a[static_cast<std::size_t>(i)] >> 4];
    leading += kHex[a[static_cast<std::size_t>(i)] & 15];
  }
  EXPECT_NE(fa, leading);
  // SHA-256 of 32 zero bytes begins 66687aadf862bd77.
  EXPECT_EQ(membership::KeyFingerprint(GossipKey{}), "66687aadf862bd77");
}

}  // namespace
}  // namespace kv::tools
