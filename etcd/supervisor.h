// Supervisor: runs the etcd member as a child of the agent (supervised mode,
// --etcd-exec), so that a restore can stop it, replace its data directory
// and start it again.
//
//   - etcd's stdout and stderr are the agent's (its logs pass through);
//   - if etcd exits while it should run, it is started again after a backoff
//     (1 s, doubling up to 30 s; reset after a minute of running);
//   - Stop() sends SIGTERM, then SIGKILL after the grace period, and keeps
//     it stopped until Resume();
//   - if the agent dies, even by SIGKILL, the kernel sends etcd SIGTERM
//     (PR_SET_PDEATHSIG), so no orphan etcd holds the data directory.
//
// Threading: all methods are thread-safe. One monitor thread per supervisor.
#ifndef SNAPSHOT_AGENT_ETCD_SUPERVISOR_H_
#define SNAPSHOT_AGENT_ETCD_SUPERVISOR_H_

#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace snapshot {

// The etcd command line of --etcd-exec, and what a restore needs from it.
struct EtcdCommand {
  std::vector<std::string> argv;
  std::string name;                         // --name
  std::string data_dir;                     // --data-dir
  std::string initial_cluster;              // --initial-cluster
  std::string initial_cluster_token;        // --initial-cluster-token
  std::string initial_advertise_peer_urls;  // --initial-advertise-peer-urls
};

// Splits a command line into words (single and double quotes, backslash
// escapes; no other shell syntax) and reads etcd's flags from it (as
// --flag=value or --flag value). INVALID_ARGUMENT when --name, --data-dir,
// --initial-cluster or --initial-advertise-peer-urls is missing: a restore
// rebuilds the member's data with them.
absl::StatusOr<EtcdCommand> ParseEtcdCommand(absl::string_view command_line);

// The agents of the members (--etcd-agents): `agents` as given; when none
// were given and the --initial-cluster of `command` names only this member,
// this member's agent is `own_address` (a one-member cluster needs no list).
std::map<std::string, std::string> AgentsOrSelf(const std::map<std::string, std::string>& agents,
                                                const EtcdCommand& command,
                                                const std::string& own_address);

class Supervisor {
 public:
  // Starts supervising; etcd is started at once when `run` is set (a
  // restore recovering at start-up may need it to stay stopped).
  Supervisor(EtcdCommand command, bool run);
  // Stops etcd (grace 30 s) and the monitor.
  ~Supervisor();

  // Stops etcd and keeps it stopped. OK once it has exited.
  absl::Status Stop(absl::Duration grace);
  // Starts etcd again (if stopped) and keeps it running.
  void Resume();

  const EtcdCommand& command() const { return command_; }
  // The running child's pid, or -1.
  pid_t pid() const;

 private:
  void Monitor();

  const EtcdCommand command_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool want_running_;   // guarded by mu_
  bool shutdown_ = false;
  pid_t pid_ = -1;      // guarded by mu_
  std::thread monitor_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_SUPERVISOR_H_
