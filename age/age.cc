#include "age/age.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "age/bech32.h"
#include "base/sha256.h"
#include "base/status_macros.h"

namespace snapshot {
namespace age {
namespace {

constexpr size_t kTagSize = 16;
constexpr size_t kFileKeySize = 16;
constexpr size_t kNonceSize = 16;
constexpr size_t kSealedChunk = kChunkSize + kTagSize;
constexpr absl::string_view kX25519Label = "age-encryption.org/v1/X25519";
constexpr absl::string_view kScryptLabel = "age-encryption.org/v1/scrypt";
constexpr absl::string_view kArmorBegin = "-----BEGIN AGE ENCRYPTED FILE-----";
constexpr absl::string_view kIdentityHrp = "age-secret-key-";
constexpr absl::string_view kRecipientHrp = "age";

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("not a valid age file: ", what));
}

// --- base64 without padding, canonical only --------------------------------

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string B64Encode(absl::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t i = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
  }
  if (in.size() - i == 1) {
    const uint32_t v = p[i] << 16;
    out += {kB64[v >> 18], kB64[(v >> 12) & 63]};
  } else if (in.size() - i == 2) {
    const uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63]};
  }
  return out;
}

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict: no padding, no whitespace, unused trailing bits zero.
bool B64Decode(absl::string_view in, std::string* out) {
  if (in.size() % 4 == 1) return false;
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = B64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
}

// --- primitives ---------------------------------------------------------------

void Random(void* out, size_t n) {
  if (RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(n)) != 1) {
    // Without randomness there is no safe way on; this does not happen with
    // a working kernel.
    abort();
  }
}


absl::string_view View(const Key32& k) {
  return absl::string_view(reinterpret_cast<const char*>(k.data()), k.size());
}

// HKDF-SHA-256 (RFC 5869) with 32 bytes of output: one expand block.
Key32 Hkdf(absl::string_view ikm, absl::string_view salt, absl::string_view info) {
  const std::string zero_salt(32, '\0');
  Key32 prk = HmacSha256(salt.empty() ? absl::string_view(zero_salt) : salt, ikm);
  std::string t(info);
  t.push_back('\x01');
  Key32 okm = HmacSha256(View(prk), t);
  OPENSSL_cleanse(prk.data(), prk.size());
  return okm;
}

// ChaCha20-Poly1305 (RFC 7539): the one place that names the EVP cipher.
class Aead {
 public:
  Aead() : ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ == nullptr) abort();
  }
  ~Aead() { EVP_CIPHER_CTX_free(ctx_); }
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  // Appends ciphertext and tag of `plain` to `out`.
  void Seal(const Key32& key, const uint8_t nonce[12], absl::string_view plain,
            std::string* out) {
    const size_t at = out->size();
    out->resize(at + plain.size() + kTagSize);
    auto* dst = reinterpret_cast<unsigned char*>(&(*out)[at]);
    int len = 0;
    bool ok = EVP_EncryptInit_ex(ctx_, EVP_chacha20_poly1305(), nullptr, key.data(), nonce) == 1 &&
              EVP_EncryptUpdate(ctx_, dst, &len,
                                reinterpret_cast<const unsigned char*>(plain.data()),
                                static_cast<int>(plain.size())) == 1 &&
              EVP_EncryptFinal_ex(ctx_, dst + len, &len) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTagSize,
                                  dst + plain.size()) == 1;
    if (!ok) abort();  // only on allocation failure inside OpenSSL
  }

  // Writes the plaintext of `sealed` (ciphertext and tag) to `out`; false
  // when the tag does not verify.
  bool Open(const Key32& key, const uint8_t nonce[12], absl::string_view sealed,
            std::string* out) {
    if (sealed.size() < kTagSize) return false;
    const size_t n = sealed.size() - kTagSize;
    out->resize(n);
    auto* dst = reinterpret_cast<unsigned char*>(out->data());
    int len = 0;
    unsigned char tag[kTagSize];
    memcpy(tag, sealed.data() + n, kTagSize);
    return EVP_DecryptInit_ex(ctx_, EVP_chacha20_poly1305(), nullptr, key.data(), nonce) == 1 &&
           EVP_DecryptUpdate(ctx_, dst, &len,
                             reinterpret_cast<const unsigned char*>(sealed.data()),
                             static_cast<int>(n)) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) == 1 &&
           EVP_DecryptFinal_ex(ctx_, dst + len, &len) == 1;
  }

 private:
  EVP_CIPHER_CTX* ctx_;
};

