// Byte source and sink interfaces used by every layer, with file and
// in-memory implementations, and the few file-system helpers the agent and
// the client share (directory lock, directory fsync).
//
// Threading: none of these classes is thread-safe; each instance is used by
// one thread at a time (a FileSink with write-behind runs a thread of its own
// inside, invisible to its user). Errors are absl::Status values; file errors come from
// ErrnoStatus (the path and strerror text in the message, and a payload that
// IsLocalFileError recognises).
#ifndef SNAPSHOT_AGENT_BASE_IO_H_
#define SNAPSHOT_AGENT_BASE_IO_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/env.h"
#include "base/sha256.h"

namespace snapshot {

// ByteSink receives a stream of bytes. Write() either takes all of `data` or
// returns an error; after an error the sink is not written again.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual absl::Status Write(absl::string_view data) = 0;
};

// ByteSource yields a stream of bytes. Read() fills up to `n` bytes of `buf`
// and returns how many it wrote; 0 means end of stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// Reads until `n` bytes are in `buf` or the source ends (sources such as
// pipes return short reads); returns how many bytes were read (< n only at
// the end of the stream), or the source's error.
absl::StatusOr<size_t> ReadFully(ByteSource* src, char* buf, size_t n);

// Copies `src` to its end into `sink` through a buffer of `buffer_bytes`;
// returns the number of bytes copied, or the first error of either side.
absl::StatusOr<uint64_t> CopyAll(ByteSource* src, ByteSink* sink,
                                 size_t buffer_bytes = 1 << 20);

// Discards everything; counts the bytes.
class DiscardSink : public ByteSink {
 public:
  absl::Status Write(absl::string_view data) override {
    bytes_ += data.size();
    return absl::OkStatus();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t bytes_ = 0;
};

// Passes writes on to `next` (borrowed) until `*cancel` (may be null) turns
// true — CANCELLED, "the WHAT was cancelled (the agent is stopping)" — or
// `deadline` passes — DEADLINE_EXCEEDED. For long copies a stopping agent
// must be able to end.
class StoppableSink : public ByteSink {
 public:
  StoppableSink(ByteSink* next, const std::atomic<bool>* cancel, absl::Time deadline,
                absl::string_view what)
      : next_(next), cancel_(cancel), deadline_(deadline), what_(what) {}
  absl::Status Write(absl::string_view data) override;

 private:
  ByteSink* next_;
  const std::atomic<bool>* cancel_;
  absl::Time deadline_;
  std::string what_;
};

// Passes bytes on to `out` (borrowed) while hashing (SHA-256, on a thread of
// its own for long streams) and counting them.
class HashingSink : public ByteSink {
 public:
  explicit HashingSink(ByteSink* out) : out_(out) {}
  absl::Status Write(absl::string_view data) override {
    hash_.Update(data);
    bytes_ += data.size();
    return out_->Write(data);
  }
  uint64_t bytes() const { return bytes_; }
  // The digest of everything written; once.
  Digest Finish() { return hash_.Finish(); }

 private:
  ByteSink* out_;
  AsyncSha256 hash_;
  uint64_t bytes_ = 0;
};

// Appends to a std::string it does not own (which must outlive the sink).
// For tests and small data only: memory grows with the stream.
class StringSink : public ByteSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  absl::Status Write(absl::string_view data) override {
    out_->append(data.data(), data.size());
    return absl::OkStatus();
  }

 private:
  std::string* out_;
};

// Reads from a string_view whose bytes must outlive the source.
class StringSource : public ByteSource {
 public:
  explicit StringSource(absl::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  absl::string_view data_;
};

// Reads a file through a file descriptor it owns.
class FileSource : public ByteSource {
 public:
  // Opens `path` for reading. NOT_FOUND when it does not exist,
  // FAILED_PRECONDITION when it may not be read, INVALID_ARGUMENT for a
  // directory.
  static absl::StatusOr<FileSource> Open(const std::string& path);
  FileSource(FileSource&& other) noexcept;
  FileSource& operator=(FileSource&&) = delete;
  ~FileSource() override;

  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  // Size of the file when opened.
  uint64_t size() const { return size_; }
  // The file's path, as opened.
  const std::string& path() const { return path_; }

