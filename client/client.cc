#include "client/client.h"

#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "base/atomic_file.h"
#include "base/grpc_credentials.h"
#include "base/io.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "archive/gzip.h"

namespace snapshot {
namespace {

constexpr size_t kUploadChunk = 1 << 20;


constexpr char kTlsPayload[] = "type.snapshot-agent/tls-handshake";

// Counts the decompressed bytes of the archive as it arrives, for progress.
// Stops counting (without failing anything) at the first decoding error:
// integrity is the trailer's job.
class StateProgress {
 public:
  StateProgress(const ProgressFn& fn, uint64_t state_size)
      : fn_(fn), total_(state_size), decoder_(&counter_) {}
  void Feed(absl::string_view compressed) {
    if (!ok_) return;
    ok_ = decoder_.Feed(compressed).ok();
    fn_(std::min(counter_.bytes(), total_), total_);
  }

 private:
  const ProgressFn& fn_;
  uint64_t total_;
  DiscardSink counter_;
  GzipDecoder decoder_;
  bool ok_ = true;
};

// Streams `src` to a client-streaming call as requests of archive bytes
// (`chunk`), then `last` (if any), half-closes and returns the call's
// outcome. A local read error cancels the call, so that a partial archive
// never looks complete. One request and its buffer carry every chunk: the
// bytes are read straight into it (a fresh megabyte per chunk cost a copy
// and, on machines where page faults are expensive, as much again in
// faults: 0.3 s of system time for a 68 MB archive).
template <typename Req, typename Writer>
absl::Status Upload(grpc::ClientContext* ctx, ByteSource* src, uint64_t total,
                    Writer* writer, const ProgressFn& progress,
                    const std::string& address, const std::function<void(Req*)>& last) {
  Req req;
  std::string* buf = req.mutable_chunk();
  uint64_t done = 0;
  absl::Status local;
  bool sent = true;
  for (;;) {
    buf->resize(kUploadChunk);  // keeps its capacity
    absl::StatusOr<size_t> got = ReadFully(src, &(*buf)[0], buf->size());  // whole chunks
    if (!got.ok()) {
      local = got.status();
      ctx->TryCancel();
      break;
    }
    const size_t filled = *got;
    if (filled == 0) break;
    buf->resize(filled);
    if (!writer->Write(req)) {  // the call's status says why
      sent = false;
      break;
    }
    done += filled;
    if (progress) progress(done, total);
  }
  if (sent && local.ok() && last) {
    Req end;
    last(&end);
    writer->Write(end);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  SA_RETURN_IF_ERROR(local);
  return FromGrpc(s, address);
}

// A source that hashes what is read through it.
class HashingSource : public ByteSource {
 public:
  explicit HashingSource(ByteSource* in) : in_(in) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    SA_ASSIGN_OR_RETURN(size_t got, in_->Read(buf, n));
    hash_.Update(absl::string_view(buf, got));
    return got;
  }
  std::string Checksum() { return ChecksumString(hash_.Finish()); }

 private:
  ByteSource* in_;
  Sha256 hash_;
};

}  // namespace

SnapshotMeta MetaFromProto(const v1::SnapshotMetadata& m) {
  SnapshotMeta s;
  s.id = m.id();
  s.index = m.index();
  s.term = m.term();
  s.size = m.state_size();
  s.configuration_index = m.configuration_index();
  s.version = m.version();
  for (const auto& ps : m.servers()) s.servers.push_back({ps.suffrage(), ps.id(), ps.address()});
  s.engine = m.engine();
  s.etcd.cluster_id = m.etcd().cluster_id();
  s.etcd.member_id = m.etcd().member_id();
  s.etcd.member_name = m.etcd().member_name();
  s.etcd.leader = m.etcd().leader();
  s.etcd.revision = m.etcd().revision();
  s.etcd.version = m.etcd().version();
  return s;
}

// Registers a context for CancelAll while the call runs.
class SnapshotClient::Call {
 public:
  Call(SnapshotClient* client, bool unary) : client_(client) {
    client_->Prepare(&ctx_, unary);
    std::lock_guard<std::mutex> l(client_->mu_);
    if (client_->cancelled_) ctx_.TryCancel();
    client_->live_.insert(&ctx_);
  }
  ~Call() {
    std::lock_guard<std::mutex> l(client_->mu_);
    client_->live_.erase(&ctx_);
  }
  grpc::ClientContext* ctx() { return &ctx_; }

