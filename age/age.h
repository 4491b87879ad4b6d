// The age file format (age-encryption.org/v1, c2sp.org/age) as a byte-stream
// stage: an encrypting sink and a decrypting source, X25519 recipients and
// identities, and scrypt passphrases. Files it writes decrypt with `age -d`;
// files `age` writes decrypt here. Nothing in it knows about snapshots.
//
//   SA_ASSIGN_OR_RETURN(auto recipients, age::ParseRecipients(text));
//   SA_ASSIGN_OR_RETURN(auto enc, age::Encryptor::Create(recipients, &file_sink));
//   SA_RETURN_IF_ERROR(enc->Write(bytes));
//   SA_RETURN_IF_ERROR(enc->Finish());  // without it the file is truncated
//
//   SA_ASSIGN_OR_RETURN(auto dec, age::Decryptor::Open(&file_source, keys));
//   dec->Read(buf, n);  // authenticated plaintext, 64 KiB at a time
//
// What is accepted and refused (beyond the spec's MUSTs, which all hold):
// - a header of at most kMaxHeaderBytes and kMaxStanzas stanzas: every X25519
//   stanza costs a scalar multiplication before the header can be
//   authenticated, so an unbounded header is a CPU bomb;
// - scrypt work factors up to 2^kMaxScryptLogN (age's own limit: 1 GiB of
//   memory); the ASCII-armored form is refused (dearmor it with `age -d`);
// - recipient types other than X25519 and scrypt (SSH keys, plugins,
//   post-quantum) are refused in recipient files and skipped in headers.
//
// Errors, by what the caller does next:
// - DATA_LOSS: the bytes are not a whole, unaltered age file (a malformed
//   header, a header MAC or chunk tag that does not verify, a truncation, at a
//   chunk boundary too, bytes after the final chunk);
// - FAILED_PRECONDITION: none of the given identities (or the passphrase)
//   opens the file: use the key it was encrypted to;
// - INVALID_ARGUMENT: a malformed key, recipients file or identity file, or an
//   armored file. Messages never contain key material; a secret key's line is
//   named by its number only.
// - errors of the wrapped sink or source pass through unchanged.
//
// Threading: an Encryptor or Decryptor is used by one thread at a time; keys
// are immutable values, safe to share. Ownership: the wrapped sink or source
// is borrowed and must outlive the stage. Memory: one 64 KiB chunk each way.
// Crypto: OpenSSL's EVP (X25519, ChaCha20-Poly1305, scrypt) and HMAC-SHA-256;
// HKDF is computed from HMAC here. BoringSSL has all of these except
// EVP_chacha20_poly1305, which it offers as EVP_AEAD: age.cc keeps that call
// in one function.
#ifndef SNAPSHOT_AGENT_AGE_AGE_H_
#define SNAPSHOT_AGENT_AGE_AGE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/io.h"

namespace snapshot {
namespace age {

constexpr absl::string_view kMagic = "age-encryption.org/v1\n";
constexpr size_t kChunkSize = 64 << 10;  // plaintext bytes per payload chunk
constexpr size_t kMaxHeaderBytes = 64 << 10;
constexpr int kMaxStanzas = 128;
constexpr int kMaxScryptLogN = 22;
constexpr int kDefaultScryptLogN = 18;  // age's default

using Key32 = std::array<uint8_t, 32>;

// An X25519 recipient: "age1..." (a public key).
struct X25519Recipient {
  Key32 public_key{};
  static absl::StatusOr<X25519Recipient> Parse(absl::string_view age1);
  std::string Encode() const;  // "age1..."
  bool operator==(const X25519Recipient& o) const { return public_key == o.public_key; }
};

// An X25519 identity: "AGE-SECRET-KEY-1..." (a secret key and its public
// key). The secret is wiped when the value is destroyed.
class X25519Identity {
 public:
  static absl::StatusOr<X25519Identity> Generate();
  static absl::StatusOr<X25519Identity> Parse(absl::string_view secret);
  X25519Identity(const X25519Identity&) = default;
  X25519Identity& operator=(const X25519Identity&) = default;
  ~X25519Identity();

  std::string Encode() const;  // "AGE-SECRET-KEY-1..." (secret: never log it)
  const X25519Recipient& recipient() const { return recipient_; }
  const Key32& secret() const { return secret_; }

