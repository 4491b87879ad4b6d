// snapshotctl: the command-line client of snapshot-agent. See kUsage.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpc/support/log.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "archive/archive.h"
#include "base/io.h"
#include "base/utf8.h"
#include "base/version.h"
#include "client/client.h"
#include "client/exit_codes.h"
#include "engine/state_check.h"

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
  list            the agent's catalog of stored snapshots
  create          store a snapshot in the agent's catalog now
  fetch ID FILE   download a stored snapshot (--resume continues FILE.part)
  delete ID       delete a stored snapshot
  inspect FILE    check an archive offline, without any agent
  status          the agent's Raft node: role, leader, term, indexes, members
  kv ...          the embedded engine's key-value store: put, get, del, list
  version         this program's version

FILE "-" is standard output for save and standard input for verify and
restore, for pipes: snapshotctl save - | aws s3 cp - s3://bucket/backup.snap

Global flags (anywhere on the line; the environment gives the defaults):
  --address=HOST:PORT    agent address    ($SNAPSHOTCTL_ADDRESS, else 127.0.0.1:7150)
  --ca=FILE              CA certificate (PEM) of the agent: enables TLS
                                          ($SNAPSHOTCTL_CA)
  --cert=FILE --key=FILE client certificate and key for mutual TLS
                                          ($SNAPSHOTCTL_CERT, $SNAPSHOTCTL_KEY)
  --token-file=FILE      file whose first line is the bearer token
                                          ($SNAPSHOTCTL_TOKEN_FILE)
  --json                 one JSON object (or array, for kv list) on stdout.
                         Keys and values that are not valid UTF-8 appear as
                         key_base64 / value_base64 (standard base64) instead
                         of key / value, so the output is always valid JSON.

On a terminal, save, verify and restore show a progress line on stderr, cleared
before the result is printed; nothing otherwise.

Exit codes:
  0    success
  1    other error
  2    usage error (unknown command or flag, missing argument, no confirmation)
  3    the archive is corrupt, truncated or not a snapshot archive
  4    the agent is unavailable: unreachable, busy (another restore running),
       no leader, or did not answer in time (retry later)
  5    authentication or permission denied (token, role)
  6    wrong node or state (e.g. the node is not the leader: the message names it)
  7    a limit was exceeded (size, rate, concurrent streams)
  8    a local file could not be read or written, or FILE already exists
  9    the TLS handshake with the agent failed (certificate, CA, TLS vs plaintext)
  130  interrupted (Ctrl-C); save removes its FILE.part

Errors are one line on stderr: "snapshotctl: COMMAND: what went wrong".
)";