 private:
  SnapshotClient* client_;
  grpc::ClientContext ctx_;
};

absl::Status FromGrpc(const grpc::Status& s, const std::string& address) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    msg = absl::StrCat("agent at ", address, ": ", msg);
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

bool IsTlsError(const absl::Status& s) {
  return !s.ok() && s.GetPayload(kTlsPayload).has_value();
}

absl::StatusOr<std::unique_ptr<SnapshotClient>> SnapshotClient::Connect(
    const ClientOptions& options) {
  const bool tls = !options.ca_file.empty() || !options.cert_file.empty() ||
                   !options.key_file.empty();
  TlsClientFiles files;
  files.ca_file = options.ca_file;
  files.cert_file = options.cert_file;
  files.key_file = options.key_file;
  SA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds,
                      ChannelCredentialsFromFiles(files));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.address, creds, args);
  auto snapshots = v1::SnapshotService::NewStub(channel);
  absl::Duration backoff = absl::Milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    if (channel->WaitForConnected(
            absl::ToChronoTime(absl::Now() + options.connect_timeout))) {
      break;
    }
    // Ask why: a call that does not wait for the channel fails at once with
    // the transport's last error (refused, handshake failure, ...).
    grpc::ClientContext probe;
    probe.set_wait_for_ready(false);
    probe.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::GetStatusResponse ignored;
    grpc::Status why =
        snapshots->GetStatus(&probe, v1::GetStatusRequest(), &ignored);
    if (why.error_code() != grpc::StatusCode::UNAVAILABLE) break;  // it answers
    const std::string& m = why.error_message();
    size_t hs = m.find("andshake failed");
    if (hs != std::string::npos) {
      // A handshake fails the same way every time: do not retry.
      size_t colon = m.find(": ", hs);
      absl::Status s = absl::UnavailableError(absl::StrCat(
          "TLS handshake with the agent at ", options.address, " failed: ",
          colon == std::string::npos ? m : m.substr(colon + 2),
          tls ? " (is --ca the CA that signed the agent's certificate, and "
                "does the agent serve TLS?)"
              : ""));
      s.SetPayload(kTlsPayload, absl::Cord("handshake"));
      return s;
    }
    if (attempt >= options.connect_attempts) {
      std::string last = m;
      size_t le = m.find("last error: ");
      if (le != std::string::npos) last = m.substr(le + 12);
      return absl::UnavailableError(absl::StrFormat(
          "cannot reach the agent at %s after %d attempts: %s (is it running, "
          "is the address right%s?)",
          options.address, attempt, last,
          tls ? "" : ", does it expect TLS (--ca)"));
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
  return std::make_unique<SnapshotClient>(std::move(snapshots),
                                          v1::KeyValueService::NewStub(channel),
                                          options);
}

SnapshotClient::SnapshotClient(
    std::unique_ptr<v1::SnapshotService::StubInterface> snapshots,
    std::unique_ptr<v1::KeyValueService::StubInterface> kv,
    ClientOptions options)
    : snapshots_(std::move(snapshots)), kv_(std::move(kv)),
      options_(std::move(options)) {}

void SnapshotClient::Prepare(grpc::ClientContext* ctx, bool unary) const {
  if (!options_.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + options_.token);
  }
  if (unary) ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
}

void SnapshotClient::CancelAll() {
  std::lock_guard<std::mutex> l(mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : live_) ctx->TryCancel();
}

absl::StatusOr<SaveResult> SnapshotClient::Save(const std::string& path,
                                                const SaveOptions& options,
                                                const ProgressFn& progress) {
  if (!options.overwrite && access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        path, " already exists; remove it or choose another name"));
  }
  SA_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(path + ".part", 0600, Env::Default(),
                                                        /*exclusive=*/false));
  out.EnableWriteBehind();  // the fsync of Commit then waits for the tail only
  SA_ASSIGN_OR_RETURN(SaveResult result, SaveTo(&out, options, progress));
  SA_RETURN_IF_ERROR(out.Commit(path));
  return result;
}

