// The agent's snapshot operations, between the archive codec and a RaftNode:
// what the gRPC service and the tools run, without any gRPC in it.
//
//   TakeArchive   snapshot the node and stream the archive to a sink.
//   RestoreSpool  receive an archive chunk by chunk, verify it completely
//                 while spooling state.bin to a private temp file; only a
//                 fully verified archive can then be applied (Apply).
//
// Threading: each object is used by one thread at a time; the RaftNode is
// thread-safe. Errors: as archive/archive.h and engine/node.h; spool file
// problems are RESOURCE_EXHAUSTED (no space) or INTERNAL.
#ifndef SNAPSHOT_AGENT_CORE_SNAPSHOT_OPS_H_
#define SNAPSHOT_AGENT_CORE_SNAPSHOT_OPS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "archive/archive.h"
#include "engine/node.h"

namespace snapshot {

struct TakeOptions {
  SnapshotOptions snapshot;
  WriterOptions writer;
};

// Captures a snapshot (waiting at most until `capture_deadline`), calls
// `on_captured` with it before any archive byte is produced (the gRPC layer
// sends the metadata first; an error from it aborts), then streams the
// archive to `out`. Memory stays fixed whatever the state size.
absl::StatusOr<ArchiveInfo> TakeArchive(
    RaftNode* node, const TakeOptions& options, ByteSink* out,
    absl::Time capture_deadline,
    const std::function<absl::Status(const CapturedSnapshot&)>& on_captured);

class RestoreSpool {
 public:
  // Creates the spool file (mode 0600) in `dir`. The reader refuses, before
  // the state arrives, a state larger than options.max_state_bytes (from the
  // state.bin header) or than the free space in `dir` (from meta.json's
  // Size, which comes first in every archive written by us or Nomad); a disk
  // that fills up anyway is RESOURCE_EXHAUSTED.
  static absl::StatusOr<std::unique_ptr<RestoreSpool>> Create(
      const std::string& dir, ReaderOptions options);
  // Removes the spool file.
  ~RestoreSpool();

  absl::Status Feed(absl::string_view archive_bytes);
  // Ends the archive; returns its metadata once everything is verified.
  absl::StatusOr<ArchiveInfo> Finish();
  // Applies the verified state to the cluster through `node`.
  // FAILED_PRECONDITION unless Finish() succeeded.
  absl::StatusOr<RestoreResult> Apply(RaftNode* node, absl::Time deadline);
  const std::string& path() const { return path_; }

 private:
  RestoreSpool(FileSink sink, ReaderOptions options);
  std::string path_;
  std::unique_ptr<FileSink> sink_;
  std::unique_ptr<ArchiveReader> reader_;
  std::optional<ArchiveInfo> verified_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_SNAPSHOT_OPS_H_
