// The project's version, and the git revision of the build when Bazel knew
// it (tools/workspace-status.sh; "unknown" for a build outside a git
// checkout).
#ifndef SNAPSHOT_AGENT_BASE_VERSION_H_
#define SNAPSHOT_AGENT_BASE_VERSION_H_

#include <string>

namespace snapshot {

inline constexpr char kProjectVersion[] = "0.3.0";

// e.g. "3f2a9c01b7de" or "3f2a9c01b7de-dirty"; "unknown" when not known.
const char* BuildRevision();

// "<program> 0.3.0 (git 3f2a9c01b7de)".
std::string VersionLine(const char* program);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_VERSION_H_