absl::StatusOr<SaveResult> SnapshotClient::SaveTo(ByteSink* out,
                                                  const SaveOptions& options,
                                                  const ProgressFn& progress) {
  if (!options.encrypt_to.empty() || !options.passphrase.empty()) {
    if (!options.encrypt_to.empty() && !options.passphrase.empty()) {
      return absl::InvalidArgumentError(
          "encrypt to recipients or with a passphrase, not both (age files hold one or the other)");
    }
    SA_ASSIGN_OR_RETURN(std::unique_ptr<age::Encryptor> enc,
                        options.passphrase.empty()
                            ? age::Encryptor::Create(options.encrypt_to, out)
                            : age::Encryptor::CreateWithPassphrase(
                                  options.passphrase, age::kDefaultScryptLogN, out));
    SaveOptions plain = options;
    plain.encrypt_to.clear();
    plain.passphrase.clear();
    SA_ASSIGN_OR_RETURN(SaveResult result, SaveTo(enc.get(), plain, progress));
    SA_RETURN_IF_ERROR(enc->Finish());
    return result;
  }
  Call call(this, /*unary=*/false);
  v1::TakeSnapshotRequest req;
  req.set_chunk_size(options.chunk_size);
  if (options.compression_level) req.set_compression_level(*options.compression_level);
  req.set_fast(options.fast);
  req.set_allow_stale(options.allow_stale);
  auto reader = snapshots_->TakeSnapshot(call.ctx(), req);

  SaveResult result;
  Sha256 hash;
  uint64_t received = 0;
  bool have_metadata = false, have_trailer = false;
  std::unique_ptr<StateProgress> state_progress;
  absl::Status local;
  v1::TakeSnapshotResponse resp;
  while (local.ok() && reader->Read(&resp)) {
    switch (resp.message_case()) {
      case v1::TakeSnapshotResponse::kMetadata:
        if (have_metadata) local = absl::DataLossError("the agent sent two metadata messages");
        result.metadata = resp.metadata();
        have_metadata = true;
        if (progress) {
          state_progress = std::make_unique<StateProgress>(
              progress, result.metadata.state_size());
        }
        break;
      case v1::TakeSnapshotResponse::kChunk:
        if (!have_metadata || have_trailer) {
          local = absl::DataLossError("the agent sent data out of order");
          break;
        }
        hash.Update(resp.chunk());
        received += resp.chunk().size();
        local = out->Write(resp.chunk());
        if (state_progress) state_progress->Feed(resp.chunk());
        break;
      case v1::TakeSnapshotResponse::kTrailer:
        result.archive_size = resp.trailer().archive_size();
        result.checksum = resp.trailer().checksum();
        have_trailer = true;
        break;
      default:
        local = absl::DataLossError("the agent sent an unknown message");
    }
  }
  if (!local.ok()) {
    call.ctx()->TryCancel();
    while (reader->Read(&resp)) {
    }
    reader->Finish();
    return local;
  }
  SA_RETURN_IF_ERROR(FromGrpc(reader->Finish(), options_.address));
  if (!have_trailer) {
    return absl::DataLossError(
        "the agent's stream ended without a trailer: the archive is incomplete");
  }
  const std::string actual = ChecksumString(hash.Finish());
  if (result.archive_size != received || result.checksum != actual) {
    return absl::DataLossError(absl::StrFormat(
        "the bytes received (%d, %s) do not match the agent's trailer (%d, %s)",
        received, actual, result.archive_size, result.checksum));
  }
  return result;
}

absl::StatusOr<v1::VerifySnapshotResponse> SnapshotClient::Verify(
    ByteSource* archive, uint64_t total, const ProgressFn& progress) {
  Call call(this, /*unary=*/false);
  v1::VerifySnapshotResponse resp;
  auto writer = snapshots_->VerifySnapshot(call.ctx(), &resp);
  SA_RETURN_IF_ERROR(Upload<v1::VerifySnapshotRequest>(
      call.ctx(), archive, total, writer.get(), progress, options_.address, nullptr));
  return resp;
}

absl::StatusOr<v1::VerifySnapshotResponse> SnapshotClient::Verify(
    const std::string& path, const ProgressFn& progress) {
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
  return Verify(&src, src.size(), progress);
}

