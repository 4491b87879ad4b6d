// AtomicFile: a file that appears under its final name only complete and
// durable. Bytes go to a part file, created exclusively; Commit() fsyncs it,
// renames it to the final name and fsyncs the directory. Until Commit
// succeeds, destruction (or any failed step) removes the part file, unless
// KeepPart() was called (a resumable download keeps what arrived).
//
//   SA_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path + ".part"));
//   SA_RETURN_IF_ERROR(f.Write(bytes));
//   SA_RETURN_IF_ERROR(f.Commit(path));  // `path` now holds exactly `bytes`
//
// Errors: file errors as ErrnoStatus (base/io.h). Commit's contract on
// failure: before the rename, the part file is gone and `path` untouched;
// when only the directory's fsync fails after the rename, `path` holds the
// complete file but it may not survive a crash, and the error says so (its
// message starts with "renamed, but").
//
// Threading: one thread at a time. Ownership: the Env is borrowed.
#ifndef SNAPSHOT_AGENT_BASE_ATOMIC_FILE_H_
#define SNAPSHOT_AGENT_BASE_ATOMIC_FILE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/env.h"
#include "base/io.h"

namespace snapshot {

class AtomicFile : public ByteSink {
 public:
  // Creates `part` (mode `mode`), failing with ALREADY_EXISTS if it exists
  // (another writer may be using it); with `exclusive` false, an existing
  // part file is truncated instead.
  static absl::StatusOr<AtomicFile> Create(const std::string& part, int mode = 0600,
                                           Env* env = Env::Default(), bool exclusive = true);
  // Opens `part` to continue it at its end (created when missing).
  static absl::StatusOr<AtomicFile> Resume(const std::string& part, Env* env = Env::Default());
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile() override;

  absl::Status Write(absl::string_view data) override;
  // See FileSink::EnableWriteBehind: for large files written at speed.
  void EnableWriteBehind() { sink_->EnableWriteBehind(); }
  // fsync and close ahead of Commit (which then only renames), so that the
  // part can be read back and checked first, or so that the slow step runs
  // outside the caller's lock. No Write after it.
  absl::Status Sync();
  // fsync (unless Sync() was called), rename to `path` (replacing a file
  // there), fsync of the directory.
  absl::Status Commit(const std::string& path);
  // From now on the part file stays when this object goes without a Commit.
  void KeepPart() { keep_ = true; }
  // Closes and removes the part file now.
  void Discard();

  const std::string& part_path() const { return part_; }
  // Bytes in the part file (those it had when resumed, and those written).
  uint64_t size() const { return sink_->size(); }

 private:
  AtomicFile(FileSink sink, std::string part, Env* env)
      : sink_(std::move(sink)), part_(std::move(part)), env_(env) {}
  std::optional<FileSink> sink_;
  std::string part_;
  Env* env_;
  bool done_ = false;  // committed or discarded
  bool synced_ = false;   // Sync() ran (and closed the file)
  absl::Status synced_status_;  // its outcome
  bool keep_ = false;
};

// Writes `contents` to `path` atomically and durably, through `path`.part.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 int mode = 0600, Env* env = Env::Default());

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_ATOMIC_FILE_H_
