// Subprocess: the one way the agent starts another program (etcd, etcdctl;
// the tests start agents with it too). argv[0] is looked up on PATH; the
// environment is the agent's with `env` added or replacing; stdout and stderr
// go to a file or are inherited; optionally the child gets a signal when the
// thread that started it ends (PR_SET_PDEATHSIG), so that an agent killed
// with -9 does not leave its etcd running. Without a death signal the child
// is started with posix_spawn, which runs no fork handlers (in a process
// with gRPC threads, fork's handlers stall the parent's connections for
// seconds); with one, with fork and prctl.
//
//   SubprocessOptions o;
//   o.argv = {"etcdctl", "snapshot", "restore", ...};
//   o.env = {"ETCDCTL_API=3"};
//   o.output_path = dir + "/restore.log";
//   SA_RETURN_IF_ERROR(RunToCompletion(o, absl::Now() + absl::Minutes(10)));
//
// Threading: a Subprocess is used by one thread at a time, except Signal(),
// which any thread may call while another waits. Errors: FAILED_PRECONDITION
// when the program cannot be started (not installed, not executable),
// DEADLINE_EXCEEDED when a wait's deadline passes, INTERNAL for a program that
// fails (with the end of its output).
#ifndef SNAPSHOT_AGENT_BASE_SUBPROCESS_H_
#define SNAPSHOT_AGENT_BASE_SUBPROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace snapshot {

struct SubprocessOptions {
  std::vector<std::string> argv;  // argv[0] is searched on PATH
  std::vector<std::string> env;   // "NAME=VALUE": added, replacing the agent's
  std::string output_path;        // stdout and stderr; empty: inherited
  bool append_output = false;     // append to output_path instead of truncating
  int death_signal = 0;           // sent when the starting thread ends; 0: none
};

class Subprocess {
 public:
  static absl::StatusOr<Subprocess> Start(const SubprocessOptions& options);
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&&) = delete;
  // A child still running is killed (SIGKILL) and reaped.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Waits until the child exits (its wait status, as waitpid's) or the
  // deadline passes (DEADLINE_EXCEEDED; the child runs on).
  absl::StatusOr<int> Wait(absl::Time deadline = absl::InfiniteFuture());
  // Sends `sig` to the child if it still runs.
  void Signal(int sig);
  // Hands the child over: its pid, which the caller now reaps (waitpid).
  pid_t Release();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::atomic<bool> exited_{false};
};

// "exit code N" or "signal N" for a wait status.
std::string DescribeExit(int status);

// Runs the program to its end: OK for exit code 0, INTERNAL naming the
// command, how it ended and the last 600 bytes of its output otherwise;
// DEADLINE_EXCEEDED (the child killed) when it runs past `deadline`.
absl::Status RunToCompletion(const SubprocessOptions& options,
                             absl::Time deadline = absl::InfiniteFuture());

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_SUBPROCESS_H_