absl::StatusOr<v1::RestoreSnapshotResponse> SnapshotClient::Restore(
    ByteSource* archive, uint64_t total, const ProgressFn& progress) {
  HashingSource hashed(archive);
  Call call(this, /*unary=*/false);
  v1::RestoreSnapshotResponse resp;
  auto writer = snapshots_->RestoreSnapshot(call.ctx(), &resp);
  SA_RETURN_IF_ERROR(Upload<v1::RestoreSnapshotRequest>(
      call.ctx(), &hashed, total, writer.get(), progress, options_.address,
      [&hashed](v1::RestoreSnapshotRequest* r) {
        r->set_expected_checksum(hashed.Checksum());
      }));
  return resp;
}

absl::StatusOr<v1::RestoreSnapshotResponse> SnapshotClient::Restore(
    const std::string& path, const ProgressFn& progress) {
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
  return Restore(&src, src.size(), progress);
}

absl::StatusOr<v1::RestoreSnapshotResponse> SnapshotClient::RestoreStored(
    const std::string& id) {
  Call call(this, /*unary=*/false);
  v1::RestoreSnapshotResponse resp;
  auto writer = snapshots_->RestoreSnapshot(call.ctx(), &resp);
  v1::RestoreSnapshotRequest req;
  req.mutable_options()->set_catalog_id(id);
  writer->Write(req);  // a failure shows in Finish
  writer->WritesDone();
  SA_RETURN_IF_ERROR(FromGrpc(writer->Finish(), options_.address));
  return resp;
}

absl::StatusOr<v1::ListSnapshotsResponse> SnapshotClient::ListSnapshots() {
  Call call(this, /*unary=*/true);
  v1::ListSnapshotsResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(
      snapshots_->ListSnapshots(call.ctx(), v1::ListSnapshotsRequest(), &resp),
      options_.address));
  return resp;
}

absl::StatusOr<v1::CatalogEntry> SnapshotClient::CreateSnapshot() {
  Call call(this, /*unary=*/false);  // as long as a snapshot takes
  v1::CatalogEntry resp;
  SA_RETURN_IF_ERROR(FromGrpc(
      snapshots_->CreateSnapshot(call.ctx(), v1::CreateSnapshotRequest(), &resp),
      options_.address));
  return resp;
}

absl::Status SnapshotClient::DeleteSnapshot(const std::string& id) {
  Call call(this, /*unary=*/true);
  v1::DeleteSnapshotRequest req;
  req.set_id(id);
  v1::DeleteSnapshotResponse resp;
  return FromGrpc(snapshots_->DeleteSnapshot(call.ctx(), req, &resp), options_.address);
}

absl::StatusOr<v1::CatalogEntry> SnapshotClient::Fetch(const std::string& id,
                                                       const std::string& path, bool resume,
                                                       bool overwrite,
                                                       const ProgressFn& progress) {
  if (!overwrite && access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        path, " already exists; remove it or choose another name"));
  }
  const std::string part = path + ".part";
  uint64_t offset = 0;
  struct stat st;
  if (resume && stat(part.c_str(), &st) == 0) offset = static_cast<uint64_t>(st.st_size);
  absl::StatusOr<AtomicFile> opened =
      offset > 0 ? AtomicFile::Resume(part)
                 : AtomicFile::Create(part, 0600, Env::Default(), /*exclusive=*/false);
  if (!opened.ok()) return opened.status();
  AtomicFile out = std::move(*opened);
  out.EnableWriteBehind();
  Call call(this, /*unary=*/false);
  v1::FetchSnapshotRequest req;
  req.set_id(id);
  req.set_offset(offset);
  auto reader = snapshots_->FetchSnapshot(call.ctx(), req);
  v1::CatalogEntry entry;
  v1::SnapshotTrailer trailer;
  bool have_entry = false, have_trailer = false;
  absl::Status local;
  {
    uint64_t done = offset;
    v1::FetchSnapshotResponse resp;
    while (local.ok() && reader->Read(&resp)) {
      switch (resp.message_case()) {
        case v1::FetchSnapshotResponse::kEntry:
          entry = resp.entry();
          have_entry = true;
          break;
        case v1::FetchSnapshotResponse::kChunk: {
          if (!have_entry || have_trailer) {
            local = absl::DataLossError("the agent sent data out of order");
            break;
          }
          const std::string& c = resp.chunk();
          local = out.Write(c);
          done += c.size();
          if (progress) progress(done, entry.archive_size());
          break;
        }
        case v1::FetchSnapshotResponse::kTrailer:
          trailer = resp.trailer();
          have_trailer = true;
          break;
        default:
          local = absl::DataLossError("the agent sent an unknown message");
      }
    }
    if (local.ok()) local = out.Sync();
  }
  if (!local.ok()) {
    call.ctx()->TryCancel();
    v1::FetchSnapshotResponse drain;
    while (reader->Read(&drain)) {
    }
    reader->Finish();
    out.KeepPart();  // keep what arrived: --resume continues it
    return local;
  }
  absl::Status s = FromGrpc(reader->Finish(), options_.address);
  if (!s.ok()) {
    if (!absl::IsOutOfRange(s) && !absl::IsNotFound(s)) out.KeepPart();
    return s;
  }
  if (!have_trailer) {
    out.KeepPart();
    return absl::DataLossError(
        "the agent's stream ended without a trailer: the download is incomplete");
  }
  // The whole file, resumed bytes included, must be the archive.
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(part));
  uint64_t size = 0;
  SA_ASSIGN_OR_RETURN(Digest d, Sha256OfSource(&src, &size));
  if (size != trailer.archive_size() || ChecksumString(d) != trailer.checksum()) {
    return absl::DataLossError(absl::StrFormat(
        "%s (%d bytes, %s) does not match the agent's trailer (%d bytes, %s)%s", part, size,
        ChecksumString(d), trailer.archive_size(), trailer.checksum(),
        offset > 0 ? ": the part resumed from was not a prefix of this snapshot; removed it"
                   : ""));
  }
  SA_RETURN_IF_ERROR(out.Commit(path));
  return entry;
}