const std::map<std::string, std::string>& CommandHelp() {
  static const auto* help = new std::map<std::string, std::string>{
      {"save", R"(snapshotctl save FILE|- [--level=0-9|fast] [--chunk-size=BYTES] [--stale] [--force]

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

The progress line (terminals only) shows the percentage of the state
(meta.json's Size) received, measured by decompressing the stream as it
arrives, since the compressed size is not known in advance.
)"},
      {"verify", R"(snapshotctl verify FILE|-

Sends the archive (FILE, or standard input for "-") to the agent, which checks
it completely — gzip, tar, every SHA-256, the metadata — without storing or
applying anything. Prints the metadata.
)"},
      {"restore", R"(snapshotctl restore FILE|- [--yes]
snapshotctl restore --id=ID [--yes]

Replaces the whole cluster's state with the archive's (FILE, or standard
input for "-", or snapshot ID of the agent's catalog). The agent receives the
archive into a private file and verifies it completely, including the
checksum computed here while sending, before it applies anything: any failure
changes nothing. Before it applies, the agent stores the current state in its
catalog (a safety snapshot, unless it runs with --no-safety-snapshot) and
prints its id: `snapshotctl restore --id=THAT_ID` undoes the restore. Asks for
confirmation on a terminal; --yes skips the question and is required without
one (and always with "-", whose standard input is the archive).
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
      {"fetch", R"(snapshotctl fetch ID FILE [--resume] [--force]

Downloads stored snapshot ID into FILE, through FILE.part; FILE appears only
when the whole file matches the agent's trailer (size and SHA-256). An
interrupted download leaves FILE.part: --resume continues it from its length
instead of starting over. An existing FILE is kept unless --force.
)"},
      {"delete", R"(snapshotctl delete ID

Deletes stored snapshot ID from the agent's catalog. Refused while it is being
fetched or restored.
)"},
      {"inspect", R"(snapshotctl inspect FILE

Checks FILE offline, without any agent: decompresses it, verifies every
SHA-256 in SHA256SUMS, the gzip CRCs, the tar structure and that meta.json's
Size matches state.bin; then prints its metadata (ID, index, term, version,
state size, configuration), the archive size and its checksum ("sha-256=" +
base64 of SHA-256 over the file's bytes).
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

// Parsed command line: positional arguments (the command first) and
// --flags (--name=value, --name value for flags that take a value, or
// --name for booleans), in any order; "--" ends the flags.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool Bool(const std::string& f) const {
    auto it = flags.find(f);
    return it != flags.end() && it->second == "true";
  }
  std::string Str(const std::string& f, const std::string& dflt = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? dflt : it->second;
  }
};

const std::vector<std::string> kBoolFlags = {"json", "yes", "stale", "force",
                                             "help", "version", "resume"};
const std::vector<std::string> kValueFlags = {
    "address", "ca", "cert", "key", "token-file", "chunk-size", "level", "limit", "id"};

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  auto known = [](const std::vector<std::string>& v, const std::string& f) {
    return std::find(v.begin(), v.end(), f) != v.end();
  };
  bool flags_done = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || arg.rfind("--", 0) != 0) {
      a.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    std::string name = arg.substr(2), value;
    size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    if (known(kBoolFlags, name)) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      a.flags[name] = has_value ? value : "true";
    } else if (known(kValueFlags, name)) {
      if (!has_value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        value = argv[++i];
      }
      a.flags[name] = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
  }
  return a;
}

// --- Ctrl-C -----------------------------------------------------------------

// SIGINT/SIGTERM are blocked in every thread and taken by one watcher thread,
// which cancels the running call (so that Save removes its FILE.part) and
// lets the command end with exit code 130.
std::mutex g_signal_mu;
SnapshotClient* g_client = nullptr;  // guarded by g_signal_mu
std::atomic<bool> g_interrupted{false};

void StartSignalWatcher() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::lock_guard<std::mutex> l(g_signal_mu);
    g_interrupted = true;
    if (g_client != nullptr) {
      g_client->CancelAll();  // the command reports and exits 130
    } else {
      fprintf(stderr, "snapshotctl: interrupted\n");
      _exit(kExitInterrupted);
    }
  }).detach();
}

// Registers the client with the watcher while it lives.
class Interruptible {
 public:
  explicit Interruptible(SnapshotClient* c) {
    std::lock_guard<std::mutex> l(g_signal_mu);
    g_client = c;
  }
  ~Interruptible() {
    std::lock_guard<std::mutex> l(g_signal_mu);
    g_client = nullptr;
  }
};

// --- Output -----------------------------------------------------------------

const char* SuffrageName(int64_t s) {
  switch (s) {
    case 0:
      return "voter";
    case 1:
      return "nonvoter";
    case 2:
      return "staging";
    default:
      return "unknown";
  }
}

using Json = nlohmann::ordered_json;

// Sets j[name] to `bytes` when they are valid UTF-8, otherwise
// j[name + "_base64"] to their base64.
void PutBytes(Json& j, const std::string& name, const std::string& bytes) {
  if (IsValidUtf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name + "_base64"] = absl::Base64Escape(bytes);
  }
}

void PrintJson(const Json& j) {
  // replace: never throw on a string that slipped through invalid.
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
}

// Metadata as printed by every command, whether it comes from a local file
// (inspect) or from the agent (save, verify, restore).
struct Shown {
  std::string id;
  uint64_t index = 0, term = 0, size = 0, configuration_index = 0;
  int64_t version = 0;
  std::vector<Server> servers;
  uint64_t archive_size = 0;
  std::string checksum, state_sha256;
  std::string engine;
  EtcdSnapshotInfo etcd;
};

Shown FromLocal(const ArchiveInfo& info) {
  Shown s;
  s.id = info.meta.id;
  s.index = info.meta.index;
  s.term = info.meta.term;
  s.size = info.meta.size;
  s.configuration_index = info.meta.configuration_index;
  s.version = info.meta.version;
  s.servers = info.meta.servers;
  s.archive_size = info.archive_size;
  s.checksum = info.checksum;
  s.state_sha256 = HexLower(info.state_sha256);
  s.engine = info.meta.engine;
  s.etcd = info.meta.etcd;
  return s;
}

