// snapshotctl: the command-line client of snapshot-agent. See kUsage.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "archive/archive.h"
#include "client/client.h"
#include "client/exit_codes.h"

namespace snapshot {
namespace {

constexpr char kUsage[] = R"(snapshotctl: take, verify, restore and inspect Raft snapshots

Usage:
  snapshotctl save FILE      [--chunk-size=BYTES] [--level=0-9] [--stale] [--force]
  snapshotctl verify FILE
  snapshotctl restore FILE   [--yes]
  snapshotctl inspect FILE
  snapshotctl status
  snapshotctl kv put KEY VALUE | get KEY [--stale] | del KEY | list [PREFIX] [--limit=N] [--stale]
  snapshotctl help

Commands:
  save FILE      Take a consistent snapshot from the agent (its leader) into FILE.
                 Written as FILE.part, checked against the agent's trailer (size
                 and checksum), fsynced, then renamed: FILE appears only when
                 complete. An existing FILE is kept unless --force. --stale takes
                 a follower's own (possibly lagging) state.
  verify FILE    Send FILE to the agent, which checks it completely (gzip, tar,
                 every SHA-256, metadata) without applying anything.
  restore FILE   Replace the whole cluster's state with FILE's. The agent
                 receives and verifies the archive completely before applying
                 it; any failure changes nothing. Asks for confirmation on a
                 terminal; --yes skips the question (required without a
                 terminal).
  inspect FILE   Check FILE offline, without any agent: decompress it, verify
                 every SHA-256 in SHA256SUMS, the gzip CRC, the tar structure and
                 that meta.json's Size matches state.bin; then print its metadata
                 (ID, index, term, version, state size, configuration), the
                 archive size and its checksum ("sha-256=" + base64 of SHA-256
                 over the file's bytes).
  status         The agent's Raft node: role, leader, term, indexes, members.
  kv ...         The embedded engine's key-value store (put/del need the admin
                 role; get/list read; --stale reads a follower's own state).

Connection flags (all commands but inspect):
  --address=HOST:PORT   agent address (default $SNAPSHOTCTL_ADDRESS or 127.0.0.1:7150)
  --ca=FILE             CA certificate (PEM) of the agent: enables TLS
  --cert=FILE --key=FILE  client certificate and key for mutual TLS
  --token-file=FILE     file whose first line is the bearer token

Output:
  --json      one JSON object (or array, for kv list) on stdout, for scripts.
              inspect/verify/save print at least index, term, size (state
              bytes), archive_size and checksum.
  On a terminal, save/verify/restore show a progress line on stderr (bytes,
  rate, and percent and ETA when the size is known); nothing otherwise.

Exit codes:
  0  success
  1  other error
  2  usage error (unknown command or flag, missing argument, no confirmation)
  3  the archive is corrupt, truncated or not a snapshot archive
  4  the agent is unreachable or did not answer in time (retry later)
  5  authentication or permission denied
  6  wrong node or state (e.g. the node is not the leader: the message names it)
  7  a size limit was exceeded
  8  a local file could not be read or written, or FILE already exists

Errors are one line on stderr: "snapshotctl: COMMAND: what went wrong".
)";

// Parsed command line: positional arguments and --flags (--name=value,
// --name value for flags that take a value, or --name for booleans).
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

const std::vector<std::string> kBoolFlags = {"json", "yes", "stale", "force"};
const std::vector<std::string> kValueFlags = {
    "address", "ca", "cert", "key", "token-file", "chunk-size", "level", "limit"};

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  auto known = [](const std::vector<std::string>& v, const std::string& f) {
    return std::find(v.begin(), v.end(), f) != v.end();
  };
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      a.positional.push_back(arg);
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

// Metadata as printed by every command, whether it comes from a local file
// (inspect) or from the agent (save, verify, restore).
struct Shown {
  std::string id;
  uint64_t index = 0, term = 0, size = 0, configuration_index = 0;
  int64_t version = 0;
  std::vector<Server> servers;
  uint64_t archive_size = 0;
  std::string checksum, state_sha256;
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
  return s;
}

nlohmann::ordered_json ToJson(const Shown& s) {
  nlohmann::ordered_json j;
  j["id"] = s.id;
  j["index"] = s.index;
  j["term"] = s.term;
  j["version"] = s.version;
  j["size"] = s.size;
  j["configuration_index"] = s.configuration_index;
  j["servers"] = nlohmann::ordered_json::array();
  for (const Server& srv : s.servers) {
    j["servers"].push_back({{"id", srv.id},
                            {"address", srv.address},
                            {"suffrage", SuffrageName(srv.suffrage)}});
  }
  j["archive_size"] = s.archive_size;
  j["checksum"] = s.checksum;
  if (!s.state_sha256.empty()) j["state_sha256"] = s.state_sha256;
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
  return Fail(command, s, ExitCodeFor(s));
}

// A progress line on stderr, only on a terminal, at most 10 times a second.
class Progress {
 public:
  explicit Progress(const char* verb) : verb_(verb), tty_(isatty(STDERR_FILENO)) {}
  ~Progress() { Clear(); }
  ProgressFn Fn() {
    if (!tty_) return nullptr;
    return [this](uint64_t done, uint64_t total) { Show(done, total); };
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
      absl::StrAppendFormat(&line, "  %d%%", static_cast<int>(100.0 * done / total));
      if (rate > 0 && done < total) {
        absl::StrAppendFormat(&line, "  ETA %ds",
                              static_cast<int>((total - done) / rate + 0.5));
      }
    }
    fprintf(stderr, "\r\033[K%s", line.c_str());
    shown_ = true;
  }
  void Clear() {
    if (shown_) fprintf(stderr, "\r\033[K");
  }
  const char* verb_;
  bool tty_;
  bool shown_ = false;
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
};

