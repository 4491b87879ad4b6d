#include "base/atomic_file.h"

#include <errno.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace snapshot {

absl::StatusOr<AtomicFile> AtomicFile::Create(const std::string& part, int mode, Env* env,
                                              bool exclusive) {
  SA_ASSIGN_OR_RETURN(FileSink sink, FileSink::Create(part, mode, exclusive, env));
  return AtomicFile(std::move(sink), part, env);
}

absl::StatusOr<AtomicFile> AtomicFile::Resume(const std::string& part, Env* env) {
  SA_ASSIGN_OR_RETURN(FileSink sink, FileSink::Append(part, env));
  return AtomicFile(std::move(sink), part, env);
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : sink_(std::move(other.sink_)),
      part_(std::move(other.part_)),
      env_(other.env_),
      done_(std::exchange(other.done_, true)),
      synced_(other.synced_),
      synced_status_(other.synced_status_),
      keep_(other.keep_) {}

AtomicFile::~AtomicFile() {
  if (done_) return;
  if (keep_) {
    if (!synced_) (void)sink_->Close();
    return;
  }
  Discard();
}

void AtomicFile::Discard() {
  if (done_) return;
  done_ = true;
  if (!synced_) (void)sink_->Close();
  env_->Unlink(part_);
}

absl::Status AtomicFile::Write(absl::string_view data) {
  if (done_ || synced_) {
    return absl::FailedPreconditionError(absl::StrCat(part_, " is already closed"));
  }
  return sink_->Write(data);
}

absl::Status AtomicFile::Sync() {
  if (done_ || synced_) {
    return absl::FailedPreconditionError(absl::StrCat(part_, " is already closed"));
  }
  synced_ = true;
  synced_status_ = sink_->SyncAndClose();
  return synced_status_;
}

absl::Status AtomicFile::Commit(const std::string& path) {
  if (done_) return absl::FailedPreconditionError(absl::StrCat(part_, " is already closed"));
  absl::Status s = synced_ ? synced_status_ : Sync();
  done_ = true;
  if (s.ok() && env_->Rename(part_, path) != 0) {
    s = ErrnoStatus(errno, "cannot rename into", path);
  }
  if (!s.ok()) {
    if (!keep_) env_->Unlink(part_);
    return s;
  }
  s = SyncDirectoryOf(path, env_);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("renamed, but ", s.message(),
                                               ": the file may not survive a crash"));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, int mode,
                                 Env* env) {
  const std::string part = absl::StrCat(path, ".part");
  // A part file left by a crash is ours to replace.
  env->Unlink(part);
  SA_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(part, mode, env));
  SA_RETURN_IF_ERROR(f.Write(contents));
  return f.Commit(path);
}

}  // namespace snapshot