constexpr uint8_t kZeroNonce[12] = {};

// X25519(secret, point); false for an all-zero result (a low-order point).
bool X25519(const Key32& secret, const Key32& point, Key32* out) {
  EVP_PKEY* priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret.data(), 32);
  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, point.data(), 32);
  EVP_PKEY_CTX* ctx = priv != nullptr ? EVP_PKEY_CTX_new(priv, nullptr) : nullptr;
  size_t len = out->size();
  bool ok = ctx != nullptr && peer != nullptr && EVP_PKEY_derive_init(ctx) == 1 &&
            EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
            EVP_PKEY_derive(ctx, out->data(), &len) == 1 && len == 32;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  EVP_PKEY_free(priv);
  if (!ok) return false;
  uint8_t any = 0;
  for (uint8_t b : *out) any |= b;
  return any != 0;
}

bool X25519Public(const Key32& secret, Key32* out) {
  EVP_PKEY* priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret.data(), 32);
  size_t len = out->size();
  bool ok = priv != nullptr && EVP_PKEY_get_raw_public_key(priv, out->data(), &len) == 1 &&
            len == 32;
  EVP_PKEY_free(priv);
  return ok;
}

absl::StatusOr<Key32> ScryptKey(absl::string_view passphrase, absl::string_view salt,
                                int log_n) {
  const std::string s = absl::StrCat(kScryptLabel, salt);
  Key32 key{};
  const uint64_t n = uint64_t{1} << log_n;
  // scrypt needs 128 * r * N bytes (r = 8); OpenSSL refuses more than
  // `maxmem`, 32 MiB when 0 is passed, so say how much is allowed.
  const uint64_t maxmem = 128 * 8 * n + (uint64_t{1} << 20);
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(),
                     reinterpret_cast<const unsigned char*>(s.data()), s.size(), n, 8, 1,
                     maxmem, key.data(), key.size()) != 1) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "scrypt with work factor 2^", log_n, " failed (out of memory?)"));
  }
  return key;
}

// --- header -----------------------------------------------------------------

struct Stanza {
  std::vector<std::string> args;
  std::string body;
};

void AppendStanza(const Stanza& s, std::string* out) {
  out->append("->");
  for (const std::string& a : s.args) absl::StrAppend(out, " ", a);
  out->push_back('\n');
  const std::string b64 = B64Encode(s.body);
  size_t i = 0;
  for (; i + 64 <= b64.size(); i += 64) absl::StrAppend(out, b64.substr(i, 64), "\n");
  absl::StrAppend(out, b64.substr(i), "\n");  // shorter than 64, maybe empty
}

// Serializes the header for `stanzas` and seals it with the MAC of `file_key`.
std::string BuildHeader(const std::vector<Stanza>& stanzas, absl::string_view file_key) {
  std::string h(kMagic);
  for (const Stanza& s : stanzas) AppendStanza(s, &h);
  h.append("---");
  Key32 mac_key = Hkdf(file_key, "", "header");
  Key32 mac = HmacSha256(View(mac_key), h);
  OPENSSL_cleanse(mac_key.data(), mac_key.size());
  absl::StrAppend(&h, " ", B64Encode(View(mac)), "\n");
  return h;
}

bool IsVchar(char c) { return c >= 33 && c <= 126; }

struct ParsedHeader {
  std::vector<Stanza> stanzas;
  size_t mac_covered = 0;  // bytes the MAC covers (through "---")
  std::string mac;
  size_t size = 0;  // whole header, final LF included
};

