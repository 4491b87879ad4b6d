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
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

// Sha256 on a thread of its own, so that hashing a stream runs beside the
// work of the thread that feeds it (compressing, inflating, sending): the
// bytes go into blocks of kBlock bytes that the hashing thread consumes in
// order. At most kMaxQueued blocks wait (feeding then blocks), so memory
// stays within (kMaxQueued + 3) * kBlock (5 MiB: those waiting, the one being
// filled, the one being hashed and one kept for reuse).
//
// Two ways to feed it: Update copies the bytes in; Space and Commit let the
// feeder produce them in the block itself (a read straight into it), with no
// copy.
//
// Threading: Update, Space, Commit and Finish are called from one thread at
// a time (the feeding thread); the instance owns its hashing thread, started
// on the first full block (a short stream is hashed inline, with no thread).
class AsyncSha256 {
 public:
  static constexpr size_t kBlock = 1 << 20;
  static constexpr size_t kMaxQueued = 2;

  AsyncSha256() = default;
  ~AsyncSha256();
  AsyncSha256(const AsyncSha256&) = delete;
  AsyncSha256& operator=(const AsyncSha256&) = delete;

  void Update(absl::string_view data);
  // The free part of the current block (never empty): the feeder writes up
  // to *room bytes there, may read them back, then calls Commit(n). The
  // space is the feeder's until Commit; any other call invalidates it.
  char* Space(size_t* room);
  // Hashes the first n bytes written at Space(); n <= room.
  void Commit(size_t n);
  // The digest of everything fed; the instance is then reset.
  Digest Finish();

 private:
  // A block of kBlock bytes (allocated once, reused) and how much is in it.
  struct Block {
    std::unique_ptr<char[]> bytes;
    size_t size = 0;
  };
  void Submit();  // queues the current block
  void Run();

  Sha256 hash_;    // the hashing thread's once it runs
  Block block_;    // the feeding thread's current block
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Block> queue_;   // guarded by mu_
  std::vector<Block> free_;   // guarded by mu_: blocks to reuse
  bool busy_ = false;         // guarded by mu_: a block is being hashed
  bool stop_ = false;         // guarded by mu_
  std::thread thread_;
};

// Digest of `data` in one call.
Digest Sha256Of(absl::string_view data);

// HMAC-SHA-256 of `data` under `key` (RFC 2104), in one call.
Digest HmacSha256(absl::string_view key, absl::string_view data);

// The digest's bytes as a string_view (valid while `d` lives).
inline absl::string_view DigestBytes(const Digest& d) {
  return absl::string_view(reinterpret_cast<const char*>(d.data()), d.size());
}

// "0a1b..." (64 lower-case hex digits).
std::string HexLower(const Digest& d);

// Parses 64 hex digits (either case). Returns false for anything else.
bool ParseHexDigest(absl::string_view hex, Digest* out);

// The archive checksum form: "sha-256=" + padded standard base64 of `d`.
std::string ChecksumString(const Digest& d);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_SHA256_H_
