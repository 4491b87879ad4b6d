#include "core/snapshot_ops.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "archive/parallel_gzip.h"
#include "base/status_macros.h"
#include "engine/state_check.h"

namespace snapshot {

absl::StatusOr<ArchiveInfo> TakeArchive(
    RaftNode* node, const TakeOptions& options, ByteSink* out,
    absl::Time capture_deadline,
    const std::function<absl::Status(const CapturedSnapshot&)>& on_captured) {
  SA_RETURN_IF_ERROR(options.compression.Check());
  if (options.block_bytes < (64 << 10)) {
    return absl::InvalidArgumentError("block_bytes must be at least 64 KiB");
  }
  if (options.compress_threads < 1) {
    return absl::InvalidArgumentError("compress_threads must be at least 1");
  }
  SA_ASSIGN_OR_RETURN(CapturedSnapshot snap,
                      node->Snapshot(options.snapshot, capture_deadline));
  SA_RETURN_IF_ERROR(options.limits.CheckState(snap.meta.size));
  if (on_captured) SA_RETURN_IF_ERROR(on_captured(snap));
  WriterOptions writer;
  writer.compressor =
      ParallelGzipCompressor(options.compression, options.compress_threads, options.block_bytes);
  return WriteArchive(snap.meta, snap.state.get(), out, writer);
}

namespace {

ReaderOptions ReaderOptionsFor(const Limits& limits) {
  ReaderOptions ro;
  ro.max_archive_bytes = limits.max_archive_bytes;
  ro.max_state_bytes = limits.max_state_bytes;
  return ro;
}

}  // namespace

// The archive reader as the pipeline's next stage.
class Verifier::Feeder : public ByteSink {
 public:
  explicit Feeder(ArchiveReader* reader) : reader_(reader) {}
  absl::Status Write(absl::string_view data) override { return reader_->Feed(data); }

 private:
  ArchiveReader* reader_;
};

// The state sink of the reader: the engine's check, chosen once meta.json
// (which precedes state.bin) is known.
class Verifier::Forward : public ByteSink {
 public:
  explicit Forward(ByteSink* next) : next_(next) {}
  absl::Status Write(absl::string_view data) override {
    return check_ ? check_->Write(data)
                  : (next_ ? next_->Write(data) : absl::OkStatus());
  }
  void Choose(const SnapshotMeta& meta) { check_ = StateCheck::For(meta, next_); }
  absl::Status Finish() { return check_ ? check_->Finish() : absl::OkStatus(); }

 private:
  ByteSink* next_;
  std::unique_ptr<StateCheck> check_;
};

Verifier::Verifier(const Limits& limits, ByteSink* state_sink,
                   std::function<absl::Status(const SnapshotMeta&)> on_meta)
    : forward_(std::make_unique<Forward>(state_sink)) {
  ReaderOptions options = ReaderOptionsFor(limits);
  options.on_meta = [this, on_meta](const SnapshotMeta& meta) -> absl::Status {
    forward_->Choose(meta);
    return on_meta ? on_meta(meta) : absl::OkStatus();
  };
  reader_ = std::make_unique<ArchiveReader>(forward_.get(), std::move(options));
  feeder_ = std::make_unique<Feeder>(reader_.get());
  pipe_ = std::make_unique<PipelineSink>(feeder_.get());
}

Verifier::~Verifier() = default;

absl::Status Verifier::Feed(absl::string_view archive_bytes) {
  return pipe_->Write(archive_bytes);
}

absl::StatusOr<ArchiveInfo> Verifier::Finish() {
  SA_RETURN_IF_ERROR(pipe_->Flush());
  SA_ASSIGN_OR_RETURN(ArchiveInfo info, reader_->Finish());
  SA_RETURN_IF_ERROR(forward_->Finish());
  return info;
}

absl::StatusOr<SpoolCleanup> RemoveStaleSpools(const std::string& dir) {
  SpoolCleanup done;
  SA_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
  constexpr size_t kPrefixLen = sizeof(kSpoolPrefix) - 1;
  for (absl::string_view name : names) {
    // Exactly our mkstemp pattern: the prefix and six characters.
    if (!absl::StartsWith(name, kSpoolPrefix) ||
        name.size() != kPrefixLen + 6) {
      continue;
    }
    const std::string path = dir + "/" + std::string(name);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (unlink(path.c_str()) != 0) {
      return ErrnoStatus(errno, "cannot remove stale restore spool", path);
    }
    ++done.files;
    done.bytes += static_cast<uint64_t>(st.st_size);
  }
  return done;
}

absl::StatusOr<std::unique_ptr<RestoreSpool>> Restorer::Begin(
    absl::Time deadline) {
  bool expected = false;
  if (!busy_.compare_exchange_strong(expected, true)) {
    return absl::UnavailableError(
        "another restore is running on this agent; retry when it has "
        "finished");
  }
  // From here on, the slot is freed by the spool's destructor or below.
  absl::Status leader = node_->CheckRestore(deadline);
  if (!leader.ok()) {
    busy_ = false;
    return leader;
  }
  absl::StatusOr<FileSink> sink =
      FileSink::CreateUnique(spool_dir_ + "/" + kSpoolPrefix);
  if (!sink.ok()) {
    busy_ = false;
    return sink.status();
  }
  return std::unique_ptr<RestoreSpool>(new RestoreSpool(this, std::move(*sink), deadline));
}

// The state's way out of the verifier: the spool file, and the engine's
// forward once it has one (engine/node.h's StateForward).
class RestoreSpool::StateOut : public ByteSink {
 public:
  explicit StateOut(RestoreSpool* spool) : spool_(spool) {}
  absl::Status Write(absl::string_view data) override {
    SA_RETURN_IF_ERROR(spool_->sink_->Write(data));
    return spool_->forward_ ? spool_->forward_->Write(data) : absl::OkStatus();
  }

