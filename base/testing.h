// Test helpers every package may use: temporary directories, loopback
// ports, reading a source whole. For tests only.
#ifndef SNAPSHOT_AGENT_BASE_TESTING_H_
#define SNAPSHOT_AGENT_BASE_TESTING_H_

#include <atomic>
#include <mutex>
#include <string>

#include "base/env.h"
#include "base/io.h"

namespace snapshot {
namespace testing {

// A fresh directory under $TEST_TMPDIR (or /tmp), removed with its contents
// when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago, from below the
// kernel's ephemeral range, never the same twice in one process. Where a
// test can, it binds port 0 instead (the agent's gRPC port); Raft addresses
// must be known before the nodes start, hence this.
int FreePort();

// Everything a source yields, in memory (small test data only).
std::string ReadAll(ByteSource* src);

// The real file system with faults on request: each knob makes the named
// call fail with its errno (0: no fault). Thread-safe.
class FaultEnv : public Env {
 public:
  // Writes fail with ENOSPC once this many bytes were written (a full disk).
  std::atomic<uint64_t> disk_bytes{UINT64_MAX};
  // Each write takes at most this many bytes (short writes).
  std::atomic<size_t> max_write{SIZE_MAX};
  std::atomic<int> fsync_errno{0};
  std::atomic<int> fdatasync_errno{0};
  std::atomic<int> rename_errno{0};
  // The directory fsync after a rename fails: the rename happened, but a
  // crash now could undo it.
  std::atomic<int> syncdir_errno{0};
  std::atomic<int> fdatasync_calls{0};
  // The byte at this offset of everything written is stored flipped (a disk
  // that keeps other bytes than it was given).
  std::atomic<uint64_t> flip_at{UINT64_MAX};

  ssize_t Write(int fd, const char* data, size_t n) override;
  int Fsync(int fd) override;
  int Fdatasync(int fd) override;
  int Rename(const std::string& from, const std::string& to) override;
  int SyncDir(const std::string& dir) override;

 private:
  std::atomic<uint64_t> written_{0};
};

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_TESTING_H_
