// Env: the one seam between the agent and the file system (as leveldb's Env),
// so that a unit test can make any step fail — a full disk, a short write, an
// fsync error, a crash between a rename and the directory's fsync — without
// starting processes or filling real disks.
//
// The calls are the POSIX ones with POSIX results (-1 and errno on failure),
// so that the code above them (FileSink, AtomicFile, ListDir) keeps its one
// errno-to-status mapping (ErrnoStatus in base/io.h).
//
// Threading: Env::Default() is stateless and thread-safe; a test's Env must
// be thread-safe where the code under test uses threads (FileSink's
// write-behind calls Fdatasync from a thread of its own). Ownership: an Env
// passed to a class is borrowed and must outlive it.
#ifndef SNAPSHOT_AGENT_BASE_ENV_H_
#define SNAPSHOT_AGENT_BASE_ENV_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace snapshot {

class Env {
 public:
  virtual ~Env() = default;
  // The real file system.
  static Env* Default();

  virtual int Open(const std::string& path, int flags, int mode);
  virtual ssize_t Write(int fd, const char* data, size_t n);
  virtual int Fsync(int fd);
  virtual int Fdatasync(int fd);
  virtual int Close(int fd);
  virtual int Rename(const std::string& from, const std::string& to);
  virtual int Unlink(const std::string& path);
  // fsync of a directory (after a rename into it or an unlink from it).
  virtual int SyncDir(const std::string& dir);
};

// The names in `dir` (without "." and ".."), unsorted. Errors as ErrnoStatus
// (NOT_FOUND for a missing directory).
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir);

// The directory part of `path` ("." for a bare name, "/" for "/x").
std::string DirName(const std::string& path);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_ENV_H_