Shown FromProto(const v1::SnapshotMetadata& m, uint64_t archive_size,
                const std::string& checksum) {
  Shown s;
  s.id = m.id();
  s.index = m.index();
  s.term = m.term();
  s.size = m.state_size();
  s.configuration_index = m.configuration_index();
  s.version = m.version();
  for (const auto& ps : m.servers()) s.servers.push_back({ps.suffrage(), ps.id(), ps.address()});
  s.archive_size = archive_size;
  s.checksum = checksum;
  s.engine = m.engine();
  s.etcd.cluster_id = m.etcd().cluster_id();
  s.etcd.member_id = m.etcd().member_id();
  s.etcd.member_name = m.etcd().member_name();
  s.etcd.leader = m.etcd().leader();
  s.etcd.revision = m.etcd().revision();
  s.etcd.version = m.etcd().version();
  return s;
}

Json ToJson(const Shown& s) {
  Json j;
  PutBytes(j, "id", s.id);
  j["index"] = s.index;
  j["term"] = s.term;
  j["version"] = s.version;
  j["size"] = s.size;
  j["configuration_index"] = s.configuration_index;
  j["servers"] = Json::array();
  for (const Server& srv : s.servers) {
    Json js;
    PutBytes(js, "id", srv.id);
    PutBytes(js, "address", srv.address);
    js["suffrage"] = SuffrageName(srv.suffrage);
    j["servers"].push_back(js);
  }
  j["archive_size"] = s.archive_size;
  j["checksum"] = s.checksum;
  if (!s.state_sha256.empty()) j["state_sha256"] = s.state_sha256;
  if (!s.engine.empty()) j["engine"] = s.engine;
  if (s.engine == kEngineEtcd) {
    j["etcd"] = {{"cluster_id", s.etcd.cluster_id},
                 {"member_id", s.etcd.member_id},
                 {"member_name", s.etcd.member_name},
                 {"leader", s.etcd.leader},
                 {"revision", s.etcd.revision},
                 {"version", s.etcd.version}};
  }
  return j;
}

void PrintShown(const Shown& s) {
  absl::PrintF("Archive size:        %d bytes\n", s.archive_size);
  absl::PrintF("Checksum:            %s\n", s.checksum);
  absl::PrintF("ID:                  %s\n", s.id);
  absl::PrintF("Index:               %d\n", s.index);
  absl::PrintF("Term:                %d\n", s.term);
  absl::PrintF("Version:             %d\n", s.version);
  absl::PrintF("State size:          %d bytes\n", s.size);
  if (!s.state_sha256.empty()) {
    absl::PrintF("State SHA-256:       %s\n", s.state_sha256);
  }
  if (!s.engine.empty()) absl::PrintF("Engine:              %s\n", s.engine);
  if (s.engine == kEngineEtcd) {
    absl::PrintF("etcd cluster:        %s\n", s.etcd.cluster_id);
    absl::PrintF("etcd member:         %s (%s)%s, etcd %s\n", s.etcd.member_name,
                 s.etcd.member_id, s.etcd.leader ? ", leader" : "", s.etcd.version);
    absl::PrintF("etcd revision:       %d\n", s.etcd.revision);
  }
  absl::PrintF("Configuration index: %d\n", s.configuration_index);
  if (s.servers.empty()) absl::PrintF("Servers:             (none)\n");
  for (size_t i = 0; i < s.servers.size(); ++i) {
    absl::PrintF("%s%s at %s (%s)\n",
                 i == 0 ? "Servers:             " : "                     ",
                 s.servers[i].id, s.servers[i].address,
                 SuffrageName(s.servers[i].suffrage));
  }
}

int Fail(absl::string_view command, const absl::Status& s, int code) {
  std::cerr << "snapshotctl: " << command << ": " << s.message() << "\n";
  return code;
}

int Fail(absl::string_view command, const absl::Status& s) {
  if (g_interrupted) {
    return Fail(command, absl::CancelledError("interrupted"), kExitInterrupted);
  }
  return Fail(command, s, ExitCodeFor(s));
}

int Usage(absl::string_view command, absl::string_view why) {
  return Fail(command, absl::InvalidArgumentError(why), kExitUsage);
}

