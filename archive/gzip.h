// Gzip stages of the archive codec.
//
// Compressor is the replaceable compression stage of the writer: it receives
// the tar stream and writes standard gzip (RFC 1952) to a ByteSink. The zlib
// implementation writes one member; other encoders (parallel, libdeflate,
// igzip) may write several members, which every gzip reader, ours and Go's,
// accepts.
//
// GzipDecoder is the reader's stage: it accepts compressed bytes in chunks of
// any size, checks each member's header, CRC-32 and length, accepts
// concatenated members, and refuses bytes after the last member that do not
// form a gzip member. It inflates with ISA-L's igzip (about three times
// zlib's speed here); stored deflate blocks pass at memory speed.
//
// Threading: one instance per thread. Ownership: the ByteSink passed in is
// borrowed and must outlive the object. Errors: corruption is DATA_LOSS;
// errors of the downstream sink are returned unchanged.
#ifndef SNAPSHOT_AGENT_ARCHIVE_GZIP_H_
#define SNAPSHOT_AGENT_ARCHIVE_GZIP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/io.h"

struct inflate_state;  // ISA-L

namespace snapshot {

class Compressor {
 public:
  virtual ~Compressor() = default;
  // Compresses `data`; compressed output goes to the sink given at creation
  // whenever internal buffers fill.
  virtual absl::Status Write(absl::string_view data) = 0;
  // Ends the gzip stream: flushes everything and writes the trailer(s).
  // Write() must not be called afterwards.
  virtual absl::Status Finish() = 0;
};

// Creates a compressor writing to `out` (borrowed).
using CompressorFactory =
    std::function<absl::StatusOr<std::unique_ptr<Compressor>>(ByteSink* out)>;

// OK for a gzip level the compressors accept: 0 (store) to 9 (best);
// INVALID_ARGUMENT naming the range otherwise. The one check of the range.
absl::Status CheckCompressionLevel(int level);

// How hard a compressor works: a gzip level, or fast mode (ISA-L igzip level
// 1, for the compressors that offer it: archive/parallel_gzip.h). Fast mode is
// a value of its own, not a level number, so that no out-of-range level can
// mean it.
//
//   Compression c = 6;                    // level 6
//   Compression f = Compression::Fast();
class Compression {
 public:
  // Level `level` (checked by Check(): 0 to 9).
  Compression(int level) : level_(level) {}  // NOLINT: a level is a compression
  static Compression Fast() {
    Compression c(0);
    c.fast_ = true;
    return c;
  }
  bool fast() const { return fast_; }
  // The gzip level; meaningless in fast mode.
  int level() const { return level_; }
  // OK in fast mode or for a level CheckCompressionLevel accepts.
  absl::Status Check() const { return fast_ ? absl::OkStatus() : CheckCompressionLevel(level_); }
  // "fast" or "level N" (logs, messages).
  std::string Name() const;

 private:
  bool fast_ = false;
  int level_;
};

// zlib deflate, one gzip member, header as Go's compress/gzip writes it
// (1f 8b 08 00 00000000 00 ff). `level` is 0 (store) to 9 (best);
// INVALID_ARGUMENT otherwise.
CompressorFactory ZlibGzipCompressor(int level);

class GzipDecoder {
 public:
  // `out` (borrowed) receives the decompressed bytes.
  explicit GzipDecoder(ByteSink* out);
  ~GzipDecoder();
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  // Decompresses `data`. After an error the decoder must not be fed again.
  absl::Status Feed(absl::string_view data);
  // True when the bytes fed so far end exactly at the end of a gzip member.
  bool AtMemberBoundary() const;
  // Complete members seen so far.
  uint64_t members() const { return members_; }
  // Offset of the first byte of the member being read (or the next one).
  uint64_t member_start() const { return member_start_; }

 private:
  enum class State { kStart, kHeader, kBody, kBetweenMembers };
  // Consumes header bytes; OK with *done once the header is complete.
  absl::Status Header(absl::string_view* data, bool* done);
  // Inflates, then checks the trailer.
  absl::Status Body(absl::string_view* data);

  ByteSink* out_;
  std::unique_ptr<inflate_state> inflate_;
  std::unique_ptr<char[]> buf_;
  std::string pending_;  // header bytes seen so far
  State state_ = State::kStart;
  uint64_t consumed_ = 0;
  uint64_t members_ = 0;
  uint64_t member_start_ = 0;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_GZIP_H_
