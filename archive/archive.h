// The snapshot archive codec: gzip( tar( meta.json, state.bin, SHA256SUMS ) ),
// the format of Nomad's and Consul's snapshot files. docs/archive-format.md
// describes it byte by byte, with what the reader accepts and refuses.
//
// This layer knows nothing of gRPC or Raft.
//
// Memory: both directions use fixed-size buffers; only meta.json and
// SHA256SUMS (both bounded by ReaderOptions) are held whole. state.bin streams.
//
// Threading: an ArchiveReader, like WriteArchive, is used by one thread at a
// time. Each hashes its streams (the state, the compressed bytes) on threads
// of its own (AsyncSha256), so hashing runs beside inflating or compressing;
// they end with the reader or the call. Sources and sinks are borrowed and
// must outlive the call or reader.
//
// Errors (absl::Status):
//   DATA_LOSS           the archive is corrupt, truncated or not a snapshot
//                       archive; the message names what failed and where.
//   RESOURCE_EXHAUSTED  a limit of ReaderOptions was exceeded.
//   INVALID_ARGUMENT    WriteArchive got unusable metadata or options.
//   FAILED_PRECONDITION the state source did not yield exactly meta.size bytes.
//   anything else       passed through unchanged from a source, sink or hook.
#ifndef SNAPSHOT_AGENT_ARCHIVE_ARCHIVE_H_
#define SNAPSHOT_AGENT_ARCHIVE_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "archive/gzip.h"
#include "base/io.h"
#include "archive/meta.h"
#include "base/sha256.h"

namespace snapshot {

// Names of the three entries of an archive.
inline constexpr char kMetaFile[] = "meta.json";
inline constexpr char kStateFile[] = "state.bin";
inline constexpr char kSumsFile[] = "SHA256SUMS";

// What a written or verified archive is.
struct ArchiveInfo {
  SnapshotMeta meta;
  // Compressed bytes of the whole archive.
  uint64_t archive_size = 0;
  // "sha-256=" + base64 of SHA-256 over the compressed bytes.
  std::string checksum;
  Digest meta_sha256{};
  Digest state_sha256{};
};

struct WriterOptions {
  // gzip level 0..9 for the default zlib compressor (Go's default is 6).
  int compression_level = 6;
  // Replaces the default zlib compressor when set.
  CompressorFactory compressor;
  // Modification time written into the tar headers (seconds since the epoch);
  // negative means now.
  int64_t mtime = -1;
};

// Streams the archive of `meta` and the `meta.size` bytes of `state` to `out`,
// computing the SHA-256 of both files and the archive checksum on the way.
// Memory use is fixed whatever the state size. On error, `out` has received a
// prefix of the archive and must be discarded.
absl::StatusOr<ArchiveInfo> WriteArchive(const SnapshotMeta& meta,
                                         ByteSource* state, ByteSink* out,
                                         const WriterOptions& options = {});

struct ReaderOptions {
  // Largest state.bin accepted (checked against the tar header before any
  // state byte is passed on, and again while streaming). The agent's limits
  // are core/limits.h's; the codec's default limits nothing.
  uint64_t max_state_bytes = UINT64_MAX;
  uint64_t max_meta_bytes = 1 << 20;             // 1 MiB
  uint64_t max_sums_bytes = 64 << 10;            // 64 KiB
  // Largest compressed archive accepted.
  uint64_t max_archive_bytes = UINT64_MAX;
  // Called once meta.json has been read and parsed, before its hash is
  // checked (the hashes can only be checked at the end): lets a caller refuse
  // early, e.g. a state too large for the disk. An error aborts the read and
  // is returned unchanged.
  std::function<absl::Status(const SnapshotMeta&)> on_meta;
};

// Reads and verifies an archive fed to it in chunks of any size.
//
//   ArchiveReader reader(&state_sink, options);
//   while (...) SA_RETURN_IF_ERROR(reader.Feed(chunk));
//   SA_ASSIGN_OR_RETURN(ArchiveInfo info, reader.Finish());
//
// state.bin's bytes go to `state_sink` (borrowed; nullptr discards them) as
// they arrive, before they are verified: a caller that keeps them must throw
// them away unless Finish() succeeds. Checked: gzip framing, CRC-32 and length
// of every member, that only gzip members follow the first; tar header
// checksums; exactly the three known entries, no duplicates, nothing after
// the tar end marker; every SHA256SUMS line; meta.json's Size equal to the
// real length of state.bin.
class ArchiveReader {
 public:
  explicit ArchiveReader(ByteSink* state_sink, ReaderOptions options = {});
  ~ArchiveReader();
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  // Consumes the next bytes of the archive. Once it fails, it keeps
  // returning the same error.
  absl::Status Feed(absl::string_view data);
  // Declares the end of the archive and runs the final checks. Returns the
  // archive's metadata, size and checksum when everything holds.
  absl::StatusOr<ArchiveInfo> Finish();

 private:
  class TarParser;
  std::unique_ptr<TarParser> tar_;
  std::unique_ptr<GzipDecoder> gzip_;
  ReaderOptions options_;
  AsyncSha256 archive_hash_;
  uint64_t archive_bytes_ = 0;
  absl::Status error_;
};

// Reads and verifies a whole archive from `source` (convenience over
// ArchiveReader).
absl::StatusOr<ArchiveInfo> ReadArchive(ByteSource* source,
                                        ByteSink* state_sink,
                                        const ReaderOptions& options = {});

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_ARCHIVE_H_
