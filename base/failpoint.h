// Failpoints for crash tests of multi-step protocols (as etcd's gofail): a
// named point in the code where a test can make the process die or pause.
//
//   SNAPSHOT_AGENT_FAILPOINTS="etcd-restore-stopped=kill,other=sleep:2000"
//
//   kill       the process kills itself with SIGKILL at that point (a crash:
//              nothing is flushed, no destructor runs)
//   sleep:MS   it pauses there for MS milliseconds
//
// The variable is read once, at the first failpoint reached; without it
// every failpoint is a no-op. Failpoints are live only in binaries that link
// the test-only library //base:failpoints_live (which calls
// EnableFailpoints() before main): in the shipped daemon the variable does
// nothing. Threading: thread-safe.
#ifndef SNAPSHOT_AGENT_BASE_FAILPOINT_H_
#define SNAPSHOT_AGENT_BASE_FAILPOINT_H_

#include "absl/strings/string_view.h"

namespace snapshot {

void Failpoint(absl::string_view name);

// Makes failpoints live in this process (//base:failpoints_live only).
void EnableFailpoints();

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_FAILPOINT_H_
