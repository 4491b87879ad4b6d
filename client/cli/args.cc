#include "client/cli/args.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, address, "127.0.0.1:7150", "agent address ($SNAPSHOTCTL_ADDRESS)");
ABSL_FLAG(std::string, ca, "", "CA certificate (PEM) of the agent: enables TLS ($SNAPSHOTCTL_CA)");
ABSL_FLAG(std::string, cert, "", "client certificate for mutual TLS ($SNAPSHOTCTL_CERT)");
ABSL_FLAG(std::string, key, "", "client key for mutual TLS ($SNAPSHOTCTL_KEY)");
ABSL_FLAG(std::string, token_file, "",
          "file whose first line is the bearer token ($SNAPSHOTCTL_TOKEN_FILE)");
ABSL_FLAG(bool, json, false, "one JSON object (or array, for kv list) on stdout");
ABSL_FLAG(bool, yes, false, "restore: do not ask for confirmation");
ABSL_FLAG(bool, stale, false, "save, kv get/list: a follower's own state");
ABSL_FLAG(bool, force, false, "save, fetch: replace an existing FILE");
ABSL_FLAG(bool, resume, false, "fetch: continue FILE.part");
ABSL_FLAG(uint32_t, chunk_size, 0, "save: bytes per message (0: the agent's default)");
ABSL_FLAG(std::string, level, "", "save: gzip level 0 to 9, or fast");
ABSL_FLAG(uint64_t, limit, 0, "kv list: at most this many entries (0: all)");
ABSL_FLAG(std::string, encrypt_to, "",
          "save: encrypt FILE with age to the recipients in this file (age1... lines)");
ABSL_FLAG(std::string, identity, "",
          "inspect, verify, restore: the age identity file (0600) that opens an encrypted FILE");
ABSL_FLAG(std::string, passphrase_file, "",
          "save: encrypt with the passphrase in this file (0600); inspect, verify, restore: "
          "open a passphrase-encrypted FILE");
ABSL_FLAG(bool, no_follow, false,
          "save, restore, list, create, fetch, delete, kv: do not follow a follower's agent to the "
          "leader's");
ABSL_FLAG(bool, latest, false,
          "restore: the newest snapshot the agent lists of its cluster (local or remote)");
ABSL_FLAG(std::string, id, "", "restore: a snapshot of the agent's catalog");

namespace snapshot {
namespace cli {

const std::string& CommandLine::command() const {
  static const std::string* none = new std::string;
  return positional.empty() ? *none : positional[0];
}

absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv) {
  CommandLine cl;
  bool flags_done = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || arg.rfind("--", 0) != 0) {
      cl.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const std::string typed = name;  // for messages: as the user wrote it
    for (char& c : name) {
      if (c == '-') c = '_';
    }
    if (name == "help" || name == "version") {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat("--", typed, " takes no value"));
      }
      (name == "help" ? cl.help : cl.version) = !has_value || value == "true";
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // Only ours: absl registers flags of its own (--flagfile, ...).
    if (flag == nullptr || !absl::EndsWith(flag->Filename(), "client/cli/args.cc")) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", typed));
    }
    if (flag->IsOfType<bool>()) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat("--", typed, " takes no value"));
      }
      if (!has_value) value = "true";
    } else if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", typed, " needs a value"));
      }
      value = argv[++i];
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", typed, "=", value, ": ", error));
    }
    cl.given.insert(name);
  }
  return cl;
}

std::string FlagOrEnv(const CommandLine& cl, const char* flag, const std::string& value,
                      const char* env, const char* dflt) {
  if (cl.given.count(flag)) return value;
  const char* v = getenv(env);
  return v != nullptr && *v != '\0' ? v : dflt;
}

}  // namespace cli
}  // namespace snapshot
