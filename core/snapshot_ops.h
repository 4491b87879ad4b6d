// The agent's snapshot operations, between the archive codec and a RaftNode:
// what the gRPC services run, without any gRPC in it. The policy lives here
// (limits, option ranges, the one-restore-at-a-time rule, the expected
// checksum); the services only translate messages.
//
//   TakeArchive     snapshot the node and stream the archive to a sink.
//   Verifier        verifies an archive under the agent's limits, with the
//                   state checks of its engine (engine/state_check.h).
//   Restorer        receives an archive into a private spool file, verifies
//                   it completely, and only then applies it (RestoreSpool).
//
// Threading: TakeArchive and Restorer::Begin may be called from any thread,
// concurrently; a RestoreSpool or verifier is used by one thread at a time.
// The RaftNode is borrowed and must outlive the Restorer and its spools.
//
// Errors: as archive/archive.h and engine/node.h, plus
//   RESOURCE_EXHAUSTED  a limit of Limits, or no room on the spool disk
//   UNAVAILABLE         another restore is running on this agent (retry later)
//   DATA_LOSS           the archive's checksum is not the one the client
//                       expected
#ifndef SNAPSHOT_AGENT_CORE_SNAPSHOT_OPS_H_
#define SNAPSHOT_AGENT_CORE_SNAPSHOT_OPS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "archive/archive.h"
#include "base/pipeline_sink.h"
#include "core/limits.h"
#include "engine/node.h"

namespace snapshot {

struct TakeOptions {
  SnapshotOptions snapshot;
  // A state over limits.max_state_bytes is refused once captured, before any
  // archive byte: the agent's Verify and Restore would refuse it.
  Limits limits;
  // A gzip level 0 to 9, or fast mode.
  Compression compression = 6;
  // Threads compressing gzip members in parallel (>= 1).
  int compress_threads = 1;
  // State bytes per compressed block (>= 64 KiB): the compressor holds about
  // 4 x compress_threads x block_bytes (archive/parallel_gzip.h).
  size_t block_bytes = 4 << 20;
};

// Checks `options` (INVALID_ARGUMENT), captures a snapshot (waiting at most
// until `capture_deadline`), checks its size against options.limits
// (RESOURCE_EXHAUSTED), calls `on_captured` with it before any archive
// byte is produced (the gRPC layer sends the metadata first; an error from it
// aborts), then streams the archive to `out`. Memory stays fixed whatever the
// state size.
absl::StatusOr<ArchiveInfo> TakeArchive(
    RaftNode* node, const TakeOptions& options, ByteSink* out,
    absl::Time capture_deadline,
    const std::function<absl::Status(const CapturedSnapshot&)>& on_captured);

// Verifies an archive fed in chunks under `limits`, with the state check of
// its engine, and keeps nothing (or passes the state to `state_sink`).
// The reading (inflate, tar, hashes, `state_sink`, `on_meta`) runs on a
// thread of its own (base/pipeline_sink.h), so that Feed returns as soon as
// the bytes are queued and the caller can receive the next ones meanwhile:
// an error shows on a later Feed than the bytes that caused it, or on
// Finish. Threading: Feed and Finish from one thread at a time.
class Verifier {
 public:
  explicit Verifier(const Limits& limits, ByteSink* state_sink = nullptr,
                    std::function<absl::Status(const SnapshotMeta&)> on_meta =
                        nullptr);
  ~Verifier();
  absl::Status Feed(absl::string_view archive_bytes);
  absl::StatusOr<ArchiveInfo> Finish();

 private:
  class Forward;
  class Feeder;
  std::unique_ptr<Forward> forward_;
  std::unique_ptr<ArchiveReader> reader_;
  std::unique_ptr<Feeder> feeder_;
  std::unique_ptr<PipelineSink> pipe_;  // last: stopped before the rest goes
};

// Prefix of spool file names inside the spool directory.
inline constexpr char kSpoolPrefix[] = ".restore-";

struct SpoolCleanup {
  int files = 0;
  uint64_t bytes = 0;
};

// Removes spool files left in `dir` by an agent that was killed during a
// restore: regular files named kSpoolPrefix + 6 characters, nothing else.
// Call at start-up, while holding the directory's lock.
absl::StatusOr<SpoolCleanup> RemoveStaleSpools(const std::string& dir);

class RestoreSpool;

// Restores of one agent. Holds the one-restore-at-a-time rule.
class Restorer {
 public:
  Restorer(RaftNode* node, std::string spool_dir, Limits limits)
      : node_(node), spool_dir_(std::move(spool_dir)), limits_(limits) {}

  // Starts a restore: UNAVAILABLE while another one is running on this
  // agent; the node's error when it is not the leader (checked before
  // anything is received); otherwise a spool that holds the restore slot
  // until it is destroyed. `deadline` bounds these checks and the engine's
  // ForwardState.
  absl::StatusOr<std::unique_ptr<RestoreSpool>> Begin(absl::Time deadline);

 private:
  friend class RestoreSpool;
  RaftNode* node_;
  const std::string spool_dir_;
  const Limits limits_;
  std::atomic<bool> busy_{false};
};

// One restore in progress: the archive is verified as it arrives, and its
// decompressed state (state.bin, not the archive) goes to a private spool
// file (mode 0600) that Apply reads once everything has verified — and, when
// the engine forwards the state while it arrives (RaftNode::ForwardState,
// asked once meta.json is read), to the engine as well; Finish tells it the
// state verified, Apply hands it to the engine's RestoreForwarded, and a
// spool destroyed before that drops it. The reader refuses, before the state arrives, a
// state larger than max_state_bytes (from the state.bin header) or than the
// free space of the spool directory (from meta.json's Size, which comes
// first in every archive written by us or Nomad); a disk that fills up anyway
// is RESOURCE_EXHAUSTED.
class RestoreSpool : public ByteSink {
 public:
  // Removes the spool file and frees the restore slot.
  ~RestoreSpool() override;

  // The checksum ("sha-256=<base64>") the archive must have; may be called
  // at any time before Finish(). Empty: no expectation.
  void ExpectChecksum(std::string checksum) {
    expected_checksum_ = std::move(checksum);
  }
  // The next bytes of the archive.
  absl::Status Write(absl::string_view archive_bytes) override;
  // Ends the archive; returns its metadata once everything is verified,
  // including the expected checksum.
  absl::StatusOr<ArchiveInfo> Finish();
  // FAILED_PRECONDITION unless Finish() succeeded, or when the archive is
  // of another engine than the node's (meta.json "Engine").
  absl::Status CheckEngine() const;
  // Applies the verified state to the cluster; CheckEngine first.
  // `before_commit` as engine/node.h's Restore.
  absl::StatusOr<RestoreResult> Apply(absl::Time deadline,
                                      const BeforeCommit& before_commit = nullptr);
  const std::string& path() const { return path_; }

 private:
  friend class Restorer;
  class StateOut;
  RestoreSpool(Restorer* owner, FileSink sink, absl::Time deadline);

  Restorer* owner_;
  std::string path_;
  std::unique_ptr<FileSink> sink_;
  // Set on the verifier's thread when meta.json is read, before any state
  // byte; read by StateOut there, and after Finish on the caller's.
  std::unique_ptr<StateForward> forward_;
  std::unique_ptr<StateOut> out_;
  std::unique_ptr<Verifier> verifier_;
  std::string expected_checksum_;
  std::optional<ArchiveInfo> verified_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_SNAPSHOT_OPS_H_