 private:
  X25519Identity() = default;
  Key32 secret_{};
  X25519Recipient recipient_;
};

// Recipients in age's -R file form: one "age1..." per line; blank lines and
// lines starting with '#' ignored. At least one recipient.
absl::StatusOr<std::vector<X25519Recipient>> ParseRecipients(absl::string_view text);
// Identities in age-keygen's file form: "AGE-SECRET-KEY-1..." lines; blank
// lines and '#' comments ignored. At least one identity.
absl::StatusOr<std::vector<X25519Identity>> ParseIdentities(absl::string_view text);
// Reads and parses a recipients file (at most 1 MiB).
absl::StatusOr<std::vector<X25519Recipient>> ReadRecipientsFile(const std::string& path);
// Reads and parses an identity file, which must not be readable or writable
// by group or others (FAILED_PRECONDITION naming the mode otherwise).
absl::StatusOr<std::vector<X25519Identity>> ReadIdentityFile(const std::string& path);

// What may open a file: X25519 identities and/or a passphrase.
struct Keys {
  std::vector<X25519Identity> identities;
  std::string passphrase;  // empty: none
  int max_scrypt_log_n = kMaxScryptLogN;
};

// True when `head` (the first bytes of a file, any length) starts like an
// age file, binary or armored.
bool LooksLikeAge(absl::string_view head);

// Encrypts a byte stream into `out`. The header is written by Create; each
// 64 KiB of plaintext is sealed as it fills; Finish() seals the final chunk.
class Encryptor : public ByteSink {
 public:
  static absl::StatusOr<std::unique_ptr<Encryptor>> Create(
      const std::vector<X25519Recipient>& recipients, ByteSink* out);
  static absl::StatusOr<std::unique_ptr<Encryptor>> CreateWithPassphrase(
      absl::string_view passphrase, int log_n, ByteSink* out);
  ~Encryptor() override;

  absl::Status Write(absl::string_view data) override;
  // Seals the final chunk. Required: a stream without it does not decrypt.
  absl::Status Finish();
  // Bytes written to `out` so far (header included).
  uint64_t bytes_out() const { return bytes_out_; }

  // The size of the age file for `plaintext` bytes with a header of
  // `header_bytes` (bytes_out() right after Create).
  static uint64_t EncryptedSize(uint64_t header_bytes, uint64_t plaintext);

 private:
  class Impl;
  Encryptor(std::unique_ptr<Impl> impl, ByteSink* out);
  // The encryptor of a file whose header (`header_bytes`, written) gave
  // `payload_key`, or that key's error.
  static absl::StatusOr<std::unique_ptr<Encryptor>> Started(absl::StatusOr<Key32> payload_key,
                                                            uint64_t header_bytes, ByteSink* out);
  absl::Status Seal(bool last);
  std::unique_ptr<Impl> impl_;
  ByteSink* out_;
  std::string plain_;
  std::string sealed_;
  uint64_t counter_ = 0;
  uint64_t bytes_out_ = 0;
  bool finished_ = false;
};

// Decrypts an age file read from `in`. Open() reads and authenticates the
// header; Read() returns plaintext only after its chunk's tag verified, and
// returns 0 only after a valid final chunk and the end of `in`.
class Decryptor : public ByteSource {
 public:
  static absl::StatusOr<std::unique_ptr<Decryptor>> Open(ByteSource* in, const Keys& keys);
  ~Decryptor() override;

  absl::StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  class Impl;
  Decryptor(std::unique_ptr<Impl> impl, ByteSource* in, std::string rest);
  absl::Status NextChunk();
  std::unique_ptr<Impl> impl_;
  ByteSource* in_;
  std::string sealed_;  // ciphertext read ahead (one chunk and a byte)
  std::string plain_;
  size_t plain_pos_ = 0;
  uint64_t counter_ = 0;
  bool done_ = false;
};

// A source that reads `in` as it is, or decrypted when it starts like an age
// file (which `*encrypted` then says): for inputs that may be either, such as
// a snapshot file given to a command. An age file with no keys given is
// INVALID_ARGUMENT asking for them; otherwise errors as Decryptor::Open. `in`
// is borrowed and must outlive the result.
absl::StatusOr<std::unique_ptr<ByteSource>> OpenMaybeEncrypted(ByteSource* in, const Keys& keys,
                                                               bool* encrypted = nullptr);

}  // namespace age
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_AGE_AGE_H_