// Parses a complete header at the start of `h` (which may continue into the
// payload). NOT_FOUND when `h` ends before the header does.
absl::StatusOr<ParsedHeader> ParseHeader(absl::string_view h) {
  ParsedHeader out;
  size_t pos = 0;
  auto next_line = [&](absl::string_view* line) -> absl::Status {
    const size_t nl = h.find('\n', pos);
    if (nl == absl::string_view::npos) {
      if (h.size() - pos > kMaxHeaderBytes || h.size() > kMaxHeaderBytes) {
        return Corrupt(absl::StrCat("the header is longer than ", kMaxHeaderBytes, " bytes"));
      }
      return absl::NotFoundError("header incomplete");
    }
    *line = h.substr(pos, nl - pos);
    pos = nl + 1;
    if (pos > kMaxHeaderBytes) {
      return Corrupt(absl::StrCat("the header is longer than ", kMaxHeaderBytes, " bytes"));
    }
    return absl::OkStatus();
  };
  absl::string_view line;
  SA_RETURN_IF_ERROR(next_line(&line));
  if (absl::StrCat(line, "\n") != kMagic) {
    if (absl::StartsWith(line, "age-encryption.org/")) {
      return Corrupt("an age version this reader does not know (only v1)");
    }
    return Corrupt("it does not start with \"age-encryption.org/v1\"");
  }
  for (;;) {
    SA_RETURN_IF_ERROR(next_line(&line));
    if (absl::StartsWith(line, "---")) {
      if (out.stanzas.empty()) return Corrupt("the header has no recipient stanza");
      if (line.size() != 4 + 43 || line[3] != ' ' ||
          !B64Decode(line.substr(4), &out.mac) || out.mac.size() != 32) {
        return Corrupt("malformed header MAC line");
      }
      out.mac_covered = pos - line.size() - 1 + 3;
      out.size = pos;
      return out;
    }
    if (!absl::StartsWith(line, "-> ")) return Corrupt("a header line is not a stanza");
    if (static_cast<int>(out.stanzas.size()) >= kMaxStanzas) {
      return Corrupt(absl::StrCat("more than ", kMaxStanzas, " recipient stanzas"));
    }
    Stanza s;
    for (absl::string_view a : absl::StrSplit(line.substr(3), ' ')) {
      if (a.empty() || !std::all_of(a.begin(), a.end(), IsVchar)) {
        return Corrupt("a stanza argument is empty or not printable ASCII");
      }
      s.args.emplace_back(a);
    }
    std::string b64;
    for (;;) {
      SA_RETURN_IF_ERROR(next_line(&line));
      if (line.size() > 64) return Corrupt("a stanza body line is longer than 64 columns");
      b64.append(line.data(), line.size());
      if (line.size() < 64) break;
    }
    if (!B64Decode(b64, &s.body)) return Corrupt("a stanza body is not canonical base64");
    out.stanzas.push_back(std::move(s));
  }
}

absl::Status KeyError(const std::string& why) {
  return absl::FailedPreconditionError(why);
}

