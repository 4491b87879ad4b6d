// Exit codes of snapshotctl, one per kind of failure a script may want to
// tell apart. kExitCodeTable is the one description of them: `snapshotctl
// --help` prints it and client/exit_codes_test checks README.md's table
// against it.
#ifndef SNAPSHOT_AGENT_CLIENT_EXIT_CODES_H_
#define SNAPSHOT_AGENT_CLIENT_EXIT_CODES_H_

#include "absl/status/status.h"
#include "base/io.h"
#include "client/client.h"

namespace snapshot {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,          // any other failure
  kExitUsage = 2,          // bad command line
  kExitCorrupt = 3,        // the archive is corrupt or not an archive
  kExitUnreachable = 4,    // agent unreachable or timed out (retry later)
  kExitDenied = 5,         // missing/wrong token or role
  kExitPrecondition = 6,   // wrong node or state (e.g. not the leader)
  kExitLimit = 7,          // a size or rate limit was exceeded
  kExitLocalFile = 8,      // a local file could not be read or written
  kExitTls = 9,            // the TLS handshake with the agent failed
  kExitNotFound = 10,      // no such snapshot (an unknown id)
  kExitInterrupted = 130,  // interrupted (SIGINT/SIGTERM), as shells do
};

struct ExitCodeDoc {
  int code;
  const char* meaning;
};
inline constexpr ExitCodeDoc kExitCodeTable[] = {
    {kExitOk, "success"},
    {kExitError, "other error"},
    {kExitUsage, "usage error (unknown command or flag, missing argument, no confirmation)"},
    {kExitCorrupt, "the archive is corrupt, truncated or not a snapshot archive"},
    {kExitUnreachable,
     "the agent is unavailable: unreachable, busy (another restore running), no leader, or did "
     "not answer in time (retry later)"},
    {kExitDenied, "authentication or permission denied (your token or role)"},
    {kExitPrecondition,
     "wrong node or state (e.g. the node is not the leader: the message names it; or the agent's "
     "own credentials for etcd, a peer or the bucket were refused)"},
    {kExitLimit, "a limit was exceeded (size, rate, concurrent streams)"},
    {kExitLocalFile, "a local file could not be read or written, or FILE already exists"},
    {kExitTls, "the TLS handshake with the agent failed (certificate, CA, TLS vs plaintext)"},
    {kExitNotFound, "no such snapshot: the id is not in the agent's catalog or its bucket"},
    {kExitInterrupted, "interrupted (Ctrl-C); save removes its FILE.part"},
};

// The exit code for a failed operation, chosen by its status code.
// Local file errors (base/io.h) and TLS failures are recognised before the
// code: a local EACCES is not a denied token, a full local disk not an agent
// limit.
inline int ExitCodeFor(const absl::Status& s) {
  if (IsLocalFileError(s)) return kExitLocalFile;
  if (IsTlsError(s)) return kExitTls;
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kDataLoss:
      return kExitCorrupt;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnreachable;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitDenied;
    case absl::StatusCode::kFailedPrecondition:
      return kExitPrecondition;
    case absl::StatusCode::kResourceExhausted:
      return kExitLimit;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kAlreadyExists:  // FILE already exists
      return kExitLocalFile;
    default:
      return kExitError;
  }
}

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CLIENT_EXIT_CODES_H_
