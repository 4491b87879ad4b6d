// Interoperability with Debian's `age` 1.1.1, both directions: what age
// encrypts opens here, and what is encrypted here opens with `age -d`.
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "age/age.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace age {
namespace {

std::string Tmp(absl::string_view name) { return absl::StrCat(getenv("TEST_TMPDIR"), "/", name); }

void WriteFile(const std::string& path, const std::string& data, int mode = 0600) {
  std::ofstream(path, std::ios::binary) << data;
  chmod(path.c_str(), mode);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command; its exit status.
int Shell(const std::string& cmd) {
  int rc = system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string RandomBytes(size_t n) {
  std::mt19937 rng(11);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() % 7 == 0 ? rng() : 'a' + rng() % 4);
  return s;
}

class AgeInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Shell("command -v age >/dev/null && command -v age-keygen >/dev/null") != 0) {
      FAIL() << "Debian's age is not installed: run tools/install-deps.sh";
    }
  }
};

TEST_F(AgeInterop, WhatAgeEncryptsOpensHere) {
  ASSERT_EQ(Shell(absl::StrCat("age-keygen -o ", Tmp("k1.txt"), " 2>/dev/null")), 0);
  auto ids = ReadIdentityFile(Tmp("k1.txt"));
  ASSERT_TRUE(ids.ok()) << ids.status();
  // age-keygen's file names the public key in a comment; ours must agree.
  EXPECT_NE(ReadFile(Tmp("k1.txt")).find((*ids)[0].recipient().Encode()), std::string::npos);

  for (size_t n : {size_t{0}, size_t{5}, kChunkSize, 5 * kChunkSize + 3, size_t{3} << 20}) {
    const std::string plain = RandomBytes(n);
    WriteFile(Tmp("plain"), plain);
    auto other = X25519Identity::Generate();
    ASSERT_EQ(Shell(absl::StrCat("age -r ", other->recipient().Encode(), " -r ",
                               (*ids)[0].recipient().Encode(), " -o ", Tmp("f.age"), " ",
                               Tmp("plain"))),
              0);
    const std::string file = ReadFile(Tmp("f.age"));
    StringSource src(file);
    Keys keys;
    keys.identities = *ids;
    auto dec = Decryptor::Open(&src, keys);
    ASSERT_TRUE(dec.ok()) << n << ": " << dec.status();
    std::string back(n + 1, '\0');
    auto got = ReadFully(dec->get(), &back[0], back.size());
    ASSERT_TRUE(got.ok()) << n << ": " << got.status();
    back.resize(*got);
    EXPECT_EQ(back, plain) << n;
  }
}

TEST_F(AgeInterop, WhatIsEncryptedHereOpensWithAge) {
  auto a = X25519Identity::Generate(), b = X25519Identity::Generate();
  WriteFile(Tmp("key-b.txt"), absl::StrCat("# test key\n", b->Encode(), "\n"));
  WriteFile(Tmp("recipients.txt"),
            absl::StrCat("# two\n", a->recipient().Encode(), "\n", b->recipient().Encode(), "\n"));
  auto recipients = ReadRecipientsFile(Tmp("recipients.txt"));
  ASSERT_TRUE(recipients.ok()) << recipients.status();
  for (size_t n : {size_t{0}, size_t{1}, kChunkSize, kChunkSize + 1, size_t{3} << 20}) {
    const std::string plain = RandomBytes(n);
    std::string file;
    StringSink sink(&file);
    auto enc = Encryptor::Create(*recipients, &sink);
    ASSERT_TRUE(enc.ok());
    ASSERT_TRUE((*enc)->Write(plain).ok());
    ASSERT_TRUE((*enc)->Finish().ok());
    WriteFile(Tmp("ours.age"), file);
    ASSERT_EQ(Shell(absl::StrCat("age -d -i ", Tmp("key-b.txt"), " -o ", Tmp("out"), " ",
                               Tmp("ours.age"))),
              0)
        << n;
    EXPECT_EQ(ReadFile(Tmp("out")), plain) << n;
  }
  // A truncated file of ours is refused by age too.
  ASSERT_EQ(Shell(absl::StrCat("head -c -1 ", Tmp("ours.age"), " > ", Tmp("cut.age"))), 0);
  EXPECT_NE(Shell(absl::StrCat("age -d -i ", Tmp("key-b.txt"), " -o ", Tmp("out2"), " ",
                             Tmp("cut.age"), " 2>/dev/null")),
            0);
}

}  // namespace
}  // namespace age
}  // namespace snapshot