// Tries every stanza with the keys; the file key, or why there is none.
absl::StatusOr<std::string> UnwrapFileKey(const std::vector<Stanza>& stanzas, const Keys& keys) {
  Aead aead;
  std::string file_key;
  int x25519 = 0;
  bool has_scrypt = false;
  for (const Stanza& s : stanzas) {
    if (s.args[0] == "scrypt") has_scrypt = true;
  }
  if (has_scrypt && stanzas.size() != 1) {
    return Corrupt("an scrypt stanza must be the only stanza of the header");
  }
  for (const Stanza& s : stanzas) {
    if (s.args[0] == "X25519") {
      ++x25519;
      std::string share;
      if (s.args.size() != 2 || !B64Decode(s.args[1], &share) || share.size() != 32) {
        return Corrupt("malformed X25519 stanza");
      }
      if (s.body.size() != kFileKeySize + kTagSize) return Corrupt("malformed X25519 stanza body");
      Key32 eph{};
      memcpy(eph.data(), share.data(), 32);
      for (const X25519Identity& id : keys.identities) {
        Key32 shared{};
        if (!X25519(id.secret(), eph, &shared)) {
          return Corrupt("an X25519 stanza's share is a low-order point");
        }
        const std::string salt = absl::StrCat(View(eph), View(id.recipient().public_key));
        Key32 wrap = Hkdf(View(shared), salt, kX25519Label);
        const bool ok = aead.Open(wrap, kZeroNonce, s.body, &file_key);
        OPENSSL_cleanse(wrap.data(), wrap.size());
        OPENSSL_cleanse(shared.data(), shared.size());
        if (ok) return file_key;
      }
    } else if (s.args[0] == "scrypt") {
      std::string salt;
      int log_n = 0;
      if (s.args.size() != 3 || !B64Decode(s.args[1], &salt) || salt.size() != 16 ||
          s.args[2].empty() || s.args[2][0] == '0' ||
          !std::all_of(s.args[2].begin(), s.args[2].end(), absl::ascii_isdigit) ||
          !absl::SimpleAtoi(s.args[2], &log_n)) {
        return Corrupt("malformed scrypt stanza");
      }
      if (s.body.size() != kFileKeySize + kTagSize) return Corrupt("malformed scrypt stanza body");
      if (keys.passphrase.empty()) {
        return KeyError("the file is encrypted with a passphrase, and none was given");
      }
      if (log_n > keys.max_scrypt_log_n) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "the file's scrypt work factor 2^%d is over the limit of 2^%d", log_n,
            keys.max_scrypt_log_n));
      }
      SA_ASSIGN_OR_RETURN(Key32 wrap, ScryptKey(keys.passphrase, salt, log_n));
      const bool ok = aead.Open(wrap, kZeroNonce, s.body, &file_key);
      OPENSSL_cleanse(wrap.data(), wrap.size());
      if (ok) return file_key;
      return KeyError("wrong passphrase (or the file's header was altered)");
    }
    // Other stanza types (plugins, SSH, grease) are not ours: skipped.
  }
  if (keys.identities.empty()) {
    return KeyError("the file is encrypted to age recipients, and no identity was given");
  }
  return KeyError(absl::StrFormat(
      "none of the %d identities given matches any of the file's %d X25519 recipients "
      "(or its header was altered): use an identity the file was encrypted to",
      keys.identities.size(), x25519));
}

void ChunkNonce(uint64_t counter, bool last, uint8_t nonce[12]) {
  memset(nonce, 0, 12);
  for (int i = 0; i < 8; ++i) nonce[10 - i] = static_cast<uint8_t>(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
}

template <typename T>
absl::StatusOr<std::vector<T>> ParseKeyLines(absl::string_view text, absl::string_view what,
                                             bool secret,
                                             absl::StatusOr<T> (*parse)(absl::string_view)) {
  std::vector<T> out;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::StatusOr<T> k = parse(line);
    if (!k.ok()) {
      // A secret key where a public one belongs is never quoted.
      const bool leaks = secret || absl::StartsWithIgnoreCase(line, "AGE-SECRET-KEY-");
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", n, " of the ", what, " is not usable: ", k.status().message(),
          leaks ? (secret ? "" : " (it is a secret key: give its public key, age-keygen -y FILE)")
                : absl::StrCat(" (\"", line.substr(0, 80), "\")")));
    }
    out.push_back(*std::move(k));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " holds no key"));
  }
  return out;
}

}  // namespace

// --- keys -------------------------------------------------------------------

absl::StatusOr<X25519Recipient> X25519Recipient::Parse(absl::string_view age1) {
  if (absl::StartsWith(age1, "ssh-")) {
    return absl::InvalidArgumentError("SSH keys are not supported as recipients; use an age1 key");
  }
  absl::StatusOr<Bech32> b = Bech32Decode(age1);
  if (!b.ok()) return b.status();
  if (b->hrp != kRecipientHrp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not an X25519 age recipient (\"", b->hrp,
        "1...\"; expected \"age1...\": only X25519 recipients are supported)"));
  }
  if (b->data.size() != 32) {
    return absl::InvalidArgumentError("an age1 recipient must hold 32 bytes");
  }
  X25519Recipient r;
  memcpy(r.public_key.data(), b->data.data(), 32);
  return r;
}

