#include "age/age.h"

#include <sys/stat.h>

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "age/bech32.h"
#include "base/testing.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace age {
namespace {

// The X25519 example of the age spec (c2sp.org/age): 32 bytes of 0x42.
constexpr char kSpecIdentity[] =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
constexpr char kSpecRecipient[] = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

X25519Identity NewIdentity() { return *X25519Identity::Generate(); }

// Encrypts `plain` to `recipients`, writing it in pieces of `piece` bytes.
std::string Encrypt(const std::string& plain, const std::vector<X25519Recipient>& recipients,
                    size_t piece = 1000) {
  std::string out;
  StringSink sink(&out);
  auto enc = Encryptor::Create(recipients, &sink);
  EXPECT_TRUE(enc.ok()) << enc.status();
  const uint64_t header = (*enc)->bytes_out();
  for (size_t i = 0; i < plain.size(); i += piece) {
    EXPECT_TRUE((*enc)->Write(absl::string_view(plain).substr(i, piece)).ok());
  }
  EXPECT_TRUE((*enc)->Finish().ok());
  EXPECT_EQ(out.size(), Encryptor::EncryptedSize(header, plain.size()));
  EXPECT_EQ((*enc)->bytes_out(), out.size());
  return out;
}

absl::StatusOr<std::string> Decrypt(const std::string& file, const Keys& keys) {
  StringSource src(file);
  absl::StatusOr<std::unique_ptr<Decryptor>> dec = Decryptor::Open(&src, keys);
  if (!dec.ok()) return dec.status();
  std::string out;
  char buf[7000];  // not a divisor of the chunk size
  for (;;) {
    absl::StatusOr<size_t> n = (*dec)->Read(buf, sizeof(buf));
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(buf, *n);
  }
}

Keys KeysOf(const X25519Identity& id) {
  Keys k;
  k.identities.push_back(id);
  return k;
}

TEST(Bech32, RoundTripAndChecksum) {
  const std::string data = RandomBytes(32, 1);
  const std::string s = Bech32Encode("age", data);
  auto d = Bech32Decode(s);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->hrp, "age");
  EXPECT_EQ(d->data, data);
  std::string typo = s;
  typo[10] = typo[10] == 'q' ? 'p' : 'q';
  EXPECT_FALSE(Bech32Decode(typo).ok());
  std::string mixed = s;
  mixed[5] = 'A';
  EXPECT_FALSE(Bech32Decode(mixed).ok());
}

TEST(Keys, SpecExampleDerivesItsRecipient) {
  auto id = X25519Identity::Parse(kSpecIdentity);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->secret(), Key32{[] {
              Key32 k;
              k.fill(0x42);
              return k;
            }()});
  EXPECT_EQ(id->recipient().Encode(), kSpecRecipient);
  EXPECT_EQ(id->Encode(), kSpecIdentity);
  auto r = X25519Recipient::Parse(kSpecRecipient);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, id->recipient());
}

TEST(Keys, RecipientsFileFormAndErrors) {
  auto a = NewIdentity(), b = NewIdentity();
  auto list = ParseRecipients(absl::StrCat("# backups\n\n", a.recipient().Encode(), "\n  ",
                                           b.recipient().Encode(), "  \n"));
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1], b.recipient());

  EXPECT_EQ(ParseRecipients("# nothing\n\n").status().code(), absl::StatusCode::kInvalidArgument);
  auto ssh = ParseRecipients("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA user@host\n");
  EXPECT_EQ(ssh.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ssh.status().message().find("line 1"), std::string::npos);
  EXPECT_NE(ssh.status().message().find("SSH"), std::string::npos);
  // An identity where a recipient belongs is refused, and not quoted.
  auto secret = ParseRecipients(kSpecIdentity);
  EXPECT_FALSE(secret.ok());
  EXPECT_EQ(secret.status().message().find("GFPYYSJZ"), std::string::npos) << secret.status();
  EXPECT_NE(secret.status().message().find("age-keygen -y"), std::string::npos) << secret.status();
}

TEST(Keys, IdentityErrorsNeverEchoTheSecret) {
  std::string bad = kSpecIdentity;
  bad[20] = bad[20] == 'Q' ? 'P' : 'Q';
  auto ids = ParseIdentities(absl::StrCat("# created: now\n", bad, "\n"));
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("line 2"), std::string::npos);
  EXPECT_EQ(ids.status().message().find("GFPYYSJZ"), std::string::npos) << ids.status();
}

