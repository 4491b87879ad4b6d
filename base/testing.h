// Test helpers every package may use: temporary directories, loopback
// ports, reading a source whole. For tests only.
#ifndef SNAPSHOT_AGENT_BASE_TESTING_H_
#define SNAPSHOT_AGENT_BASE_TESTING_H_

#include <string>

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

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_TESTING_H_
