#include "client/client.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/io.h"
#include "base/sha256.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

constexpr size_t kUploadChunk = 1 << 20;

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          const char* what) {
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
  if (src.size() > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " file ", path, " is too large"));
  }
  std::string out(src.size(), '\0');
  size_t filled = 0;
  while (filled < out.size()) {
    SA_ASSIGN_OR_RETURN(size_t n, src.Read(&out[filled], out.size() - filled));
    if (n == 0) break;
    filled += n;
  }
  out.resize(filled);
  return out;
}

// Removes a path when destroyed, unless released.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

absl::Status SyncDirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (dir.empty()) dir = "/";
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open directory", dir);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(err, "cannot fsync directory", dir);
  return absl::OkStatus();
}

// Streams a file to a client-streaming call (`make` turns each chunk into a
// request), half-closes and returns the call's outcome. A local read error
// cancels the call, so that a partial archive never looks complete.
template <typename Req, typename Writer>
absl::Status UploadFile(grpc::ClientContext* ctx, FileSource* src, Writer* writer,
                        const ProgressFn& progress, const std::string& address,
                        const std::function<void(std::string, Req*)>& make) {
  std::string buf(kUploadChunk, '\0');
  uint64_t done = 0;
  absl::Status local;
  for (;;) {
    absl::StatusOr<size_t> n = src->Read(&buf[0], buf.size());
    if (!n.ok()) {
      local = n.status();
      ctx->TryCancel();
      break;
    }
    if (*n == 0) break;
    Req req;
    make(buf.substr(0, *n), &req);
    if (!writer->Write(req)) break;  // the call's status says why
    done += *n;
    if (progress) progress(done, src->size());
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  SA_RETURN_IF_ERROR(local);
  return FromGrpc(s, address);
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& s, const std::string& address) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    msg = absl::StrCat("agent at ", address, ": ", msg);
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

absl::StatusOr<std::unique_ptr<SnapshotClient>> SnapshotClient::Connect(
    const ClientOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.ca_file.empty() && options.cert_file.empty() &&
      options.key_file.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      SA_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadSmallFile(options.ca_file, "CA"));
    }
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate needs both --cert and --key");
    }
    if (!options.cert_file.empty()) {
      SA_ASSIGN_OR_RETURN(ssl.pem_cert_chain,
                       ReadSmallFile(options.cert_file, "certificate"));
      SA_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadSmallFile(options.key_file, "key"));
    }
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.address, creds, args);
  absl::Duration backoff = absl::Milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    if (channel->WaitForConnected(
            absl::ToChronoTime(absl::Now() + options.connect_timeout))) {
      break;
    }
    if (attempt >= options.connect_attempts) {
      return absl::UnavailableError(absl::StrFormat(
          "cannot reach the agent at %s after %d attempts (is it running, is "
          "the address right, does it expect TLS?)",
          options.address, attempt));
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
  return std::make_unique<SnapshotClient>(v1::SnapshotService::NewStub(channel),
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

absl::StatusOr<SaveResult> SnapshotClient::Save(const std::string& path,
                                                const SaveOptions& options,
                                                const ProgressFn& progress) {
  if (!options.overwrite && access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        path, " already exists; remove it or choose another name"));
  }
  const std::string part = path + ".part";
  SA_ASSIGN_OR_RETURN(FileSink out, FileSink::Create(part, 0600, /*exclusive=*/false));
  RemoveOnExit remove_part(part);

  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::TakeSnapshotRequest req;
  req.set_chunk_size(options.chunk_size);
  if (options.compression_level) req.set_compression_level(*options.compression_level);
  req.set_allow_stale(options.allow_stale);
  auto reader = snapshots_->TakeSnapshot(&ctx, req);

  SaveResult result;
  Sha256 hash;
  uint64_t received = 0;
  bool have_metadata = false, have_trailer = false;
  absl::Status local;
  v1::TakeSnapshotResponse resp;
  while (local.ok() && reader->Read(&resp)) {
    switch (resp.message_case()) {
      case v1::TakeSnapshotResponse::kMetadata:
        if (have_metadata) local = absl::DataLossError("the agent sent two metadata messages");
        result.metadata = resp.metadata();
        have_metadata = true;
        break;
      case v1::TakeSnapshotResponse::kChunk:
        if (!have_metadata || have_trailer) {
          local = absl::DataLossError("the agent sent data out of order");
          break;
        }
        hash.Update(resp.chunk());
        received += resp.chunk().size();
        local = out.Write(resp.chunk());
        if (progress) progress(received, 0);
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
    ctx.TryCancel();
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
  SA_RETURN_IF_ERROR(out.SyncAndClose());
  if (rename(part.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, "cannot rename to", path);
  }
  remove_part.Release();
  SA_RETURN_IF_ERROR(SyncDirectoryOf(path));
  return result;
}

absl::StatusOr<v1::VerifySnapshotResponse> SnapshotClient::Verify(
    const std::string& path, const ProgressFn& progress) {
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::VerifySnapshotResponse resp;
  auto writer = snapshots_->VerifySnapshot(&ctx, &resp);
  SA_RETURN_IF_ERROR(UploadFile<v1::VerifySnapshotRequest>(
      &ctx, &src, writer.get(), progress, options_.address,
      [](std::string chunk, v1::VerifySnapshotRequest* r) {
        r->set_chunk(std::move(chunk));
      }));
  return resp;
}

absl::StatusOr<v1::RestoreSnapshotResponse> SnapshotClient::Restore(
    const std::string& path, const ProgressFn& progress) {
  // The checksum first: the agent then refuses an archive that changed on
  // the way.
  std::string checksum;
  {
    SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
    SA_ASSIGN_OR_RETURN(Digest digest, Sha256OfSource(&src));
    checksum = ChecksumString(digest);
  }
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::RestoreSnapshotResponse resp;
  auto writer = snapshots_->RestoreSnapshot(&ctx, &resp);
  v1::RestoreSnapshotRequest first;
  first.mutable_options()->set_expected_checksum(checksum);
  writer->Write(first);  // if the stream broke, the upload below says why
  SA_RETURN_IF_ERROR(UploadFile<v1::RestoreSnapshotRequest>(
      &ctx, &src, writer.get(), progress, options_.address,
      [](std::string chunk, v1::RestoreSnapshotRequest* r) {
        r->set_chunk(std::move(chunk));
      }));
  return resp;
}

absl::StatusOr<v1::GetStatusResponse> SnapshotClient::Status() {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::GetStatusResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(
      snapshots_->GetStatus(&ctx, v1::GetStatusRequest(), &resp), options_.address));
  return resp;
}

absl::StatusOr<uint64_t> SnapshotClient::Put(const std::string& key,
                                             const std::string& value) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  v1::PutResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(kv_->Put(&ctx, req, &resp), options_.address));
  return resp.index();
}

absl::StatusOr<std::optional<std::string>> SnapshotClient::Get(
    const std::string& key, bool allow_stale) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::GetRequest req;
  req.set_key(key);
  req.set_allow_stale(allow_stale);
  v1::GetResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(kv_->Get(&ctx, req, &resp), options_.address));
  if (!resp.found()) return std::optional<std::string>();
  return std::optional<std::string>(resp.value());
}

absl::StatusOr<uint64_t> SnapshotClient::Delete(const std::string& key) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::DeleteRequest req;
  req.set_key(key);
  v1::DeleteResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(kv_->Delete(&ctx, req, &resp), options_.address));
  return resp.index();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SnapshotClient::List(const std::string& prefix, uint32_t limit,
                     bool allow_stale) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::ListRequest req;
  req.set_prefix(prefix);
  req.set_limit(limit);
  req.set_allow_stale(allow_stale);
  v1::ListResponse resp;
  SA_RETURN_IF_ERROR(FromGrpc(kv_->List(&ctx, req, &resp), options_.address));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : resp.entries()) out.emplace_back(e.key(), e.value());
  return out;
}

}  // namespace snapshot
