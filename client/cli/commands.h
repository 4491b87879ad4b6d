// snapshotctl's commands, each `int NAME(const CommandLine&)` returning the
// process's exit code (client/exit_codes.h) after printing its result
// (client/cli/output.h) or one error line on stderr.
//
// Ctrl-C (SIGINT, SIGTERM) is taken by one watcher thread
// (StartSignalWatcher), which cancels the running call so that a save
// removes its FILE.part; the command then exits 130.
#ifndef SNAPSHOT_AGENT_CLIENT_CLI_COMMANDS_H_
#define SNAPSHOT_AGENT_CLIENT_CLI_COMMANDS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/cli/args.h"

namespace snapshot {
namespace cli {

void StartSignalWatcher();

// "snapshotctl: COMMAND: message" on stderr; returns `code`.
int Fail(absl::string_view command, const absl::Status& s, int code);
// The exit code the status calls for (130 once interrupted).
int Fail(absl::string_view command, const absl::Status& s);
// A bad command line: exit 2.
int Usage(absl::string_view command, absl::string_view why);

int Inspect(const CommandLine& a);
int Save(const CommandLine& a);
int Verify(const CommandLine& a);
int Restore(const CommandLine& a);
int List(const CommandLine& a);
int Create(const CommandLine& a);
int Fetch(const CommandLine& a);
int Delete(const CommandLine& a);
int Status(const CommandLine& a);
int Kv(const CommandLine& a);

}  // namespace cli
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CLIENT_CLI_COMMANDS_H_