// A progress line on stderr, only on a terminal, at most 10 times a second.
// Finish() (or the destructor) clears it, before the result is printed.
class Progress {
 public:
  Progress(const char* verb, const char* of)
      : verb_(verb), of_(of), tty_(isatty(STDERR_FILENO)) {}
  ~Progress() { Finish(); }
  ProgressFn Fn() {
    if (!tty_) return nullptr;
    return [this](uint64_t done, uint64_t total) { Show(done, total); };
  }
  void Finish() {
    if (shown_) fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  void Show(uint64_t done, uint64_t total) {
    absl::Time now = absl::Now();
    if (now - last_ < absl::Milliseconds(100) && done != total) return;
    last_ = now;
    double secs = absl::ToDoubleSeconds(now - start_);
    double rate = secs > 0 ? done / secs : 0;
    std::string line = absl::StrFormat("%s %.1f MiB  %.1f MB/s", verb_,
                                       done / 1048576.0, rate / 1e6);
    if (total > 0) {
      absl::StrAppendFormat(&line, "  %d%% of %s",
                            static_cast<int>(100.0 * done / total), of_);
      if (rate > 0 && done < total) {
        absl::StrAppendFormat(&line, "  ETA %ds",
                              static_cast<int>((total - done) / rate + 0.5));
      }
    }
    fprintf(stderr, "\r\033[K%s", line.c_str());
    shown_ = true;
  }
  const char* verb_;
  const char* of_;
  bool tty_;
  bool shown_ = false;
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
};

// --- Connection -------------------------------------------------------------

std::string FlagOrEnv(const Args& a, const char* flag, const char* env,
                      const char* dflt = "") {
  if (a.flags.count(flag)) return a.Str(flag);
  const char* v = getenv(env);
  return v != nullptr && *v != '\0' ? v : dflt;
}

absl::StatusOr<ClientOptions> ConnectionOptions(const Args& a) {
  ClientOptions o;
  o.address = FlagOrEnv(a, "address", "SNAPSHOTCTL_ADDRESS", "127.0.0.1:7150");
  o.ca_file = FlagOrEnv(a, "ca", "SNAPSHOTCTL_CA");
  o.cert_file = FlagOrEnv(a, "cert", "SNAPSHOTCTL_CERT");
  o.key_file = FlagOrEnv(a, "key", "SNAPSHOTCTL_KEY");
  std::string token_file = FlagOrEnv(a, "token-file", "SNAPSHOTCTL_TOKEN_FILE");
  if (!token_file.empty()) {
    absl::StatusOr<std::string> text = ReadSmallFile(token_file, 64 << 10);
    if (!text.ok()) return text.status();
    absl::string_view first = *text;
    first = first.substr(0, first.find('\n'));
    o.token = std::string(absl::StripAsciiWhitespace(first));
    if (o.token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("token file ", token_file, " is empty"));
    }
  }
  return o;
}

absl::StatusOr<std::unique_ptr<SnapshotClient>> Dial(const Args& a) {
  auto o = ConnectionOptions(a);
  if (!o.ok()) return o.status();
  return SnapshotClient::Connect(*o);
}

// Checks the command's positional arguments: exactly `n` after the command.
bool Arity(const Args& a, size_t n) { return a.positional.size() == n + 1; }

// Standard input or a file, as an archive source.
struct Input {
  std::unique_ptr<ByteSource> source;
  uint64_t size = 0;  // 0: unknown (a pipe)
};

absl::StatusOr<Input> OpenInput(const std::string& file) {
  Input in;
  if (file == "-") {
    if (isatty(STDIN_FILENO)) {
      return absl::InvalidArgumentError(
          "standard input is a terminal; pipe an archive into it");
    }
    absl::StatusOr<FileSource> src = FileSource::Open("/dev/stdin");
    if (!src.ok()) return src.status();
    in.source = std::make_unique<FileSource>(std::move(*src));
    return in;
  }
  absl::StatusOr<FileSource> src = FileSource::Open(file);
  if (!src.ok()) return src.status();
  in.size = src->size();
  in.source = std::make_unique<FileSource>(std::move(*src));
  return in;
}