absl::StatusOr<ClientOptions> ConnectionOptions(const Args& a) {
  ClientOptions o;
  const char* env = getenv("SNAPSHOTCTL_ADDRESS");
  o.address = a.Str("address", env && *env ? env : "127.0.0.1:7150");
  o.ca_file = a.Str("ca");
  o.cert_file = a.Str("cert");
  o.key_file = a.Str("key");
  std::string token_file = a.Str("token-file");
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file ", token_file));
    std::string line;
    std::getline(in, line);
    o.token = std::string(absl::StripAsciiWhitespace(line));
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
bool Arity(const Args& a, size_t n) { return a.positional.size() == n; }

int Inspect(const Args& a) {
  if (!Arity(a, 1)) {
    return Fail("inspect", absl::InvalidArgumentError("expects exactly one FILE"), kExitUsage);
  }
  const std::string& file = a.positional[0];
  auto src = FileSource::Open(file);
  if (!src.ok()) return Fail("inspect", src.status(), kExitLocalFile);
  auto info = ReadArchive(&*src, /*state_sink=*/nullptr);
  if (!info.ok()) {
    return Fail("inspect", absl::Status(info.status().code(),
                                        absl::StrCat(file, ": ", info.status().message())));
  }
  Shown s = FromLocal(*info);
  if (a.Bool("json")) {
    nlohmann::ordered_json j = ToJson(s);
    j["file"] = file;
    std::cout << j.dump() << "\n";
  } else {
    absl::PrintF("File:                %s\n", file);
    PrintShown(s);
  }
  return kExitOk;
}

int Save(const Args& a) {
  if (!Arity(a, 1)) {
    return Fail("save", absl::InvalidArgumentError("expects exactly one FILE"), kExitUsage);
  }
  const std::string& file = a.positional[0];
  SaveOptions so;
  so.allow_stale = a.Bool("stale");
  so.overwrite = a.Bool("force");
  if (!a.Str("chunk-size").empty() && !absl::SimpleAtoi(a.Str("chunk-size"), &so.chunk_size)) {
    return Fail("save", absl::InvalidArgumentError("--chunk-size must be a number of bytes"), kExitUsage);
  }
  if (!a.Str("level").empty()) {
    int level;
    if (!absl::SimpleAtoi(a.Str("level"), &level)) {
      return Fail("save", absl::InvalidArgumentError("--level must be 0 to 9"), kExitUsage);
    }
    so.compression_level = level;
  }
  if (!so.overwrite && access(file.c_str(), F_OK) == 0) {
    return Fail("save", absl::AlreadyExistsError(absl::StrCat(
                            file, " already exists; remove it, choose another name or pass --force")),
                kExitLocalFile);
  }
  {  // Can we write next to FILE at all? Say so before asking the agent.
    auto probe = FileSink::Create(file + ".part", 0600, false);
    if (!probe.ok()) return Fail("save", probe.status(), kExitLocalFile);
    unlink((file + ".part").c_str());
  }
  auto client = Dial(a);
  if (!client.ok()) return Fail("save", client.status());
  Progress progress("saving");
  auto saved = (*client)->Save(file, so, progress.Fn());
  if (!saved.ok()) return Fail("save", saved.status());
  Shown s = FromProto(saved->metadata, saved->archive_size, saved->checksum);
  if (a.Bool("json")) {
    nlohmann::ordered_json j = ToJson(s);
    j["file"] = file;
    j["stale"] = saved->metadata.stale();
    std::cout << j.dump() << "\n";
  } else {
    absl::PrintF("Saved %s: index %d, term %d, %d bytes of state in %d bytes of archive, %s%s\n",
                 file, s.index, s.term, s.size, s.archive_size, s.checksum,
                 saved->metadata.stale() ? " (stale: from a follower)" : "");
  }
  return kExitOk;
}

int Verify(const Args& a) {
  if (!Arity(a, 1)) {
    return Fail("verify", absl::InvalidArgumentError("expects exactly one FILE"), kExitUsage);
  }
  const std::string& file = a.positional[0];
  auto probe = FileSource::Open(file);
  if (!probe.ok()) return Fail("verify", probe.status(), kExitLocalFile);
  auto client = Dial(a);
  if (!client.ok()) return Fail("verify", client.status());
  Progress progress("verifying");
  auto r = (*client)->Verify(file, progress.Fn());
  if (!r.ok()) {
    return Fail("verify", absl::Status(r.status().code(),
                                       absl::StrCat(file, ": ", r.status().message())));
  }
  Shown s = FromProto(r->metadata(), r->archive_size(), r->checksum());
  s.state_sha256 = r->state_sha256();
  if (a.Bool("json")) {
    nlohmann::ordered_json j = ToJson(s);
    j["file"] = file;
    j["valid"] = true;
    std::cout << j.dump() << "\n";
  } else {
    absl::PrintF("%s is a valid snapshot archive\n", file);
    PrintShown(s);
  }
  return kExitOk;
}

int Restore(const Args& a) {
  if (!Arity(a, 1)) {
    return Fail("restore", absl::InvalidArgumentError("expects exactly one FILE"), kExitUsage);
  }
  const std::string& file = a.positional[0];
  auto probe = FileSource::Open(file);
  if (!probe.ok()) return Fail("restore", probe.status(), kExitLocalFile);
  auto opts = ConnectionOptions(a);
  if (!opts.ok()) return Fail("restore", opts.status());
  if (!a.Bool("yes")) {
    if (!isatty(STDIN_FILENO)) {
      return Fail("restore",
                  absl::InvalidArgumentError("a restore replaces all of the cluster's data; "
                                             "pass --yes to confirm (there is no terminal to ask on)"),
                  kExitUsage);
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
  Progress progress("restoring");
  auto r = (*client)->Restore(file, progress.Fn());
  if (!r.ok()) {
    return Fail("restore", absl::Status(r.status().code(),
                                        absl::StrCat(file, ": ", r.status().message())));
  }
  Shown s = FromProto(r->metadata(), r->archive_size(), r->checksum());
  if (a.Bool("json")) {
    nlohmann::ordered_json j = ToJson(s);
    j["file"] = file;
    j["restored_index"] = r->restored_index();
    std::cout << j.dump() << "\n";
  } else {
    absl::PrintF("Restored %s (snapshot index %d, term %d, %d bytes of state); in effect from log index %d\n",
                 file, s.index, s.term, s.size, r->restored_index());
  }
  return kExitOk;
}

int Status(const Args& a) {
  if (!Arity(a, 0)) {
    return Fail("status", absl::InvalidArgumentError("takes no arguments"), kExitUsage);
  }
  auto client = Dial(a);
  if (!client.ok()) return Fail("status", client.status());
  auto st = (*client)->Status();
  if (!st.ok()) return Fail("status", st.status());
  if (a.Bool("json")) {
    nlohmann::ordered_json j;
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
    j["members"] = nlohmann::ordered_json::array();
    for (const auto& m : st->members()) {
      j["members"].push_back({{"id", m.id()},
                              {"raft_address", m.raft_address()},
                              {"agent_address", m.agent_address()},
                              {"voter", m.voter()}});
    }
    std::cout << j.dump() << "\n";
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
  if (a.positional.empty()) {
    return Fail(cmd, absl::InvalidArgumentError("expects put, get, del or list"), kExitUsage);
  }
  const std::string& op = a.positional[0];
  const size_t n = a.positional.size() - 1;
  bool ok_arity = (op == "put" && n == 2) || (op == "get" && n == 1) ||
                  (op == "del" && n == 1) || (op == "list" && n <= 1);
  if (!ok_arity) {
    return Fail(cmd, absl::InvalidArgumentError(
                         "usage: kv put KEY VALUE | get KEY | del KEY | list [PREFIX]"),
                kExitUsage);
  }
  auto client = Dial(a);
  if (!client.ok()) return Fail(cmd, client.status());
  const bool json = a.Bool("json");
  if (op == "put" || op == "del") {
    auto idx = op == "put" ? (*client)->Put(a.positional[1], a.positional[2])
                           : (*client)->Delete(a.positional[1]);
    if (!idx.ok()) return Fail(cmd, idx.status());
    if (json) {
      std::cout << nlohmann::ordered_json{{"key", a.positional[1]}, {"index", *idx}}.dump() << "\n";
    }
    return kExitOk;
  }
  if (op == "get") {
    auto v = (*client)->Get(a.positional[1], a.Bool("stale"));
    if (!v.ok()) return Fail(cmd, v.status());
    if (json) {
      nlohmann::ordered_json j{{"key", a.positional[1]}, {"found", v->has_value()}};
      if (v->has_value()) j["value"] = **v;
      std::cout << j.dump() << "\n";
      return kExitOk;
    }
    if (!v->has_value()) {
      return Fail(cmd, absl::NotFoundError(absl::StrCat("no key \"", a.positional[1], "\"")), kExitError);
    }
    std::cout << **v << "\n";
    return kExitOk;
  }
  uint32_t limit = 0;
  if (!a.Str("limit").empty() && !absl::SimpleAtoi(a.Str("limit"), &limit)) {
    return Fail(cmd, absl::InvalidArgumentError("--limit must be a number"), kExitUsage);
  }
  auto entries = (*client)->List(n == 1 ? a.positional[1] : "", limit, a.Bool("stale"));
  if (!entries.ok()) return Fail(cmd, entries.status());
  if (json) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& [k, v] : *entries) arr.push_back({{"key", k}, {"value", v}});
    std::cout << arr.dump() << "\n";
  } else {
    for (const auto& [k, v] : *entries) std::cout << k << "\t" << v << "\n";
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  std::string cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return kExitOk;
  }
  auto args = ParseArgs(argc - 2, argv + 2);
  if (!args.ok()) return Fail(cmd, args.status(), kExitUsage);
  if (cmd == "inspect") return Inspect(*args);
  if (cmd == "save") return Save(*args);
  if (cmd == "verify") return Verify(*args);
  if (cmd == "restore") return Restore(*args);
  if (cmd == "status") return Status(*args);
  if (cmd == "kv") return Kv(*args);
  std::cerr << "snapshotctl: unknown command \"" << cmd << "\" (see snapshotctl --help)\n";
  return kExitUsage;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
