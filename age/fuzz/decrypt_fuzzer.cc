// libFuzzer target for the age decryptor (tools/fuzz.sh age builds and runs
// it with ASan and UBSan): header parsing, stanza unwrapping, the header MAC
// and the payload's chunk stream. Each input is decrypted twice: read from a
// source that returns it whole, and from one that returns it in pieces whose
// sizes come from the input itself; both must give the same verdict and the
// same plaintext, and neither may crash, leak or hit undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "age/age.h"
#include "base/io.h"

namespace {

constexpr char kIdentity[] =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";

// Returns the input in pieces of 1..64 bytes, sizes from a generator seeded
// by the input.
class PieceSource : public snapshot::ByteSource {
 public:
  PieceSource(const uint8_t* data, size_t size) : data_(data), size_(size) {
    for (size_t i = 0; i < size && i < 16; ++i) seed_ = seed_ * 31 + data[i];
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    seed_ = seed_ * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t k = std::min({n, size_ - pos_, static_cast<size_t>(1 + (seed_ >> 58))});
    memcpy(buf, data_ + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t seed_ = 1;
};

struct Verdict {
  absl::Status status;
  std::string plain;
};

Verdict Decrypt(snapshot::ByteSource* src, const snapshot::age::Keys& keys) {
  Verdict v;
  auto dec = snapshot::age::Decryptor::Open(src, keys);
  if (!dec.ok()) {
    v.status = dec.status();
    return v;
  }
  char buf[5000];
  for (;;) {
    absl::StatusOr<size_t> n = (*dec)->Read(buf, sizeof(buf));
    if (!n.ok()) {
      v.status = n.status();
      return v;
    }
    if (*n == 0) return v;
    v.plain.append(buf, *n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const snapshot::age::Keys* keys = [] {
    auto* k = new snapshot::age::Keys;
    k->identities.push_back(*snapshot::age::X25519Identity::Parse(kIdentity));
    k->passphrase = "fuzz";
    k->max_scrypt_log_n = 4;  // the fuzzer must not spend its time in scrypt
    return k;
  }();
  snapshot::StringSource whole(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  PieceSource pieces(data, size);
  Verdict a = Decrypt(&whole, *keys);
  Verdict b = Decrypt(&pieces, *keys);
  if (a.status != b.status || a.plain != b.plain) {
    fprintf(stderr, "whole: %s\npieces: %s\n", a.status.ToString().c_str(),
            b.status.ToString().c_str());
    abort();
  }
  return 0;
}
