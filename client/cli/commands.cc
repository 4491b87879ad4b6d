#include "client/cli/commands.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "age/age.h"
#include "archive/archive.h"
#include "base/atomic_file.h"
#include "base/io.h"
#include "base/status_macros.h"
#include "client/cli/output.h"
#include "client/client.h"
#include "client/exit_codes.h"
#include "engine/state_check.h"

namespace snapshot {
namespace cli {
namespace {

// --- Ctrl-C -----------------------------------------------------------------

// SIGINT/SIGTERM are blocked in every thread and taken by one watcher thread,
// which cancels the running call (so that Save removes its FILE.part) and
// lets the command end with exit code 130.
std::mutex g_signal_mu;
SnapshotClient* g_client = nullptr;  // guarded by g_signal_mu
std::atomic<bool> g_interrupted{false};

}  // namespace

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

namespace {

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

}  // namespace

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

namespace {

// --- Connection -------------------------------------------------------------

absl::StatusOr<ClientOptions> ConnectionOptions(const CommandLine& a) {
  ClientOptions o;
  o.address = FlagOrEnv(a, "address", absl::GetFlag(FLAGS_address), "SNAPSHOTCTL_ADDRESS",
                        "127.0.0.1:7150");
  o.ca_file = FlagOrEnv(a, "ca", absl::GetFlag(FLAGS_ca), "SNAPSHOTCTL_CA");
  o.cert_file = FlagOrEnv(a, "cert", absl::GetFlag(FLAGS_cert), "SNAPSHOTCTL_CERT");
  o.key_file = FlagOrEnv(a, "key", absl::GetFlag(FLAGS_key), "SNAPSHOTCTL_KEY");
  std::string token_file =
      FlagOrEnv(a, "token_file", absl::GetFlag(FLAGS_token_file), "SNAPSHOTCTL_TOKEN_FILE");
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

// A client of the agent `o` names — or, with `follow`, of the leader's agent
// when that one is a follower that knows it (said on stderr; `o` then names
// the leader's agent), as `consul snapshot` and `nomad operator snapshot`
// reach the leader; --no-follow stays. A failure to ask keeps the agent
// given: the call itself then says what is wrong.
absl::StatusOr<std::unique_ptr<SnapshotClient>> DialLeader(ClientOptions* o, bool follow) {
  auto c = SnapshotClient::Connect(*o);
  if (!c.ok() || !follow || absl::GetFlag(FLAGS_no_follow)) return c;
  auto st = (*c)->Status();
  if (!st.ok() || st->role() == "leader" || st->leader_agent_address().empty() ||
      st->leader_agent_address() == o->address) {
    return c;
  }
  std::cerr << "snapshotctl: the agent at " << o->address << " is a " << st->role()
            << "; following to the leader's agent at " << st->leader_agent_address()
            << " (--no-follow to stay)\n";
  o->address = st->leader_agent_address();
  return SnapshotClient::Connect(*o);
}

// A client of the agent; of the leader's agent when `follow` (calls that
// only the leader's agent serves).
absl::StatusOr<std::unique_ptr<SnapshotClient>> Dial(const CommandLine& a, bool follow) {
  auto o = ConnectionOptions(a);
  if (!o.ok()) return o.status();
  return DialLeader(&*o, follow);
}

// The passphrase in --passphrase-file (its first line), or "".
absl::StatusOr<std::string> Passphrase() {
  const std::string file = absl::GetFlag(FLAGS_passphrase_file);
  if (file.empty()) return std::string();
  SA_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(file, "--passphrase-file"));
  std::string line(absl::StripTrailingAsciiWhitespace(absl::string_view(text).substr(0, text.find('\n'))));
  OPENSSL_cleanse(&text[0], text.size());
  if (line.empty()) return absl::InvalidArgumentError(absl::StrCat("--passphrase-file ", file, " is empty"));
  return line;
}

// What opens an encrypted FILE: --identity and --passphrase-file.
absl::StatusOr<age::Keys> DecryptionKeys() {
  age::Keys keys;
  const std::string identity = absl::GetFlag(FLAGS_identity);
  if (!identity.empty()) {
    absl::StatusOr<std::vector<age::X25519Identity>> ids = age::ReadIdentityFile(identity);
    if (!ids.ok()) {
      return absl::Status(ids.status().code(), absl::StrCat("--identity: ", ids.status().message()));
    }
    keys.identities = std::move(*ids);
  }
  SA_ASSIGN_OR_RETURN(keys.passphrase, Passphrase());
  return keys;
}

// Standard input or a file, as an archive source: decrypted when it is an
// age file.
struct Input {
  std::unique_ptr<FileSource> file;
  std::unique_ptr<ByteSource> source;  // reads `file`
  uint64_t size = 0;  // 0: unknown (a pipe, or an encrypted file)
};

absl::StatusOr<Input> OpenInput(const std::string& file) {
  Input in;
  if (file == "-" && isatty(STDIN_FILENO)) {
    return absl::InvalidArgumentError("standard input is a terminal; pipe an archive into it");
  }
  absl::StatusOr<FileSource> src = FileSource::Open(file == "-" ? "/dev/stdin" : file);
  if (!src.ok()) return src.status();
  if (file != "-") in.size = src->size();
  in.file = std::make_unique<FileSource>(std::move(*src));
  SA_ASSIGN_OR_RETURN(age::Keys keys, DecryptionKeys());
  bool encrypted = false;
  absl::StatusOr<std::unique_ptr<ByteSource>> opened =
      age::OpenMaybeEncrypted(in.file.get(), keys, &encrypted);
  if (!opened.ok()) {
    return absl::Status(opened.status().code(),
                        absl::StrCat(file == "-" ? "standard input" : file, ": ",
                                     opened.status().message()));
  }
  in.source = std::move(*opened);
  if (encrypted) in.size = 0;
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

}  // namespace

// --- Commands ---------------------------------------------------------------

int Inspect(const CommandLine& a) {
  if (!a.Arity(1)) return Usage("inspect", "expects exactly one FILE (or - for standard input)");
  const std::string& file = a.positional[1];
  auto in = OpenInput(file);
  if (!in.ok()) return Fail("inspect", in.status());
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
  auto info = ReadArchive(in->source.get(), &forward, ro);
  if (info.ok() && check) {
    absl::Status checked = check->Finish();
    if (!checked.ok()) info = checked;
  }
  if (!info.ok()) {
    return Fail("inspect", absl::Status(info.status().code(),
                                        absl::StrCat(file, ": ", info.status().message())));
  }
  Shown s = FromLocal(*info);
  if (absl::GetFlag(FLAGS_json)) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    PrintJson(j);
  } else {
    absl::PrintF("File:                %s\n", file);
    PrintShown(s);
  }
  return kExitOk;
}

int Save(const CommandLine& a) {
  if (!a.Arity(1)) return Usage("save", "expects exactly one FILE (or - for standard output)");
  const std::string& file = a.positional[1];
  const bool to_stdout = file == "-";
  SaveOptions so;
  so.allow_stale = absl::GetFlag(FLAGS_stale);
  so.overwrite = absl::GetFlag(FLAGS_force);
  so.chunk_size = absl::GetFlag(FLAGS_chunk_size);
  const std::string level = absl::GetFlag(FLAGS_level);
  if (level == "fast") {
    so.fast = true;
  } else if (!level.empty()) {
    int n;
    if (!absl::SimpleAtoi(level, &n)) return Usage("save", "--level must be 0 to 9 or fast");
    so.compression_level = n;
  }
  const std::string encrypt_to = absl::GetFlag(FLAGS_encrypt_to);
  if (!encrypt_to.empty()) {
    auto recipients = age::ReadRecipientsFile(encrypt_to);
    if (!recipients.ok()) {
      return Fail("save", absl::Status(recipients.status().code(),
                                       absl::StrCat("--encrypt-to: ", recipients.status().message())));
    }
    so.encrypt_to = std::move(*recipients);
  }
  auto passphrase = Passphrase();
  if (!passphrase.ok()) return Fail("save", passphrase.status());
  so.passphrase = std::move(*passphrase);
  if (!so.encrypt_to.empty() && !so.passphrase.empty()) {
    return Usage("save", "--encrypt-to and --passphrase-file exclude each other");
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
  auto client = Dial(a, !so.allow_stale);
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
  Shown s = FromAgent(saved->metadata, saved->archive_size, saved->checksum);
  if (absl::GetFlag(FLAGS_json)) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    j["stale"] = saved->metadata.stale();
    j["encrypted"] = !so.encrypt_to.empty() || !so.passphrase.empty();
    // With "-", stdout carries the archive: the result goes to stderr.
    if (to_stdout) {
      std::cerr << JsonLine(j) << "\n";
    } else {
      PrintJson(j);
    }
  } else {
    std::string line = absl::StrFormat(
        "Saved %s: index %d, term %d, %d bytes of state in %d bytes of archive, %s%s%s\n",
        to_stdout ? "to standard output" : file, s.meta.index, s.meta.term, s.meta.size,
        s.archive_size, s.checksum,
        saved->metadata.stale() ? " (stale: from a follower)" : "",
        so.encrypt_to.empty() && so.passphrase.empty() ? "" : "; encrypted with age");
    (to_stdout ? std::cerr : std::cout) << line;
  }
  return kExitOk;
}

int Verify(const CommandLine& a) {
  if (!a.Arity(1)) return Usage("verify", "expects exactly one FILE (or - for standard input)");
  const std::string& file = a.positional[1];
  auto in = OpenInput(file);
  if (!in.ok()) return Fail("verify", in.status());
  auto client = Dial(a, /*follow=*/false);
  if (!client.ok()) return Fail("verify", client.status());
  Interruptible interruptible(client->get());
  Progress progress("verifying", "the archive");
  auto r = (*client)->Verify(in->source.get(), in->size, progress.Fn());
  progress.Finish();
  if (!r.ok()) {
    return Fail("verify", absl::Status(r.status().code(),
                                       absl::StrCat(file, ": ", r.status().message())));
  }
  Shown s = FromAgent(r->metadata(), r->archive_size(), r->checksum());
  s.state_sha256 = r->state_sha256();
  if (absl::GetFlag(FLAGS_json)) {
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

// The newest snapshot the agent lists of its own cluster (local, or in the
// remote store under its --remote-cluster).
absl::StatusOr<std::string> LatestId(const CommandLine& a) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<SnapshotClient> client, Dial(a, /*follow=*/true));
  SA_ASSIGN_OR_RETURN(v1::ListSnapshotsResponse l, client->ListSnapshots());
  for (const auto& e : l.snapshots()) {  // newest first
    if (e.location() == "remote" && e.cluster() != l.remote_cluster()) continue;
    return e.id();
  }
  return absl::NotFoundError("the agent lists no snapshot of its cluster, locally or remotely");
}

int Restore(const CommandLine& a) {
  std::string id = absl::GetFlag(FLAGS_id);
  if (absl::GetFlag(FLAGS_latest)) {
    if (!id.empty() || !a.Arity(0)) return Usage("restore", "--latest takes no FILE and no --id");
    auto latest = LatestId(a);
    if (!latest.ok()) return Fail("restore", latest.status());
    id = *latest;
  }
  if (!id.empty() && !a.Arity(0)) return Usage("restore", "takes either FILE or --id=ID");
  if (id.empty() && !a.Arity(1)) {
    return Usage("restore", "expects exactly one FILE (or - for standard input), or --id=ID");
  }
  const std::string file = id.empty() ? a.positional[1] : "snapshot " + id;
  absl::StatusOr<Input> in = id.empty() ? OpenInput(file) : absl::StatusOr<Input>(Input());
  if (!in.ok()) return Fail("restore", in.status());
  auto opts = ConnectionOptions(a);
  if (!opts.ok()) return Fail("restore", opts.status());
  // Before asking: the question names the agent that restores.
  auto client = DialLeader(&*opts, /*follow=*/true);
  if (!absl::GetFlag(FLAGS_yes)) {
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
  Shown s = FromAgent(r->metadata(), r->archive_size(), r->checksum());
  if (absl::GetFlag(FLAGS_json)) {
    Json j = ToJson(s);
    PutBytes(j, "file", file);
    j["restored_index"] = r->restored_index();
    j["safety_snapshot_id"] = r->safety_snapshot_id();
    PrintJson(j);
  } else {
    absl::PrintF("Restored %s (snapshot index %d, term %d, %d bytes of state); in effect from log index %d\n",
                 file == "-" ? "standard input" : file, s.meta.index, s.meta.term, s.meta.size,
                 r->restored_index());
    if (!r->safety_snapshot_id().empty()) {
      absl::PrintF("The state before the restore is stored as %s; to undo: snapshotctl restore --id=%s\n",
                   r->safety_snapshot_id(), r->safety_snapshot_id());
    }
  }
  return kExitOk;
}

int List(const CommandLine& a) {
  if (!a.Arity(0)) return Usage("list", "takes no arguments");
  auto client = Dial(a, /*follow=*/true);
  if (!client.ok()) return Fail("list", client.status());
  auto l = (*client)->ListSnapshots();
  if (!l.ok()) return Fail("list", l.status());
  if (absl::GetFlag(FLAGS_json)) {
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

int Create(const CommandLine& a) {
  if (!a.Arity(0)) return Usage("create", "takes no arguments");
  auto client = Dial(a, /*follow=*/true);
  if (!client.ok()) return Fail("create", client.status());
  Interruptible interruptible(client->get());
  auto e = (*client)->CreateSnapshot();
  if (!e.ok()) return Fail("create", e.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(EntryJson(*e));
  } else {
    PrintEntry(*e);
  }
  return kExitOk;
}

// A source that copies what is read from it into `copy`.
class TeeSource : public ByteSource {
 public:
  TeeSource(ByteSource* in, ByteSink* copy) : in_(in), copy_(copy) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    SA_ASSIGN_OR_RETURN(size_t got, in_->Read(buf, n));
    SA_RETURN_IF_ERROR(copy_->Write(absl::string_view(buf, got)));
    return got;
  }

 private:
  ByteSource* in_;
  ByteSink* copy_;
};

// Replaces the age file FILE by the archive inside, decrypted with `keys`
// and verified completely against the checksum the agent listed.
absl::Status DecryptInPlace(const std::string& file, const age::Keys& keys,
                            const std::string& checksum) {
  SA_ASSIGN_OR_RETURN(FileSource in, FileSource::Open(file));
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> plain, age::OpenMaybeEncrypted(&in, keys));
  SA_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(file + ".dec.part", 0600,
                                                         Env::Default(), /*exclusive=*/false));
  TeeSource tee(plain.get(), &out);
  SA_ASSIGN_OR_RETURN(ArchiveInfo info, ReadArchive(&tee, nullptr));
  if (info.checksum != checksum) {
    return absl::DataLossError(absl::StrCat("the archive inside ", file, " (", info.checksum,
                                            ") is not the snapshot listed (", checksum, ")"));
  }
  return out.Commit(file);
}

int Fetch(const CommandLine& a) {
  if (!a.Arity(2)) return Usage("fetch", "expects ID FILE");
  const std::string& id = a.positional[1];
  const std::string& file = a.positional[2];
  auto keys = DecryptionKeys();
  if (!keys.ok()) return Fail("fetch", keys.status());
  auto client = Dial(a, /*follow=*/true);
  if (!client.ok()) return Fail("fetch", client.status());
  Interruptible interruptible(client->get());
  Progress progress("fetching", "the archive");
  auto e = (*client)->Fetch(id, file, absl::GetFlag(FLAGS_resume), absl::GetFlag(FLAGS_force), progress.Fn());
  progress.Finish();
  if (!e.ok()) {
    if (g_interrupted) {
      return Fail("fetch", absl::CancelledError(absl::StrCat(
                               "interrupted; ", file, ".part keeps what arrived: rerun with --resume")),
                  kExitInterrupted);
    }
    return Fail("fetch", e.status());
  }
  // Encrypted in the bucket and the agent holds no key: the age file came as
  // it is; with a key here it becomes the archive.
  bool sealed = e->encrypted();
  if (sealed && (!keys->identities.empty() || !keys->passphrase.empty())) {
    absl::Status s = DecryptInPlace(file, *keys, e->checksum());
    if (!s.ok()) return Fail("fetch", s);
    sealed = false;
  }
  if (absl::GetFlag(FLAGS_json)) {
    Json j = EntryJson(*e);
    PutBytes(j, "file", file);
    j["encrypted"] = sealed;
    PrintJson(j);
  } else if (sealed) {
    absl::PrintF(
        "Fetched %s into %s as stored in the bucket, encrypted with age: decrypt it with age -d "
        "-i KEY, or give snapshotctl --identity=KEY (fetch, inspect, verify, restore)\n",
        e->id(), file);
  } else {
    absl::PrintF("Fetched %s into %s (%d bytes, %s)\n", e->id(), file, e->archive_size(),
                 e->checksum());
  }
  return kExitOk;
}

int Delete(const CommandLine& a) {
  if (!a.Arity(1)) return Usage("delete", "expects exactly one ID");
  auto client = Dial(a, /*follow=*/true);
  if (!client.ok()) return Fail("delete", client.status());
  absl::Status s = (*client)->DeleteSnapshot(a.positional[1]);
  if (!s.ok()) return Fail("delete", s);
  if (absl::GetFlag(FLAGS_json)) {
    Json j;
    j["deleted"] = a.positional[1];
    PrintJson(j);
  } else {
    absl::PrintF("Deleted %s\n", a.positional[1]);
  }
  return kExitOk;
}

int Status(const CommandLine& a) {
  if (!a.Arity(0)) return Usage("status", "takes no arguments");
  auto client = Dial(a, /*follow=*/false);
  if (!client.ok()) return Fail("status", client.status());
  auto st = (*client)->Status();
  if (!st.ok()) return Fail("status", st.status());
  if (absl::GetFlag(FLAGS_json)) {
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

int Kv(const CommandLine& a) {
  const std::string cmd = "kv";
  const std::string op = a.positional.size() > 1 ? a.positional[1] : "";
  const size_t n = a.positional.size() < 2 ? 0 : a.positional.size() - 2;
  bool ok_arity = (op == "put" && n == 2) || (op == "get" && n == 1) ||
                  (op == "del" && n == 1) || (op == "list" && n <= 1);
  if (!ok_arity) {
    return Usage(cmd, "usage: kv put KEY VALUE | get KEY | del KEY | list [PREFIX]");
  }
  const uint64_t limit = absl::GetFlag(FLAGS_limit);
  auto client = Dial(a, !absl::GetFlag(FLAGS_stale));
  if (!client.ok()) return Fail(cmd, client.status());
  const bool json = absl::GetFlag(FLAGS_json);
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
    auto v = (*client)->Get(key, absl::GetFlag(FLAGS_stale));
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
      key, limit, absl::GetFlag(FLAGS_stale), [&](const std::string& k, const std::string& v) {
        if (json) {
          Json j;
          PutBytes(j, "key", k);
          PutBytes(j, "value", v);
          std::cout << (first ? "" : ",")
                    << JsonLine(j);
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

}  // namespace cli
}  // namespace snapshot