TEST(Keys, IdentityFileMustBePrivate) {
  const std::string path = absl::StrCat(getenv("TEST_TMPDIR"), "/key.txt");
  FILE* f = fopen(path.c_str(), "w");
  fputs(absl::StrCat("# public key: ", kSpecRecipient, "\n", kSpecIdentity, "\n").c_str(), f);
  fclose(f);
  chmod(path.c_str(), 0644);
  auto ids = ReadIdentityFile(path);
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(ids.status().message().find("0644"), std::string::npos) << ids.status();
  chmod(path.c_str(), 0600);
  ids = ReadIdentityFile(path);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ((*ids)[0].recipient().Encode(), kSpecRecipient);
}

TEST(Stream, RoundTripsAtEveryChunkBoundary) {
  auto id = NewIdentity();
  for (size_t n : {size_t{0}, size_t{1}, kChunkSize - 1, kChunkSize, kChunkSize + 1,
                   3 * kChunkSize, 3 * kChunkSize + 17}) {
    const std::string plain = RandomBytes(n, static_cast<uint32_t>(n));
    for (size_t piece : {size_t{1} << 20, size_t{4093}}) {
      const std::string file = Encrypt(plain, {id.recipient()}, piece);
      EXPECT_TRUE(LooksLikeAge(file));
      auto back = Decrypt(file, KeysOf(id));
      ASSERT_TRUE(back.ok()) << n << ": " << back.status();
      EXPECT_EQ(*back, plain) << n;
    }
  }
}