// Writes to standard output.
class StdoutSink : public ByteSink {
 public:
  absl::Status Write(absl::string_view data) override {
    while (!data.empty()) {
      ssize_t n = write(STDOUT_FILENO, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "cannot write to", "standard output");
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
};

// --- Commands ---------------------------------------------------------------

int Inspect(const Args& a) {
  if (!Arity(a, 1)) return Usage("inspect", "expects exactly one FILE");
  const std::string& file = a.positional[1];
  auto src = FileSource::Open(file);
  if (!src.ok()) return Fail("inspect", src.status());
  // The engine's own check of state.bin (etcd: its database hash), chosen
  // once meta.json, which comes first, says which engine it is.
  std::unique_ptr<StateCheck> check;
  struct Forward : ByteSink {
    std::unique_ptr<StateCheck>* check;
    absl::Status Write(absl::string_view d) override {
      return *check ? (*check)->Write(d) : absl::OkStatus();
    }
  } forward;
  forward.check = &check;
  ReaderOptions ro;
  ro.on_meta = [&check](const SnapshotMeta& m) {
    check = StateCheck::For(m, nullptr);
    return absl::OkStatus();
  };
  auto info = ReadArchive(&*src, &forward, ro);
  if (info.ok() && check) {
    absl::Status checked = check->Finish();
    if (!checked.ok()) info = checked;
  }
  if (!info.ok()) {
    return Fail("inspect", absl::Status(info.status().code(),
                                        absl::StrCat(file, ": ", info.status().message())));
  }
  Shown s = FromLocal(*info);
  if (a.Bool("json")) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    PrintJson(j);
  } else {
    absl::PrintF("File:                %s\n", file);
    PrintShown(s);
  }
  return kExitOk;
}

int Save(const Args& a) {
  if (!Arity(a, 1)) return Usage("save", "expects exactly one FILE (or - for standard output)");
  const std::string& file = a.positional[1];
  const bool to_stdout = file == "-";
  SaveOptions so;
  so.allow_stale = a.Bool("stale");
  so.overwrite = a.Bool("force");
  if (!a.Str("chunk-size").empty() && !absl::SimpleAtoi(a.Str("chunk-size"), &so.chunk_size)) {
    return Usage("save", "--chunk-size must be a number of bytes");
  }
  if (a.Str("level") == "fast") {
    so.fast = true;
  } else if (!a.Str("level").empty()) {
    int level;
    if (!absl::SimpleAtoi(a.Str("level"), &level)) {
      return Usage("save", "--level must be 0 to 9 or fast");
    }
    so.compression_level = level;
  }
  if (to_stdout) {
    if (isatty(STDOUT_FILENO)) {
      return Usage("save", "standard output is a terminal; redirect it or pipe it");
    }
  } else {
    if (!so.overwrite && access(file.c_str(), F_OK) == 0) {
      return Fail("save", absl::AlreadyExistsError(absl::StrCat(
                              file, " already exists; remove it, choose another name or pass --force")),
                  kExitLocalFile);
    }
    // Can we write next to FILE at all? Say so before asking the agent.
    auto probe = FileSink::Create(file + ".part", 0600, false);
    if (!probe.ok()) return Fail("save", probe.status());
    unlink((file + ".part").c_str());
  }
  auto client = Dial(a);
  if (!client.ok()) return Fail("save", client.status());
  Interruptible interruptible(client->get());
  Progress progress("saving", "the state");
  StdoutSink out;
  auto saved = to_stdout ? (*client)->SaveTo(&out, so, progress.Fn())
                         : (*client)->Save(file, so, progress.Fn());
  progress.Finish();
  if (!saved.ok()) {
    if (g_interrupted) {
      return Fail("save", absl::CancelledError(
                              to_stdout ? "interrupted; what was written to standard output is incomplete"
                                        : absl::StrCat("interrupted; removed ", file, ".part, nothing was saved")),
                  kExitInterrupted);
    }
    return Fail("save", saved.status());
  }
  Shown s = FromProto(saved->metadata, saved->archive_size, saved->checksum);
  if (a.Bool("json")) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    j["stale"] = saved->metadata.stale();
    // With "-", stdout carries the archive: the result goes to stderr.
    if (to_stdout) {
      std::cerr << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    } else {
      PrintJson(j);
    }
  } else {
    std::string line = absl::StrFormat(
        "Saved %s: index %d, term %d, %d bytes of state in %d bytes of archive, %s%s\n",
        to_stdout ? "to standard output" : file, s.index, s.term, s.size,
        s.archive_size, s.checksum,
        saved->metadata.stale() ? " (stale: from a follower)" : "");
    (to_stdout ? std::cerr : std::cout) << line;
  }
  return kExitOk;
}

int Verify(const Args& a) {
  if (!Arity(a, 1)) return Usage("verify", "expects exactly one FILE (or - for standard input)");
  const std::string& file = a.positional[1];
  auto in = OpenInput(file);
  if (!in.ok()) return Fail("verify", in.status());
  auto client = Dial(a);
  if (!client.ok()) return Fail("verify", client.status());
  Interruptible interruptible(client->get());
  Progress progress("verifying", "the archive");
  auto r = (*client)->Verify(in->source.get(), in->size, progress.Fn());
  progress.Finish();
  if (!r.ok()) {
    return Fail("verify", absl::Status(r.status().code(),
                                       absl::StrCat(file, ": ", r.status().message())));
  }
  Shown s = FromProto(r->metadata(), r->archive_size(), r->checksum());
  s.state_sha256 = r->state_sha256();
  if (a.Bool("json")) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    j["valid"] = true;
    PrintJson(j);
  } else {
    absl::PrintF("%s is a valid snapshot archive\n", file == "-" ? "standard input" : file);
    PrintShown(s);
  }
  return kExitOk;
}

