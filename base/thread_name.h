// SetThreadName: names the calling thread, as `top -H`, `ps -L`, `perf` and
// /proc/PID/task/TID/comm show it, so that an operator (and docs/restore.md's
// per-thread profiles) can tell the agent's threads apart. Linux keeps 15
// characters; longer names are cut. The agent's names start with "sa-".
//
// Threading: names only the calling thread. Errors: none (a name the system
// refuses is left unset).
#ifndef SNAPSHOT_AGENT_BASE_THREAD_NAME_H_
#define SNAPSHOT_AGENT_BASE_THREAD_NAME_H_

#include "absl/strings/string_view.h"

namespace snapshot {

void SetThreadName(absl::string_view name);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_THREAD_NAME_H_
