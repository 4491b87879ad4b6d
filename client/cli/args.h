// snapshotctl's command line: its flags are absl flags (defined in args.cc,
// read with absl::GetFlag(FLAGS_...)), set from argv by ParseCommandLine,
// which keeps snapshotctl's syntax — flags anywhere on the line, before or
// after the command; --name=value or --name value; --name-with-dashes or
// --name_with_underscores; "--" ends the flags — and its exit codes (a bad
// command line is INVALID_ARGUMENT: exit 2), neither of which
// absl::ParseCommandLine offers. Only the flags of args.cc are accepted
// (not absl's own, such as --flagfile).
//
// Threading: call once, at start-up, before any other thread reads a flag.
#ifndef SNAPSHOT_AGENT_CLIENT_CLI_ARGS_H_
#define SNAPSHOT_AGENT_CLIENT_CLI_ARGS_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"

ABSL_DECLARE_FLAG(std::string, address);
ABSL_DECLARE_FLAG(std::string, ca);
ABSL_DECLARE_FLAG(std::string, cert);
ABSL_DECLARE_FLAG(std::string, key);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(bool, yes);
ABSL_DECLARE_FLAG(bool, stale);
ABSL_DECLARE_FLAG(bool, force);
ABSL_DECLARE_FLAG(bool, resume);
ABSL_DECLARE_FLAG(uint32_t, chunk_size);
ABSL_DECLARE_FLAG(std::string, level);
ABSL_DECLARE_FLAG(uint64_t, limit);
ABSL_DECLARE_FLAG(std::string, id);
ABSL_DECLARE_FLAG(bool, latest);
ABSL_DECLARE_FLAG(bool, no_follow);
ABSL_DECLARE_FLAG(std::string, encrypt_to);
ABSL_DECLARE_FLAG(std::string, identity);
ABSL_DECLARE_FLAG(std::string, passphrase_file);

namespace snapshot {
namespace cli {

struct CommandLine {
  // The command first, then its arguments.
  std::vector<std::string> positional;
  bool help = false;     // --help (absl keeps the flag of that name)
  bool version = false;  // --version
  // The flags given on the command line (underscore names), so that a flag
  // can fall back to the environment only when it was not given.
  std::set<std::string> given;

  const std::string& command() const;
  // Exactly `n` arguments after the command.
  bool Arity(size_t n) const { return positional.size() == n + 1; }
};

// Parses argv (without the program name) and sets the flags.
// INVALID_ARGUMENT naming an unknown flag, a missing value or a bad one.
absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv);

// The flag's value when given, else the environment variable's when set and
// not empty, else `dflt`.
std::string FlagOrEnv(const CommandLine& cl, const char* flag, const std::string& value,
                      const char* env, const char* dflt = "");

}  // namespace cli
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CLIENT_CLI_ARGS_H_