std::string X25519Recipient::Encode() const {
  return Bech32Encode(kRecipientHrp, View(public_key));
}

absl::StatusOr<X25519Identity> X25519Identity::Generate() {
  X25519Identity id;
  Random(id.secret_.data(), id.secret_.size());
  if (!X25519Public(id.secret_, &id.recipient_.public_key)) {
    return absl::InternalError("cannot compute an X25519 public key");
  }
  return id;
}

absl::StatusOr<X25519Identity> X25519Identity::Parse(absl::string_view secret) {
  absl::StatusOr<Bech32> b = Bech32Decode(secret);
  if (!b.ok()) return b.status();
  if (b->hrp != kIdentityHrp || b->data.size() != 32) {
    OPENSSL_cleanse(b->data.data(), b->data.size());
    return absl::InvalidArgumentError(
        "not an X25519 age identity (expected \"AGE-SECRET-KEY-1...\")");
  }
  X25519Identity id;
  memcpy(id.secret_.data(), b->data.data(), 32);
  OPENSSL_cleanse(b->data.data(), b->data.size());
  if (!X25519Public(id.secret_, &id.recipient_.public_key)) {
    return absl::InvalidArgumentError("not a usable X25519 secret key");
  }
  return id;
}

X25519Identity::~X25519Identity() { OPENSSL_cleanse(secret_.data(), secret_.size()); }

std::string X25519Identity::Encode() const {
  return absl::AsciiStrToUpper(Bech32Encode(kIdentityHrp, View(secret_)));
}

absl::StatusOr<std::vector<X25519Recipient>> ParseRecipients(absl::string_view text) {
  return ParseKeyLines<X25519Recipient>(text, "recipients", false, &X25519Recipient::Parse);
}

absl::StatusOr<std::vector<X25519Identity>> ParseIdentities(absl::string_view text) {
  return ParseKeyLines<X25519Identity>(text, "identity file", true, &X25519Identity::Parse);
}

absl::StatusOr<std::vector<X25519Recipient>> ReadRecipientsFile(const std::string& path) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  absl::StatusOr<std::vector<X25519Recipient>> r = ParseRecipients(text);
  if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat(path, ": ", r.status().message()));
  return r;
}

absl::StatusOr<std::vector<X25519Identity>> ReadIdentityFile(const std::string& path) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(path, "identity file"));
  absl::StatusOr<std::vector<X25519Identity>> ids = ParseIdentities(text);
  OPENSSL_cleanse(text.data(), text.size());
  if (!ids.ok()) {
    return absl::Status(ids.status().code(), absl::StrCat(path, ": ", ids.status().message()));
  }
  return ids;
}

bool LooksLikeAge(absl::string_view head) {
  auto prefix_of = [&](absl::string_view magic) {
    const size_t n = std::min(head.size(), magic.size());
    return n > 0 && head.substr(0, n) == magic.substr(0, n);
  };
  return prefix_of(kMagic) || prefix_of(kArmorBegin);
}

// --- Encryptor ----------------------------------------------------------------

class Encryptor::Impl {
 public:
  Aead aead;
  Key32 payload_key{};
  ~Impl() { OPENSSL_cleanse(payload_key.data(), payload_key.size()); }
};

namespace {

// Writes the header and the payload nonce; returns the payload key.
absl::StatusOr<Key32> StartFile(const std::vector<Stanza>& stanzas, absl::string_view file_key,
                                ByteSink* out, uint64_t* written) {
  std::string head = BuildHeader(stanzas, file_key);
  uint8_t nonce[kNonceSize];
  Random(nonce, sizeof(nonce));
  const absl::string_view nonce_view(reinterpret_cast<const char*>(nonce), sizeof(nonce));
  head.append(nonce_view.data(), nonce_view.size());
  SA_RETURN_IF_ERROR(out->Write(head));
  *written = head.size();
  return Hkdf(file_key, nonce_view, "payload");
}

}  // namespace

Encryptor::Encryptor(std::unique_ptr<Impl> impl, ByteSink* out)
    : impl_(std::move(impl)), out_(out) {
  plain_.reserve(kChunkSize * 2);
  sealed_.reserve(kSealedChunk);
}