 private:
  RestoreSpool* spool_;
};

RestoreSpool::RestoreSpool(Restorer* owner, FileSink sink, absl::Time deadline)
    : owner_(owner),
      path_(sink.path()),
      sink_(std::make_unique<FileSink>(std::move(sink))),
      out_(std::make_unique<StateOut>(this)) {
  // Refuse early what cannot fit on the disk.
  auto room = [dir = owner->spool_dir_](const SnapshotMeta& meta) -> absl::Status {
    struct statvfs vfs;
    if (statvfs(dir.c_str(), &vfs) == 0) {
      uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
      if (meta.size > free_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "the snapshot's state is %d bytes but only %d bytes are free in "
            "%s to receive it",
            meta.size, free_bytes, dir));
      }
    }
    return absl::OkStatus();
  };
  // Then let the engine send the state on as it arrives, if it can.
  auto on_meta = [this, room, deadline](const SnapshotMeta& meta) -> absl::Status {
    SA_RETURN_IF_ERROR(room(meta));
    SA_ASSIGN_OR_RETURN(forward_, owner_->node_->ForwardState(meta, deadline));
    return absl::OkStatus();
  };
  verifier_ = std::make_unique<Verifier>(owner->limits_, out_.get(), on_meta);
}

RestoreSpool::~RestoreSpool() {
  verifier_.reset();
  forward_.reset();  // unless applied: dropped wherever it went
  sink_.reset();
  unlink(path_.c_str());
  owner_->busy_ = false;
}

absl::Status RestoreSpool::Write(absl::string_view archive_bytes) {
  return verifier_->Feed(archive_bytes);
}

absl::StatusOr<ArchiveInfo> RestoreSpool::Finish() {
  SA_ASSIGN_OR_RETURN(ArchiveInfo info, verifier_->Finish());
  SA_RETURN_IF_ERROR(sink_->Close());
  if (!expected_checksum_.empty() && expected_checksum_ != info.checksum) {
    return absl::DataLossError(absl::StrCat(
        "the archive's checksum is ", info.checksum, " but the client expected ",
        expected_checksum_,
        ": it changed on the way; nothing was restored"));
  }
  verified_ = info;
  if (forward_) forward_->Verified(info.state_sha256);
  return info;
}

absl::Status RestoreSpool::CheckEngine() const {
  if (!verified_) {
    return absl::FailedPreconditionError(
        "the archive must be completely received and verified first");
  }
  const std::string& engine = verified_->meta.engine;
  const char* mine = owner_->node_->engine();
  if (!engine.empty() && engine != mine) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this is a snapshot of the ", engine, " engine; this agent runs the ",
        mine, " engine and restores only its own snapshots; nothing changed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RestoreResult> RestoreSpool::Apply(absl::Time deadline,
                                                  const BeforeCommit& before_commit) {
  SA_RETURN_IF_ERROR(CheckEngine());
  std::string path = path_;
  StateOpener open = [path]() -> absl::StatusOr<std::unique_ptr<ByteSource>> {
    SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
    return std::unique_ptr<ByteSource>(new FileSource(std::move(src)));
  };
  return owner_->node_->RestoreForwarded(verified_->meta, open, forward_.get(), deadline,
                                         before_commit);
}

}  // namespace snapshot
