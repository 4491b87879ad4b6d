// Sha256: incremental SHA-256 through OpenSSL's EVP interface (the subset that
// BoringSSL shares), plus the encodings the archive format uses.
//
//   Sha256 h;
//   h.Update("abc");
//   std::string hex = HexLower(h.Finish());  // "ba7816bf..."
//
// Threading: one instance per thread. Construction aborts only if the EVP
// library cannot allocate a context (out of memory).
#ifndef SNAPSHOT_AGENT_BASE_SHA256_H_
#define SNAPSHOT_AGENT_BASE_SHA256_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace snapshot {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Returns the digest of everything passed to Update() and resets the hash
  // so that the instance can be reused.
  Digest Finish();

 private:
  EVP_MD_CTX* ctx_;
};

// Digest of `data` in one call.
Digest Sha256Of(absl::string_view data);

// "0a1b..." (64 lower-case hex digits).
std::string HexLower(const Digest& d);

// Parses 64 hex digits (either case). Returns false for anything else.
bool ParseHexDigest(absl::string_view hex, Digest* out);

// The archive checksum form: "sha-256=" + padded standard base64 of `d`.
std::string ChecksumString(const Digest& d);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_SHA256_H_