Encryptor::~Encryptor() = default;

absl::StatusOr<std::unique_ptr<Encryptor>> Encryptor::Create(
    const std::vector<X25519Recipient>& recipients, ByteSink* out) {
  if (recipients.empty()) return absl::InvalidArgumentError("no recipient to encrypt to");
  uint8_t file_key[kFileKeySize];
  Random(file_key, sizeof(file_key));
  const absl::string_view fk(reinterpret_cast<const char*>(file_key), sizeof(file_key));
  std::vector<Stanza> stanzas;
  Aead aead;
  for (const X25519Recipient& r : recipients) {
    Key32 eph{}, share{}, shared{};
    Random(eph.data(), eph.size());
    if (!X25519Public(eph, &share) || !X25519(eph, r.public_key, &shared)) {
      return absl::InvalidArgumentError(
          absl::StrCat("recipient ", r.Encode(), " is not a usable X25519 public key"));
    }
    Key32 wrap = Hkdf(View(shared), absl::StrCat(View(share), View(r.public_key)), kX25519Label);
    Stanza s;
    s.args = {"X25519", B64Encode(View(share))};
    aead.Seal(wrap, kZeroNonce, fk, &s.body);
    OPENSSL_cleanse(wrap.data(), wrap.size());
    OPENSSL_cleanse(shared.data(), shared.size());
    OPENSSL_cleanse(eph.data(), eph.size());
    stanzas.push_back(std::move(s));
  }
  uint64_t written = 0;
  absl::StatusOr<Key32> key = StartFile(stanzas, fk, out, &written);
  OPENSSL_cleanse(file_key, sizeof(file_key));
  return Started(std::move(key), written, out);
}

absl::StatusOr<std::unique_ptr<Encryptor>> Encryptor::CreateWithPassphrase(
    absl::string_view passphrase, int log_n, ByteSink* out) {
  if (passphrase.empty()) return absl::InvalidArgumentError("the passphrase is empty");
  if (log_n < 1 || log_n > kMaxScryptLogN) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt work factor 2^", log_n, " is outside 2^1..2^", kMaxScryptLogN));
  }
  uint8_t file_key[kFileKeySize];
  Random(file_key, sizeof(file_key));
  const absl::string_view fk(reinterpret_cast<const char*>(file_key), sizeof(file_key));
  uint8_t salt[16];
  Random(salt, sizeof(salt));
  const absl::string_view salt_view(reinterpret_cast<const char*>(salt), sizeof(salt));
  SA_ASSIGN_OR_RETURN(Key32 wrap, ScryptKey(passphrase, salt_view, log_n));
  Stanza s;
  s.args = {"scrypt", B64Encode(salt_view), absl::StrCat(log_n)};
  Aead aead;
  aead.Seal(wrap, kZeroNonce, fk, &s.body);
  OPENSSL_cleanse(wrap.data(), wrap.size());
  uint64_t written = 0;
  absl::StatusOr<Key32> key = StartFile({s}, fk, out, &written);
  OPENSSL_cleanse(file_key, sizeof(file_key));
  return Started(std::move(key), written, out);
}

absl::StatusOr<std::unique_ptr<Encryptor>> Encryptor::Started(absl::StatusOr<Key32> payload_key,
                                                              uint64_t header_bytes,
                                                              ByteSink* out) {
  if (!payload_key.ok()) return payload_key.status();
  auto impl = std::make_unique<Impl>();
  impl->payload_key = *payload_key;
  OPENSSL_cleanse(payload_key->data(), payload_key->size());
  std::unique_ptr<Encryptor> e(new Encryptor(std::move(impl), out));
  e->bytes_out_ = header_bytes;
  return e;
}

absl::Status Encryptor::Seal(bool last) {
  const size_t n = std::min(plain_.size(), kChunkSize);
  uint8_t nonce[12];
  ChunkNonce(counter_++, last, nonce);
  sealed_.clear();
  impl_->aead.Seal(impl_->payload_key, nonce, absl::string_view(plain_.data(), n), &sealed_);
  plain_.erase(0, n);
  SA_RETURN_IF_ERROR(out_->Write(sealed_));
  bytes_out_ += sealed_.size();
  return absl::OkStatus();
}