int Restore(const Args& a) {
  const std::string id = a.Str("id");
  if (!id.empty() && !Arity(a, 0)) return Usage("restore", "takes either FILE or --id=ID");
  if (id.empty() && !Arity(a, 1)) {
    return Usage("restore", "expects exactly one FILE (or - for standard input), or --id=ID");
  }
  const std::string file = id.empty() ? a.positional[1] : "snapshot " + id;
  absl::StatusOr<Input> in = id.empty() ? OpenInput(file) : absl::StatusOr<Input>(Input());
  if (!in.ok()) return Fail("restore", in.status());
  auto opts = ConnectionOptions(a);
  if (!opts.ok()) return Fail("restore", opts.status());
  if (!a.Bool("yes")) {
    if (file == "-" || !isatty(STDIN_FILENO)) {
      return Usage("restore", file == "-"
                                  ? "a restore replaces all of the cluster's data; pass --yes to "
                                    "confirm (standard input carries the archive, so there is no "
                                    "way to ask)"
                                  : "a restore replaces all of the cluster's data; pass --yes to "
                                    "confirm (there is no terminal to ask on)");
    }
    fprintf(stderr, "Replace ALL data of the cluster at %s with %s? [y/N] ",
            opts->address.c_str(), file.c_str());
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      return Fail("restore", absl::CancelledError("not confirmed; nothing was changed"), kExitUsage);
    }
  }
  auto client = SnapshotClient::Connect(*opts);
  if (!client.ok()) return Fail("restore", client.status());
  Interruptible interruptible(client->get());
  Progress progress("restoring", "the archive");
  auto r = id.empty() ? (*client)->Restore(in->source.get(), in->size, progress.Fn())
                      : (*client)->RestoreStored(id);
  progress.Finish();
  if (!r.ok()) {
    if (g_interrupted) {
      return Fail("restore", absl::CancelledError(
                                 "interrupted; an archive not yet fully sent is never applied, but one "
                                 "already sent may still be applied by the agent: check with "
                                 "snapshotctl status before retrying"),
                  kExitInterrupted);
    }
    return Fail("restore", absl::Status(r.status().code(),
                                        absl::StrCat(file, ": ", r.status().message())));
  }
  Shown s = FromProto(r->metadata(), r->archive_size(), r->checksum());
  if (a.Bool("json")) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    j["restored_index"] = r->restored_index();
    j["safety_snapshot_id"] = r->safety_snapshot_id();
    PrintJson(j);
  } else {
    absl::PrintF("Restored %s (snapshot index %d, term %d, %d bytes of state); in effect from log index %d\n",
                 file == "-" ? "standard input" : file, s.index, s.term, s.size,
                 r->restored_index());
    if (!r->safety_snapshot_id().empty()) {
      absl::PrintF("The state before the restore is stored as %s; to undo: snapshotctl restore --id=%s\n",
                   r->safety_snapshot_id(), r->safety_snapshot_id());
    }
  }
  return kExitOk;
}

Json EntryJson(const v1::CatalogEntry& e) {
  Json j;
  j["id"] = e.id();
  j["created"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(e.created_unix_ms()),
                                  absl::UTCTimeZone());
  j["origin"] = e.origin();
  j["index"] = e.metadata().index();
  j["term"] = e.metadata().term();
  j["state_size"] = e.metadata().state_size();
  j["archive_size"] = e.archive_size();
  j["checksum"] = e.checksum();
  j["state_sha256"] = e.state_sha256();
  j["engine"] = e.metadata().engine();
  return j;
}

void PrintEntry(const v1::CatalogEntry& e) {
  absl::PrintF("%s  %s  %-11s index %d, term %d, %d bytes of state, %d of archive, %s\n",
               e.id(),
               absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(e.created_unix_ms()),
                                absl::UTCTimeZone()),
               e.origin(), e.metadata().index(), e.metadata().term(),
               e.metadata().state_size(), e.archive_size(), e.checksum());
}

int List(const Args& a) {
  if (!Arity(a, 0)) return Usage("list", "takes no arguments");
  auto client = Dial(a);
  if (!client.ok()) return Fail("list", client.status());
  auto l = (*client)->ListSnapshots();
  if (!l.ok()) return Fail("list", l.status());
  if (a.Bool("json")) {
    Json j;
    j["snapshots"] = Json::array();
    for (const auto& e : l->snapshots()) j["snapshots"].push_back(EntryJson(e));
    j["total_bytes"] = l->total_bytes();
    PrintJson(j);
    return kExitOk;
  }
  for (const auto& e : l->snapshots()) PrintEntry(e);
  absl::PrintF("%d snapshots, %d bytes\n", l->snapshots_size(), l->total_bytes());
  return kExitOk;
}

