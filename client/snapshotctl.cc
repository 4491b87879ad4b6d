// snapshotctl: the command-line client of snapshot-agent. See kUsage. The
// command line is client/cli/args.h's, the commands client/cli/commands.h's,
// what they print client/cli/output.h's.
#include <iostream>
#include <map>
#include <string>

#include <grpc/support/log.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/version.h"
#include "client/cli/args.h"
#include "client/cli/commands.h"
#include "client/exit_codes.h"

namespace snapshot {
namespace {

constexpr char kUsage[] = R"(snapshotctl: take, verify, restore and inspect Raft snapshots

Usage:
  snapshotctl [GLOBAL FLAGS] COMMAND [ARGS] [FLAGS]
  snapshotctl COMMAND --help        help on one command

Commands:
  save FILE|-     take a consistent snapshot from the agent (its leader)
  verify FILE|-   have the agent check an archive completely, applying nothing
  restore FILE|-  replace the whole cluster's state with an archive's
  restore --id=ID ... with a snapshot of the agent's catalog
  restore --latest ... with the newest one of the agent's cluster
  list            the agent's catalog of stored snapshots
  create          store a snapshot in the agent's catalog now
  fetch ID FILE   download a stored snapshot (--resume continues FILE.part)
  delete ID       delete a stored snapshot
  inspect FILE    check an archive offline, without any agent
  status          the agent's Raft node: role, leader, term, indexes, members
  kv ...          the embedded engine's key-value store: put, get, del, list
  version         this program's version

Sent to a follower's agent, the commands only the leader's agent serves (save
without --stale, restore, list, create, fetch, delete, kv put/del/get) go to
the leader's agent instead, saying so on stderr; --no-follow refuses instead
(exit 6, the message names the leader's agent).

FILE "-" is standard output for save and standard input for verify and
restore, for pipes: snapshotctl save - | aws s3 cp - s3://bucket/backup.snap

Encrypted files (the age format, as `age` writes and reads them): save
--encrypt-to=RECIPIENTS (or --passphrase-file) writes one; inspect, verify and
restore open one with --identity=KEYFILE (or --passphrase-file), e.g. an
ID.snap.age copied from the agent's bucket; fetch --identity decrypts a snapshot
that the agent serves encrypted (it holds no key).

Global flags (anywhere on the line; the environment gives the defaults):
  --address=HOST:PORT    agent address    ($SNAPSHOTCTL_ADDRESS, else 127.0.0.1:7150)
  --ca=FILE              CA certificate (PEM) of the agent: enables TLS
                                          ($SNAPSHOTCTL_CA)
  --cert=FILE --key=FILE client certificate and key for mutual TLS
                                          ($SNAPSHOTCTL_CERT, $SNAPSHOTCTL_KEY)
  --token-file=FILE      file whose first line is the bearer token
                                          ($SNAPSHOTCTL_TOKEN_FILE)
  --no-follow            stay with the agent given even when it is a follower's
  --json                 one JSON object (or array, for kv list) on stdout.
                         Keys and values that are not valid UTF-8 appear as
                         key_base64 / value_base64 (standard base64) instead
                         of key / value, so the output is always valid JSON.

On a terminal, save, verify and restore show a progress line on stderr, cleared
before the result is printed; nothing otherwise.

Exit codes:
%EXIT_CODES%

Errors are one line on stderr: "snapshotctl: COMMAND: what went wrong".
)";

// kUsage with the exit codes of client/exit_codes.h, wrapped at 80 columns.
std::string Usage() {
  std::string codes;
  for (const ExitCodeDoc& d : kExitCodeTable) {
    std::string line = absl::StrFormat("  %-4d", d.code);
    size_t width = line.size();
    for (absl::string_view word : absl::StrSplit(d.meaning, ' ')) {
      if (width + 1 + word.size() > 80) {
        absl::StrAppend(&line, "\n       ");  // under the text
        width = 7;
      } else {
        line += ' ';
        ++width;
      }
      absl::StrAppend(&line, word);
      width += word.size();
    }
    absl::StrAppend(&codes, codes.empty() ? "" : "\n", line);
  }
  return absl::StrReplaceAll(kUsage, {{"%EXIT_CODES%", codes}});
}

const std::map<std::string, std::string>& CommandHelp() {
  static const auto* help = new std::map<std::string, std::string>{
      {"save", R"(snapshotctl save FILE|- [--level=0-9|fast] [--chunk-size=BYTES] [--stale] [--force]
                 [--encrypt-to=RECIPIENTS | --passphrase-file=FILE]

Takes a consistent snapshot from the agent (its leader) into FILE. FILE is
written as FILE.part, checked against the agent's trailer (size and SHA-256),
fsynced, then renamed: FILE appears only when complete. An existing FILE is
kept unless --force. Ctrl-C removes FILE.part and exits 130.

With FILE "-" the archive goes to standard output as it arrives (refused when
standard output is a terminal); the exit code (0, or 3 when the trailer does
not match) says whether what was written is complete and intact.

  --level=N        gzip level 0 (store) to 9; default: the agent's (6)
  --level=fast     ISA-L igzip: several times level 6's speed, about level
                   1's size; standard gzip all the same
  --chunk-size=N   bytes per message, 16384 to 4194304 (default 1 MiB)
  --stale          take a follower's own, possibly lagging, state
  --force          replace an existing FILE
  --encrypt-to=F   encrypt with age to the recipients in F ("age1..." lines,
                   as age -R): `age -d -i KEY FILE | tar xz` opens it, and
                   inspect/verify/restore --identity=KEY read it
  --passphrase-file=F  encrypt with the passphrase on F's first line (mode
                   0600) instead: `age -d FILE` asks for it

The progress line (terminals only) shows the percentage of the state
(meta.json's Size) received, measured by decompressing the stream as it
arrives, since the compressed size is not known in advance.
)"},
      {"verify", R"(snapshotctl verify FILE|- [--identity=KEY | --passphrase-file=F]

Sends the archive (FILE, or standard input for "-") to the agent, which checks
it completely — gzip, tar, every SHA-256, the metadata — without storing or
applying anything. Prints the metadata. An age-encrypted FILE is decrypted
here with --identity (an age identity file, mode 0600) or --passphrase-file;
every chunk is authenticated before it is sent.
)"},
      {"restore", R"(snapshotctl restore FILE|- [--yes] [--identity=KEY | --passphrase-file=F]
snapshotctl restore --id=ID [--yes]
snapshotctl restore --latest [--yes]

Replaces the whole cluster's state with the archive's (FILE, or standard
input for "-", or snapshot ID of the agent's catalog, or with --latest the
newest snapshot the agent lists of its own cluster — local or, with a remote
store, in the bucket: how a lost cluster comes back). The agent receives the
archive into a private file and verifies it completely, including the
checksum computed here while sending, before it applies anything: any failure
changes nothing. Before it applies, the agent stores the current state in its
catalog (a safety snapshot, unless it runs with --no-safety-snapshot) and
prints its id: `snapshotctl restore --id=THAT_ID` undoes the restore. Asks for
confirmation on a terminal; --yes skips the question and is required without
one (and always with "-", whose standard input is the archive). An
age-encrypted FILE is opened as for verify; a truncated or altered one is
refused (exit 3) and nothing is applied.
)"},
      {"list", R"(snapshotctl list

The agent's catalog: every stored snapshot, newest first, with its id,
creation time, origin (scheduled, on-demand, pre-restore), index, term, state
and archive sizes and checksum.
)"},
      {"create", R"(snapshotctl create

Has the agent take a snapshot into its catalog now (an out-of-schedule
backup), verified from the agent's disk before it is listed. Prints its entry.
Leader only.
)"},
      {"fetch", R"(snapshotctl fetch ID FILE [--resume] [--force] [--identity=KEY | --passphrase-file=F]

Downloads stored snapshot ID into FILE, through FILE.part; FILE appears only
when the whole file matches the agent's trailer (size and SHA-256). An
interrupted download leaves FILE.part: --resume continues it from its length
instead of starting over. An existing FILE is kept unless --force.

A snapshot only the bucket holds, encrypted there with age, comes as it is
stored (ID.snap.age) when the agent has no key to open it: FILE is then the
age file, checked against the SHA-256 recorded at upload. With --identity
(or --passphrase-file), snapshotctl decrypts it into the archive and verifies
the archive completely against the checksum the agent lists.
)"},
      {"delete", R"(snapshotctl delete ID

Deletes stored snapshot ID from the agent's catalog. Refused while it is being
fetched or restored.
)"},
      {"inspect", R"(snapshotctl inspect FILE|- [--identity=KEY | --passphrase-file=F]

Checks FILE offline, without any agent: decompresses it, verifies every
SHA-256 in SHA256SUMS, the gzip CRCs, the tar structure and that meta.json's
Size matches state.bin; then prints its metadata (ID, index, term, version,
state size, configuration), the archive size and its checksum ("sha-256=" +
base64 of SHA-256 over the archive's bytes). An age-encrypted FILE (e.g. an
ID.snap.age from the agent's bucket) is decrypted with --identity or
--passphrase-file and every chunk authenticated; the checksum is the
archive's inside it, as the catalog lists it.
)"},
      {"status", R"(snapshotctl status

The agent's Raft node: role, leader (and its agent address), term, commit,
applied and last index, members.
)"},
      {"kv", R"(snapshotctl kv put KEY VALUE | get KEY [--stale] | del KEY | list [PREFIX] [--limit=N] [--stale]

The embedded engine's replicated key-value store. put and del need the admin
role; get and list the read role. --stale reads a follower's own state. list
prints every matching entry (following the agent's pages) or the first N
with --limit=N.
)"},
      {"version", R"(snapshotctl version

Prints this program's version and the git revision it was built from.
)"},
  };
  return *help;
}

int Main(int argc, char** argv) {
  // We report errors ourselves, one line each: keep gRPC's log quiet.
  gpr_set_log_function([](gpr_log_func_args*) {});
  cli::StartSignalWatcher();
  auto args = cli::ParseCommandLine(argc - 1, argv + 1);
  if (!args.ok()) return cli::Fail("snapshotctl", args.status(), kExitUsage);
  const std::string& cmd = args->command();
  if (args->version || cmd == "version") {
    std::cout << VersionLine("snapshotctl") << "\n";
    return kExitOk;
  }
  if (cmd == "help" && args->positional.size() == 2 &&
      CommandHelp().count(args->positional[1])) {
    std::cout << CommandHelp().at(args->positional[1]);
    return kExitOk;
  }
  if (cmd.empty() || cmd == "help") {
    if (cmd.empty() && !args->help) {
      std::cerr << Usage();
      return kExitUsage;
    }
    std::cout << Usage();
    return kExitOk;
  }
  if (args->help) {
    auto it = CommandHelp().find(cmd);
    if (it == CommandHelp().end()) return cli::Usage(cmd, "unknown command (see snapshotctl --help)");
    std::cout << it->second;
    return kExitOk;
  }
  if (cmd == "inspect") return cli::Inspect(*args);
  if (cmd == "save") return cli::Save(*args);
  if (cmd == "verify") return cli::Verify(*args);
  if (cmd == "restore") return cli::Restore(*args);
  if (cmd == "status") return cli::Status(*args);
  if (cmd == "list") return cli::List(*args);
  if (cmd == "create") return cli::Create(*args);
  if (cmd == "fetch") return cli::Fetch(*args);
  if (cmd == "delete") return cli::Delete(*args);
  if (cmd == "kv") return cli::Kv(*args);
  std::cerr << "snapshotctl: unknown command \"" << cmd << "\" (see snapshotctl --help)\n";
  return kExitUsage;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