absl::Status Encryptor::Write(absl::string_view data) {
  if (finished_) return absl::FailedPreconditionError("the age stream is already finished");
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kChunkSize + 1 - plain_.size());
    plain_.append(data.data(), n);
    data.remove_prefix(n);
    // A full chunk is sealed only once more data follows: the final chunk
    // carries the last flag, and it may be full.
    if (plain_.size() > kChunkSize) SA_RETURN_IF_ERROR(Seal(false));
  }
  return absl::OkStatus();
}

absl::Status Encryptor::Finish() {
  if (finished_) return absl::FailedPreconditionError("the age stream is already finished");
  finished_ = true;
  return Seal(true);
}

uint64_t Encryptor::EncryptedSize(uint64_t header_bytes, uint64_t plaintext) {
  const uint64_t chunks = plaintext == 0 ? 1 : (plaintext + kChunkSize - 1) / kChunkSize;
  return header_bytes + plaintext + chunks * kTagSize;
}

// --- Decryptor ----------------------------------------------------------------

class Decryptor::Impl {
 public:
  Aead aead;
  Key32 payload_key{};
  ~Impl() { OPENSSL_cleanse(payload_key.data(), payload_key.size()); }
};

Decryptor::Decryptor(std::unique_ptr<Impl> impl, ByteSource* in, std::string rest)
    : impl_(std::move(impl)), in_(in), sealed_(std::move(rest)) {}

Decryptor::~Decryptor() = default;