int Create(const Args& a) {
  if (!Arity(a, 0)) return Usage("create", "takes no arguments");
  auto client = Dial(a);
  if (!client.ok()) return Fail("create", client.status());
  Interruptible interruptible(client->get());
  auto e = (*client)->CreateSnapshot();
  if (!e.ok()) return Fail("create", e.status());
  if (a.Bool("json")) {
    PrintJson(EntryJson(*e));
  } else {
    PrintEntry(*e);
  }
  return kExitOk;
}

int Fetch(const Args& a) {
  if (!Arity(a, 2)) return Usage("fetch", "expects ID FILE");
  const std::string& id = a.positional[1];
  const std::string& file = a.positional[2];
  auto client = Dial(a);
  if (!client.ok()) return Fail("fetch", client.status());
  Interruptible interruptible(client->get());
  Progress progress("fetching", "the archive");
  auto e = (*client)->Fetch(id, file, a.Bool("resume"), a.Bool("force"), progress.Fn());
  progress.Finish();
  if (!e.ok()) {
    if (g_interrupted) {
      return Fail("fetch", absl::CancelledError(absl::StrCat(
                               "interrupted; ", file, ".part keeps what arrived: rerun with --resume")),
                  kExitInterrupted);
    }
    return Fail("fetch", e.status());
  }
  if (a.Bool("json")) {
    Json j = EntryJson(*e);
    PutBytes(j, "file", file);
    PrintJson(j);
  } else {
    absl::PrintF("Fetched %s into %s (%d bytes, %s)\n", e->id(), file, e->archive_size(),
                 e->checksum());
  }
  return kExitOk;
}

int Delete(const Args& a) {
  if (!Arity(a, 1)) return Usage("delete", "expects exactly one ID");
  auto client = Dial(a);
  if (!client.ok()) return Fail("delete", client.status());
  absl::Status s = (*client)->DeleteSnapshot(a.positional[1]);
  if (!s.ok()) return Fail("delete", s);
  if (a.Bool("json")) {
    Json j;
    j["deleted"] = a.positional[1];
    PrintJson(j);
  } else {
    absl::PrintF("Deleted %s\n", a.positional[1]);
  }
  return kExitOk;
}

int Status(const Args& a) {
  if (!Arity(a, 0)) return Usage("status", "takes no arguments");
  auto client = Dial(a);
  if (!client.ok()) return Fail("status", client.status());
  auto st = (*client)->Status();
  if (!st.ok()) return Fail("status", st.status());
  if (a.Bool("json")) {
    Json j;
    j["node_id"] = st->node_id();
    j["raft_address"] = st->raft_address();
    j["role"] = st->role();
    j["leader_id"] = st->leader_id();
    j["leader_agent_address"] = st->leader_agent_address();
    j["leader_raft_address"] = st->leader_raft_address();
    j["term"] = st->term();
    j["commit_index"] = st->commit_index();
    j["applied_index"] = st->applied_index();
    j["last_index"] = st->last_index();
    j["members"] = Json::array();
    for (const auto& m : st->members()) {
      j["members"].push_back({{"id", m.id()},
                              {"raft_address", m.raft_address()},
                              {"agent_address", m.agent_address()},
                              {"voter", m.voter()}});
    }
    PrintJson(j);
    return kExitOk;
  }
  absl::PrintF("Node:          %d (%s) at %s\n", st->node_id(), st->role(), st->raft_address());
  if (st->leader_id() == 0) {
    absl::PrintF("Leader:        none known\n");
  } else {
    absl::PrintF("Leader:        %d (agent %s, raft %s)\n", st->leader_id(),
                 st->leader_agent_address().empty() ? "?" : st->leader_agent_address(),
                 st->leader_raft_address());
  }
  absl::PrintF("Term:          %d\n", st->term());
  absl::PrintF("Commit index:  %d\n", st->commit_index());
  absl::PrintF("Applied index: %d\n", st->applied_index());
  absl::PrintF("Last index:    %d\n", st->last_index());
  for (int i = 0; i < st->members_size(); ++i) {
    const auto& m = st->members(i);
    absl::PrintF("%s%d raft %s%s%s\n", i == 0 ? "Members:       " : "               ",
                 m.id(), m.raft_address(),
                 m.agent_address().empty() ? "" : absl::StrCat(" agent ", m.agent_address()),
                 m.voter() ? "" : " (non-voter)");
  }
  return kExitOk;
}

