#include "core/snapshot_ops.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace snapshot {

absl::StatusOr<ArchiveInfo> TakeArchive(
    RaftNode* node, const TakeOptions& options, ByteSink* out,
    absl::Time capture_deadline,
    const std::function<absl::Status(const CapturedSnapshot&)>& on_captured) {
  SA_ASSIGN_OR_RETURN(CapturedSnapshot snap,
                   node->Snapshot(options.snapshot, capture_deadline));
  if (on_captured) SA_RETURN_IF_ERROR(on_captured(snap));
  return WriteArchive(snap.meta, snap.state.get(), out, options.writer);
}

RestoreSpool::RestoreSpool(FileSink sink, ReaderOptions options)
    : path_(sink.path()), sink_(std::make_unique<FileSink>(std::move(sink))) {
  reader_ = std::make_unique<ArchiveReader>(sink_.get(), std::move(options));
}

absl::StatusOr<std::unique_ptr<RestoreSpool>> RestoreSpool::Create(
    const std::string& dir, ReaderOptions options) {
  SA_ASSIGN_OR_RETURN(FileSink sink, FileSink::CreateUnique(dir + "/.restore-"));
  // Refuse early what cannot fit on the disk.
  auto previous = options.on_meta;
  options.on_meta = [dir, previous](const SnapshotMeta& meta) -> absl::Status {
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
    return previous ? previous(meta) : absl::OkStatus();
  };
  return std::unique_ptr<RestoreSpool>(
      new RestoreSpool(std::move(sink), std::move(options)));
}

RestoreSpool::~RestoreSpool() {
  reader_.reset();
  sink_.reset();
  unlink(path_.c_str());
}

absl::Status RestoreSpool::Feed(absl::string_view archive_bytes) {
  return reader_->Feed(archive_bytes);
}

absl::StatusOr<ArchiveInfo> RestoreSpool::Finish() {
  SA_ASSIGN_OR_RETURN(ArchiveInfo info, reader_->Finish());
  SA_RETURN_IF_ERROR(sink_->Close());
  verified_ = info;
  return info;
}

absl::StatusOr<RestoreResult> RestoreSpool::Apply(RaftNode* node,
                                                  absl::Time deadline) {
  if (!verified_) {
    return absl::FailedPreconditionError(
        "the archive must be completely received and verified first");
  }
  std::string path = path_;
  StateOpener open = [path]() -> absl::StatusOr<std::unique_ptr<ByteSource>> {
    SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
    return std::unique_ptr<ByteSource>(new FileSource(std::move(src)));
  };
  return node->Restore(verified_->meta, open, deadline);
}

}  // namespace snapshot
