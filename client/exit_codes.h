// Exit codes of snapshotctl, one per kind of failure a script may want to
// tell apart. Documented in `snapshotctl --help` and docs.
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
  kExitInterrupted = 130,  // interrupted (SIGINT/SIGTERM), as shells do
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
    default:
      return kExitError;
  }
}

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CLIENT_EXIT_CODES_H_