int Kv(const Args& a) {
  const std::string cmd = "kv";
  const std::string op = a.positional.size() > 1 ? a.positional[1] : "";
  const size_t n = a.positional.size() < 2 ? 0 : a.positional.size() - 2;
  bool ok_arity = (op == "put" && n == 2) || (op == "get" && n == 1) ||
                  (op == "del" && n == 1) || (op == "list" && n <= 1);
  if (!ok_arity) {
    return Usage(cmd, "usage: kv put KEY VALUE | get KEY | del KEY | list [PREFIX]");
  }
  uint64_t limit = 0;
  if (!a.Str("limit").empty() && !absl::SimpleAtoi(a.Str("limit"), &limit)) {
    return Usage(cmd, "--limit must be a number");
  }
  auto client = Dial(a);
  if (!client.ok()) return Fail(cmd, client.status());
  const bool json = a.Bool("json");
  const std::string key = n >= 1 ? a.positional[2] : "";
  if (op == "put" || op == "del") {
    auto idx = op == "put" ? (*client)->Put(key, a.positional[3]) : (*client)->Delete(key);
    if (!idx.ok()) return Fail(cmd, idx.status());
    if (json) {
      Json j;
      PutBytes(j, "key", key);
      j["index"] = *idx;
      PrintJson(j);
    }
    return kExitOk;
  }
  if (op == "get") {
    auto v = (*client)->Get(key, a.Bool("stale"));
    if (!v.ok()) return Fail(cmd, v.status());
    if (json) {
      Json j;
      PutBytes(j, "key", key);
      j["found"] = v->has_value();
      if (v->has_value()) PutBytes(j, "value", **v);
      PrintJson(j);
      return kExitOk;
    }
    if (!v->has_value()) {
      return Fail(cmd, absl::NotFoundError(absl::StrCat("no key \"", key, "\"")), kExitError);
    }
    std::cout << **v << "\n";
    return kExitOk;
  }
  // list: entries are printed as the pages arrive (memory: one page).
  bool first = true;
  if (json) std::cout << "[";
  absl::Status s = (*client)->List(
      key, limit, a.Bool("stale"), [&](const std::string& k, const std::string& v) {
        if (json) {
          Json j;
          PutBytes(j, "key", k);
          PutBytes(j, "value", v);
          std::cout << (first ? "" : ",")
                    << j.dump(-1, ' ', false, Json::error_handler_t::replace);
        } else {
          std::cout << k << "\t" << v << "\n";
        }
        first = false;
        return true;
      });
  if (json) std::cout << "]\n";
  if (!s.ok()) return Fail(cmd, s);
  return kExitOk;
}

int Main(int argc, char** argv) {
  // We report errors ourselves, one line each: keep gRPC's log quiet.
  gpr_set_log_function([](gpr_log_func_args*) {});
  StartSignalWatcher();
  auto args = ParseArgs(argc - 1, argv + 1);
  if (!args.ok()) return Fail("snapshotctl", args.status(), kExitUsage);
  const std::string cmd = args->positional.empty() ? "" : args->positional[0];
  if (args->Bool("version") || cmd == "version") {
    std::cout << VersionLine("snapshotctl") << "\n";
    return kExitOk;
  }
  if (cmd == "help" && args->positional.size() == 2 &&
      CommandHelp().count(args->positional[1])) {
    std::cout << CommandHelp().at(args->positional[1]);
    return kExitOk;
  }
  if (cmd.empty() || cmd == "help") {
    if (cmd.empty() && !args->Bool("help")) {
      std::cerr << kUsage;
      return kExitUsage;
    }
    std::cout << kUsage;
    return kExitOk;
  }
  if (args->Bool("help")) {
    auto it = CommandHelp().find(cmd);
    if (it == CommandHelp().end()) return Usage(cmd, "unknown command (see snapshotctl --help)");
    std::cout << it->second;
    return kExitOk;
  }
  if (cmd == "inspect") return Inspect(*args);
  if (cmd == "save") return Save(*args);
  if (cmd == "verify") return Verify(*args);
  if (cmd == "restore") return Restore(*args);
  if (cmd == "status") return Status(*args);
  if (cmd == "list") return List(*args);
  if (cmd == "create") return Create(*args);
  if (cmd == "fetch") return Fetch(*args);
  if (cmd == "delete") return Delete(*args);
  if (cmd == "kv") return Kv(*args);
  std::cerr << "snapshotctl: unknown command \"" << cmd << "\" (see snapshotctl --help)\n";
  return kExitUsage;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