absl::StatusOr<v1::GetStatusResponse> SnapshotClient::Status() {
  Call call(this, /*unary=*/true);
  v1::GetStatusResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(
      snapshots_->GetStatus(call.ctx(), v1::GetStatusRequest(), &resp),
      options_.address));
  return resp;
}

absl::StatusOr<uint64_t> SnapshotClient::Put(const std::string& key,
                                             const std::string& value) {
  Call call(this, /*unary=*/true);
  v1::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  v1::PutResponse resp;
  SA_RETURN_IF_ERROR(
      FromGrpc(kv_->Put(call.ctx(), req, &resp), options_.address));
  return resp.index();
}

absl::StatusOr<std::optional<std::string>> SnapshotClient::Get(
    const std::string& key, bool allow_stale) {
  Call call(this, /*unary=*/true);
  v1::GetRequest req;
  req.set_key(key);
  req.set_allow_stale(allow_stale);
  v1::GetResponse resp;
  SA_RETURN_IF_ERROR(
      FromGrpc(kv_->Get(call.ctx(), req, &resp), options_.address));
  if (!resp.found()) return std::optional<std::string>();
  return std::optional<std::string>(resp.value());
}

absl::StatusOr<uint64_t> SnapshotClient::Delete(const std::string& key) {
  Call call(this, /*unary=*/true);
  v1::DeleteRequest req;
  req.set_key(key);
  v1::DeleteResponse resp;
  SA_RETURN_IF_ERROR(
      FromGrpc(kv_->Delete(call.ctx(), req, &resp), options_.address));
  return resp.index();
}

absl::Status SnapshotClient::List(
    const std::string& prefix, uint64_t limit, bool allow_stale,
    const std::function<bool(const std::string&, const std::string&)>& each) {
  constexpr uint64_t kPage = 1000;
  std::string token;
  uint64_t seen = 0;
  for (;;) {
    Call call(this, /*unary=*/true);
    v1::ListRequest req;
    req.set_prefix(prefix);
    req.set_limit(static_cast<uint32_t>(
        limit == 0 ? kPage : std::min(kPage, limit - seen)));
    req.set_allow_stale(allow_stale);
    req.set_page_token(token);
    v1::ListResponse resp;
    SA_RETURN_IF_ERROR(
        FromGrpc(kv_->List(call.ctx(), req, &resp), options_.address));
    for (const auto& e : resp.entries()) {
      ++seen;
      if (!each(e.key(), e.value())) return absl::OkStatus();
    }
    if (resp.next_page_token().empty() || (limit != 0 && seen >= limit)) {
      return absl::OkStatus();
    }
    token = resp.next_page_token();
  }
}

}  // namespace snapshot