 private:
  FileSource(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  int fd_;
  std::string path_;
  uint64_t size_;
};

// Writes a file through a file descriptor it owns. The file is created with
// the given mode (truncating an existing one unless `exclusive`). Every write,
// sync and close goes through `env` (borrowed; the real file system by
// default), so that tests can make them fail.
class FileSink : public ByteSink {
 public:
  static absl::StatusOr<FileSink> Create(const std::string& path, int mode,
                                         bool exclusive, Env* env = Env::Default());
  // Opens `path` for appending, creating it (mode 0600) when missing: a
  // download resumed at the end of what an earlier one left.
  static absl::StatusOr<FileSink> Append(const std::string& path,
                                         Env* env = Env::Default());
  // Creates a new file of mode 0600 named `prefix` + six random characters
  // (mkstemp), e.g. prefix "/var/lib/x/.restore-".
  static absl::StatusOr<FileSink> CreateUnique(const std::string& prefix);
  FileSink(FileSink&& other) noexcept;
  FileSink& operator=(FileSink&&) = delete;
  ~FileSink() override;

  absl::Status Write(absl::string_view data) override;
  // For a file that will be SyncAndClose()d: from now on, every `every`
  // bytes written start their write-back to the disk at once
  // (sync_file_range, without waiting), and a background thread of the sink
  // keeps calling fdatasync while writes go on, so that the final fsync waits
  // for the last stretch only. The fdatasync is what counts: the disk's cache
  // flush costs time in proportion to the bytes written since the last one
  // (measured here: ~0.19 s at the end of a 136 MB file whose write-back had
  // all been started or even waited for, ~0.005 s with the background
  // fdatasync). An error of a background fdatasync is kept and returned by
  // SyncAndClose() (a later fsync would not see it again). Not for temporary
  // files, which need never reach the disk.
  void EnableWriteBehind(uint64_t every = uint64_t{8} << 20);
  // Flushes the data to stable storage (fsync) and closes the file.
  absl::Status SyncAndClose();
  // Closes the file without fsync (for temporary files).
  absl::Status Close();
  const std::string& path() const { return path_; }
  // Bytes in the file: found (Append) and written.
  uint64_t size() const { return written_; }

 private:
  class Syncer;  // the background fdatasync thread of write-behind
  FileSink(int fd, std::string path, Env* env);
  // Stops the syncer (if any); returns the errno of its first failed
  // fdatasync, or 0.
  int StopSyncer();
  int fd_;
  std::string path_;
  Env* env_;
  uint64_t written_ = 0;       // the file's size: bytes written (and found, by Append)
  uint64_t write_behind_ = 0;  // 0: off
  uint64_t kicked_ = 0;        // write-back started up to here
  std::unique_ptr<Syncer> syncer_;
};

// Reads `source` to its end and returns the SHA-256 of its bytes; `bytes`
// (if not null) receives how many there were. Fixed 1 MiB buffer.
absl::StatusOr<Digest> Sha256OfSource(ByteSource* source,
                                      uint64_t* bytes = nullptr);

// Maps errno of a failed file operation on `path` to a status whose code says
// what to do next: NOT_FOUND (ENOENT, ENOTDIR), FAILED_PRECONDITION (EACCES,
// EPERM, EROFS: fix the permissions or the mount first), RESOURCE_EXHAUSTED
// (a full disk or quota, too many open files), ALREADY_EXISTS, INVALID_ARGUMENT
// (EISDIR), otherwise INTERNAL. Never PERMISSION_DENIED or UNAUTHENTICATED:
// the API keeps those for tokens and roles. The status carries a payload that
// marks it as a local file error (IsLocalFileError).
absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view path);

// Reads a whole small file (certificates, token files). INVALID_ARGUMENT when
// it is larger than `max_bytes`; file errors as ErrnoStatus.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          uint64_t max_bytes = 1 << 20);

// Reads a small file that holds a secret (`what` names it in messages, e.g.
// "token file"). FAILED_PRECONDITION when group or others may read or write
// it: the secret may have leaked, the message says to replace it and chmod
// 600. Otherwise as ReadSmallFile.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view what,
                                           uint64_t max_bytes = 1 << 20);

// True for a status made by ErrnoStatus in this process (a file here, not an
// answer from an agent). The payload does not travel over gRPC.
bool IsLocalFileError(const absl::Status& s);

// fsyncs the directory that holds `path` (after a rename into it).
absl::Status SyncDirectoryOf(const std::string& path, Env* env = Env::Default());

// An exclusive lock on a directory, held from Acquire until destruction,
// through flock(2) on the file DIR/LOCK (which records the holder's pid). The
// kernel drops the lock when the process ends, however it ends: a kill -9
// leaves no stale lock behind.
class DirLock {
 public:
  // Creates `dir` (mode 0700) when it does not exist, then locks it.
  // FAILED_PRECONDITION naming the directory and, when known, the pid of the
  // process holding it; file errors as ErrnoStatus.
  static absl::StatusOr<std::unique_ptr<DirLock>> Acquire(
      const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_IO_H_
