// libFuzzer target for the archive reader (tools/fuzz.sh builds and
// runs it with ASan and UBSan). Each input is read twice: fed whole, and fed
// in chunks whose sizes come from a generator seeded by the input itself
// (so a crash reproduces from the input alone). Both readings must give the
// same verdict — the same status code and message, and for a valid archive
// the same metadata, checksums and state bytes — and must never crash, leak
// or run into undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"

#include "archive/archive.h"
#include "base/sha256.h"

namespace {

// Hashes what reaches it: state bytes are compared without keeping them.
class HashSink : public snapshot::ByteSink {
 public:
  absl::Status Write(absl::string_view data) override {
    hash_.Update(data);
    return absl::OkStatus();
  }
  snapshot::Digest Finish() { return hash_.Finish(); }

 private:
  snapshot::Sha256 hash_;
};

struct Verdict {
  absl::Status status;
  snapshot::ArchiveInfo info;
  snapshot::Digest state;
};

snapshot::ReaderOptions Options() {
  snapshot::ReaderOptions o;
  o.max_state_bytes = 64 << 20;  // a claimed giant state is refused early
  return o;
}

// Ends a reading: Finish() unless feeding failed already.
Verdict Conclude(snapshot::ArchiveReader* reader, HashSink* sink,
                 absl::Status fed) {
  Verdict v;
  v.status = fed;
  if (v.status.ok()) {
    absl::StatusOr<snapshot::ArchiveInfo> info = reader->Finish();
    v.status = info.status();
    if (info.ok()) v.info = *info;
  }
  v.state = sink->Finish();
  return v;
}

Verdict ReadWhole(absl::string_view in) {
  HashSink sink;
  snapshot::ArchiveReader reader(&sink, Options());
  absl::Status fed = reader.Feed(in);
  return Conclude(&reader, &sink, fed);
}

Verdict ReadInChunks(absl::string_view in) {
  uint64_t x = 0x9e3779b97f4a7c15ull ^ in.size();
  for (size_t i = 0; i < in.size() && i < 64; ++i) x = x * 131 + static_cast<uint8_t>(in[i]);
  HashSink sink;
  snapshot::ArchiveReader reader(&sink, Options());
  absl::Status fed;
  while (!in.empty() && fed.ok()) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Mostly small chunks (0 to 63 bytes), now and then up to 4 KiB.
    size_t n = (x >> 8) % 8 == 0 ? (x >> 16) % 4096 : (x >> 16) % 64;
    n = std::min(n, in.size());
    fed = reader.Feed(in.substr(0, n));
    in.remove_prefix(n);
  }
  return Conclude(&reader, &sink, fed);
}

// How much ISA-L inflates before it notices a corrupt deflate stream depends
// on how much input it has in hand (its fast path decodes ahead), so the
// output a parser saw before the fault differs with the chunking: on such
// input either reading may report first the deflate fault or what the parser
// made of the output before it. Both are DATA_LOSS; nothing else may differ.
bool CorruptDeflate(const absl::Status& s) {
  return absl::StartsWith(s.message(), "corrupt gzip data");
}

[[noreturn]] void Differ(const char* what, const Verdict& a, const Verdict& b) {
  fprintf(stderr, "whole and chunked readings differ (%s):\n  whole:   %s\n  chunked: %s\n",
          what, a.status.ToString().c_str(), b.status.ToString().c_str());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  Verdict whole = ReadWhole(in);
  Verdict chunked = ReadInChunks(in);
  if (whole.status.code() != chunked.status.code() ||
      (whole.status.message() != chunked.status.message() &&
       !CorruptDeflate(whole.status) && !CorruptDeflate(chunked.status))) {
    Differ("status", whole, chunked);
  }
  if (whole.status.ok()) {
    if (!(whole.info.meta == chunked.info.meta) ||
        whole.info.checksum != chunked.info.checksum ||
        whole.info.archive_size != chunked.info.archive_size ||
        whole.info.state_sha256 != chunked.info.state_sha256 ||
        whole.state != chunked.state || whole.state != whole.info.state_sha256) {
      Differ("archive info", whole, chunked);
    }
  }
  return 0;
}