TEST(Stream, EveryRecipientCanOpenIt) {
  auto a = NewIdentity(), b = NewIdentity(), c = NewIdentity();
  const std::string plain = RandomBytes(100000, 7);
  const std::string file = Encrypt(plain, {a.recipient(), b.recipient()});
  EXPECT_EQ(*Decrypt(file, KeysOf(a)), plain);
  EXPECT_EQ(*Decrypt(file, KeysOf(b)), plain);
  Keys several;
  several.identities = {c, b};
  EXPECT_EQ(*Decrypt(file, several), plain);
  auto wrong = Decrypt(file, KeysOf(c));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("2 X25519 recipients"), std::string::npos)
      << wrong.status();
  EXPECT_EQ(Decrypt(file, Keys{}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Stream, EveryChangedByteIsRefused) {
  auto id = NewIdentity();
  // Two chunks and a bit: the header, both kinds of chunk and the tags.
  const std::string plain = RandomBytes(2 * kChunkSize + 100, 3);
  const std::string file = Encrypt(plain, {id.recipient()});
  std::mt19937 rng(5);
  std::vector<size_t> offsets;
  for (size_t i = 0; i < 400; ++i) offsets.push_back(i);  // the whole header and nonce
  for (int i = 0; i < 300; ++i) offsets.push_back(rng() % file.size());
  for (size_t i = file.size() - 40; i < file.size(); ++i) offsets.push_back(i);
  for (size_t off : offsets) {
    if (off >= file.size()) continue;
    std::string bad = file;
    bad[off] ^= 0x01;
    auto r = Decrypt(bad, KeysOf(id));
    ASSERT_FALSE(r.ok()) << "a flip at " << off << " was accepted";
    EXPECT_TRUE(r.status().code() == absl::StatusCode::kDataLoss ||
                r.status().code() == absl::StatusCode::kFailedPrecondition)
        << off << ": " << r.status();
  }
}

TEST(Stream, EveryTruncationIsRefused) {
  auto id = NewIdentity();
  const std::string plain = RandomBytes(3 * kChunkSize, 4);  // ends on a chunk boundary
  const std::string file = Encrypt(plain, {id.recipient()});
  const size_t payload = file.size() - (3 * (kChunkSize + 16));
  std::vector<size_t> cuts = {0, 10, payload - 16, payload - 1, payload};
  for (int k = 1; k <= 3; ++k) {
    const size_t boundary = payload + k * (kChunkSize + 16);
    cuts.push_back(boundary - 1);
    if (boundary < file.size()) cuts.push_back(boundary);  // a whole number of chunks
    cuts.push_back(boundary - 16);
  }
  for (size_t cut : cuts) {
    auto r = Decrypt(file.substr(0, cut), KeysOf(id));
    ASSERT_FALSE(r.ok()) << "a cut at " << cut << " of " << file.size() << " was accepted";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << cut << ": " << r.status();
  }
  // And bytes after the final chunk.
  auto r = Decrypt(file + "x", KeysOf(id));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
}

TEST(Stream, Passphrase) {
  const std::string plain = RandomBytes(70000, 9);
  std::string file;
  StringSink sink(&file);
  auto enc = Encryptor::CreateWithPassphrase("correct horse", 10, &sink);
  ASSERT_TRUE(enc.ok()) << enc.status();
  ASSERT_TRUE((*enc)->Write(plain).ok());
  ASSERT_TRUE((*enc)->Finish().ok());
  Keys k;
  k.passphrase = "correct horse";
  EXPECT_EQ(*Decrypt(file, k), plain);
  k.passphrase = "wrong horse";
  EXPECT_EQ(Decrypt(file, k).status().code(), absl::StatusCode::kFailedPrecondition);
  k.passphrase = "correct horse";
  k.max_scrypt_log_n = 9;
  EXPECT_EQ(Decrypt(file, k).status().code(), absl::StatusCode::kResourceExhausted);
  auto id = NewIdentity();
  EXPECT_EQ(Decrypt(file, KeysOf(id)).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Stream, OpenMaybeEncryptedPassesPlainBytesAndDecryptsAgeFiles) {
  auto id = NewIdentity();
  for (size_t n : {size_t{0}, size_t{3}, size_t{40}, size_t{100000}}) {
    const std::string plain(n, 'x');
    for (bool enc : {false, true}) {
      const std::string file = enc ? Encrypt(plain, {id.recipient()}) : plain;
      StringSource src(file);
      bool encrypted = !enc;
      auto s = OpenMaybeEncrypted(&src, KeysOf(id), &encrypted);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(encrypted, enc);
      EXPECT_EQ(testing::ReadAll(s->get()), plain) << n << " " << enc;
    }
  }
  const std::string file = Encrypt("secret", {id.recipient()});
  StringSource src(file);
  auto none = OpenMaybeEncrypted(&src, Keys());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("--identity"), std::string::npos);
}

TEST(Header, RefusesWhatTheSpecRefuses) {
  auto id = NewIdentity();
  const std::string file = Encrypt("hello", {id.recipient()});
  const size_t mac = file.find("\n--- ") + 1;
  // An unknown stanza is skipped, but changes the MAC: the header was altered.
  std::string extra = file;
  extra.insert(mac, "-> example.com/other arg\n\n");
  EXPECT_EQ(Decrypt(extra, KeysOf(id)).status().code(), absl::StatusCode::kDataLoss);
  // A body line of 64 columns must be followed by a shorter one.
  std::string long_body = file;
  long_body.insert(mac, "-> x\n" + std::string(64, 'A') + "\n");
  EXPECT_EQ(Decrypt(long_body, KeysOf(id)).status().code(), absl::StatusCode::kDataLoss);
  // Not age at all; another version; armored.
  EXPECT_EQ(Decrypt("PK\3\4 not age", KeysOf(id)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Decrypt("age-encryption.org/v2\n", KeysOf(id)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Decrypt("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n", KeysOf(id)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(LooksLikeAge("age-enc"));
  EXPECT_FALSE(LooksLikeAge("\x1f\x8b\x08"));
}

TEST(Header, StanzaCountAndSizeAreBounded) {
  auto id = NewIdentity();
  std::string h(kMagic);
  for (int i = 0; i <= kMaxStanzas; ++i) {
    h += "-> X25519 TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc\n"
         "EmECAEcKN+n/Vs9SbWiV+Hu0r+E8R77DdWYyd83nw7U\n";
  }
  h += "--- GRjUy1ShNhFoV3cQikdtUZqDeDEZSrbtNXUgDtDbwC8\n";
  auto r = Decrypt(h, KeysOf(id));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("stanzas"), std::string::npos) << r.status();
  auto big = Decrypt(std::string(kMagic) + "-> x\n" + std::string(kMaxHeaderBytes, 'A'),
                     KeysOf(id));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kDataLoss) << big.status();
}

}  // namespace
}  // namespace age
}  // namespace snapshot