absl::StatusOr<std::unique_ptr<Decryptor>> Decryptor::Open(ByteSource* in, const Keys& keys) {
  std::string buf;
  absl::StatusOr<ParsedHeader> header = absl::NotFoundError("");
  bool eof = false;
  while (absl::IsNotFound(header.status())) {
    if (eof) return Corrupt("the file ends inside its header");
    const size_t at = buf.size();
    buf.resize(at + 4096);
    SA_ASSIGN_OR_RETURN(size_t got, in->Read(&buf[at], 4096));
    buf.resize(at + got);
    eof = got == 0;
    if (absl::StartsWith(buf, kArmorBegin)) {
      return absl::InvalidArgumentError(
          "an ASCII-armored age file: dearmor it first (age -d decrypts it; or encrypt "
          "without -a)");
    }
    header = ParseHeader(buf);
  }
  if (!header.ok()) return header.status();
  SA_ASSIGN_OR_RETURN(std::string file_key, UnwrapFileKey(header->stanzas, keys));
  Key32 mac_key = Hkdf(file_key, "", "header");
  Key32 mac = HmacSha256(View(mac_key), absl::string_view(buf).substr(0, header->mac_covered));
  OPENSSL_cleanse(mac_key.data(), mac_key.size());
  if (CRYPTO_memcmp(mac.data(), header->mac.data(), 32) != 0) {
    OPENSSL_cleanse(file_key.data(), file_key.size());
    return Corrupt("the header MAC does not match: the header was altered");
  }
  std::string rest = buf.substr(header->size);
  while (rest.size() < kNonceSize) {
    const size_t at = rest.size();
    rest.resize(kNonceSize);
    SA_ASSIGN_OR_RETURN(size_t got, in->Read(&rest[at], kNonceSize - at));
    rest.resize(at + got);
    if (got == 0) {
      OPENSSL_cleanse(file_key.data(), file_key.size());
      return Corrupt("the file ends before its payload nonce");
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->payload_key = Hkdf(file_key, absl::string_view(rest).substr(0, kNonceSize), "payload");
  OPENSSL_cleanse(file_key.data(), file_key.size());
  return std::unique_ptr<Decryptor>(new Decryptor(std::move(impl), in, rest.substr(kNonceSize)));
}

absl::Status Decryptor::NextChunk() {
  // Read one sealed chunk and one byte more: whether anything follows
  // decides whether this chunk must be the final one.
  const size_t want = kSealedChunk + 1;
  bool eof = false;
  while (sealed_.size() < want && !eof) {
    const size_t at = sealed_.size();
    sealed_.resize(want);
    absl::StatusOr<size_t> got = in_->Read(&sealed_[at], want - at);
    if (!got.ok()) {
      sealed_.resize(at);
      return got.status();
    }
    sealed_.resize(at + *got);
    eof = *got == 0;
  }
  const bool last = sealed_.size() <= kSealedChunk;
  const size_t n = last ? sealed_.size() : kSealedChunk;
  if (n < kTagSize) return Corrupt("the payload is truncated (a chunk shorter than its tag)");
  if (last && n == kTagSize && counter_ > 0) {
    return Corrupt("an empty final chunk after other chunks");
  }
  uint8_t nonce[12];
  ChunkNonce(counter_, last, nonce);
  if (!impl_->aead.Open(impl_->payload_key, nonce, absl::string_view(sealed_.data(), n), &plain_)) {
    if (last) {
      return Corrupt(
          "the last chunk does not verify: the file is truncated or its payload was altered");
    }
    return Corrupt(absl::StrCat("payload chunk ", counter_, " does not verify: the file was altered"));
  }
  ++counter_;
  sealed_.erase(0, n);
  plain_pos_ = 0;
  done_ = last;
  return absl::OkStatus();
}

absl::StatusOr<size_t> Decryptor::Read(char* buf, size_t n) {
  while (plain_pos_ == plain_.size()) {
    if (done_) return 0;
    SA_RETURN_IF_ERROR(NextChunk());
  }
  const size_t k = std::min(n, plain_.size() - plain_pos_);
  memcpy(buf, plain_.data() + plain_pos_, k);
  plain_pos_ += k;
  return k;
}

namespace {

// The bytes read ahead to look at a file's start, then the rest of `in`.
class Replay : public ByteSource {
 public:
  Replay(std::string head, ByteSource* in) : head_(std::move(head)), in_(in) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (pos_ >= head_.size()) return in_->Read(buf, n);
    // The head, and the rest of the buffer from `in` in the same call: reads
    // stay whole (and the file's reads aligned to the caller's size).
    const size_t k = std::min(n, head_.size() - pos_);
    memcpy(buf, head_.data() + pos_, k);
    pos_ += k;
    if (k == n) return k;
    absl::StatusOr<size_t> more = in_->Read(buf + k, n - k);
    if (!more.ok()) return more.status();
    return k + *more;
  }

 private:
  std::string head_;
  size_t pos_ = 0;
  ByteSource* in_;
};

// Owns the replay under a decryptor.
class DecryptedReplay : public ByteSource {
 public:
  explicit DecryptedReplay(std::unique_ptr<Replay> replay) : replay_(std::move(replay)) {}
  absl::Status Open(const Keys& keys) {
    SA_ASSIGN_OR_RETURN(dec_, Decryptor::Open(replay_.get(), keys));
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return dec_->Read(buf, n); }

 private:
  std::unique_ptr<Replay> replay_;
  std::unique_ptr<Decryptor> dec_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ByteSource>> OpenMaybeEncrypted(ByteSource* in, const Keys& keys,
                                                               bool* encrypted) {
  std::string head(kArmorBegin.size(), '\0');
  SA_ASSIGN_OR_RETURN(size_t got, ReadFully(in, &head[0], head.size()));
  head.resize(got);
  const bool is_age = LooksLikeAge(head);
  if (encrypted != nullptr) *encrypted = is_age;
  auto replay = std::make_unique<Replay>(std::move(head), in);
  if (!is_age) return std::unique_ptr<ByteSource>(std::move(replay));
  if (keys.identities.empty() && keys.passphrase.empty()) {
    return absl::InvalidArgumentError(
        "it is encrypted with age: give the key that opens it (--identity=FILE, or "
        "--passphrase-file=FILE)");
  }
  auto dec = std::make_unique<DecryptedReplay>(std::move(replay));
  SA_RETURN_IF_ERROR(dec->Open(keys));
  return std::unique_ptr<ByteSource>(std::move(dec));
}

}  // namespace age
}  // namespace snapshot
