#include "server/service.h"

#include <functional>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "core/restore_request.h"
#include "server/metrics.h"
#include "server/rpc.h"
#include "server/upload.h"

namespace snapshot {
namespace {

constexpr uint32_t kDefaultListLimit = 1000;
constexpr uint32_t kMaxListLimit = 10000;
// Keys and values per List response (plus at most one entry): far below
// gRPC's default 4 MiB receive limit of every client.
constexpr uint64_t kListPageBytes = 1 << 20;

void ToProto(const SnapshotMeta& m, bool stale, v1::SnapshotMetadata* out) {
  out->set_id(m.id);
  out->set_index(m.index);
  out->set_term(m.term);
  out->set_version(m.version);
  out->set_state_size(m.size);
  out->set_configuration_index(m.configuration_index);
  for (const Server& s : m.servers) {
    v1::Server* ps = out->add_servers();
    ps->set_id(s.id);
    ps->set_address(s.address);
    ps->set_suffrage(s.suffrage >= 0 && s.suffrage <= 2
                         ? static_cast<v1::Suffrage>(s.suffrage)
                         : v1::SUFFRAGE_NONVOTER);
  }
  out->set_stale(stale);
  out->set_engine(m.engine);
  if (m.engine == kEngineEtcd) {
    v1::EtcdSnapshotInfo* e = out->mutable_etcd();
    e->set_cluster_id(m.etcd.cluster_id);
    e->set_member_id(m.etcd.member_id);
    e->set_member_name(m.etcd.member_name);
    e->set_leader(m.etcd.leader);
    e->set_revision(m.etcd.revision);
    e->set_version(m.etcd.version);
  }
}

void ToProto(const CatalogEntry& e, v1::CatalogEntry* out) {
  out->set_id(e.id);
  out->set_created_unix_ms(absl::ToUnixMillis(e.created));
  out->set_origin(OriginName(e.origin));
  ToProto(e.meta, false, out->mutable_metadata());
  out->set_archive_size(e.archive_size);
  out->set_checksum(e.checksum);
  out->set_state_sha256(e.state_sha256);
}

// Turns the archive byte stream into chunk messages of a fixed size
// (TakeSnapshotResponse or FetchSnapshotResponse).
template <typename Response>
class ChunkSink : public ByteSink {
 public:
  ChunkSink(grpc::ServerContext* ctx, grpc::ServerWriterInterface<Response>* writer,
            size_t chunk_size, StreamWatchdog::Stream* watch, uint64_t* bytes)
      : ctx_(ctx), writer_(writer), chunk_size_(chunk_size), watch_(watch),
        bytes_(bytes) {
    buf_.reserve(chunk_size);
  }

  absl::Status Write(absl::string_view data) override {
    while (!data.empty()) {
      size_t n = std::min(chunk_size_ - buf_.size(), data.size());
      buf_.append(data.data(), n);
      data.remove_prefix(n);
      if (buf_.size() == chunk_size_) SA_RETURN_IF_ERROR(Flush());
    }
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (buf_.empty()) return absl::OkStatus();
    if (ctx_->IsCancelled()) return Broken();
    std::string* chunk = resp_.mutable_chunk();
    chunk->swap(buf_);
    // Blocks while the client's flow-control window is full: memory stays
    // at one chunk however slow the client.
    bool ok = writer_->Write(resp_);
    const size_t n = chunk->size();
    *bytes_ += n;
    chunk->swap(buf_);
    buf_.clear();
    if (!ok) return Broken();
    watch_->Touch(n);
    return absl::OkStatus();
  }

  // Set when the stream broke (client gone, cancelled, stopped).
  bool broken() const { return broken_; }

 private:
  absl::Status Broken() {
    broken_ = true;
    return absl::CancelledError("the stream to the client broke");
  }
  grpc::ServerContext* ctx_;
  grpc::ServerWriterInterface<Response>* writer_;
  size_t chunk_size_;
  StreamWatchdog::Stream* watch_;
  uint64_t* bytes_;
  std::string buf_;
  Response resp_;
  bool broken_ = false;
};

}  // namespace

// --- Upload RPCs (callback API) ---------------------------------------------

namespace {

class VerifySession : public UploadSession<v1::VerifySnapshotRequest> {
 public:
  VerifySession(const Limits& limits, v1::VerifySnapshotResponse* resp)
      : verifier_(limits), resp_(resp) {}

  absl::Status OnMessage(const v1::VerifySnapshotRequest& req,
                         uint64_t* bytes) override {
    *bytes += req.chunk().size();
    return verifier_.Feed(req.chunk());
  }

  absl::Status OnEnd() override {
    SA_ASSIGN_OR_RETURN(ArchiveInfo info, verifier_.Finish());
    ToProto(info.meta, false, resp_->mutable_metadata());
    resp_->set_archive_size(info.archive_size);
    resp_->set_checksum(info.checksum);
    resp_->set_state_sha256(HexLower(info.state_sha256));
    return absl::OkStatus();
  }

 private:
  Verifier verifier_;
  v1::VerifySnapshotResponse* resp_;
};

// Translates the RestoreSnapshot stream into a core RestoreRequest, which
// holds the rules (core/restore_request.h).
class RestoreSession : public UploadSession<v1::RestoreSnapshotRequest> {
 public:
  RestoreSession(const Rpc* rpc, const ServiceOptions& o, SnapshotJob* job,
                 std::unique_ptr<RestoreSpool> spool, v1::RestoreSnapshotResponse* resp)
      : rpc_(rpc),
        options_(o),
        request_(std::move(spool), job != nullptr ? job->catalog() : nullptr,
                 job != nullptr && job->safety_snapshot()
                     ? SafetySnapshotFn([job](absl::Time deadline) -> absl::StatusOr<std::string> {
                         SA_ASSIGN_OR_RETURN(CatalogEntry e,
                                             job->Create(SnapshotOrigin::kPreRestore, deadline));
                         return e.id;
                       })
                     : nullptr),
        resp_(resp) {}

  absl::Status OnMessage(const v1::RestoreSnapshotRequest& req,
                         uint64_t* bytes) override {
    switch (req.message_case()) {
      case v1::RestoreSnapshotRequest::kOptions:
        return request_.Options(req.options().expected_checksum(), req.options().catalog_id());
      case v1::RestoreSnapshotRequest::kExpectedChecksum:
        return request_.ExpectedChecksum(req.expected_checksum());
      case v1::RestoreSnapshotRequest::kChunk:
        *bytes += req.chunk().size();
        return request_.Chunk(req.chunk());
      default:
        return absl::InvalidArgumentError("empty RestoreSnapshotRequest");
    }
  }

  absl::Status OnEnd() override {
    SA_ASSIGN_OR_RETURN(RestoreOutcome o,
                        request_.Finish(absl::Now() + options_.restore_timeout));
    Metrics::Get().RestoreApplied();
    Log(LogLevel::kInfo, "restore applied",
        {{"peer", rpc_->peer()},
         {"role", rpc_->role()},
         {"snapshot_id", o.info.meta.id},
         {"snapshot_index", o.info.meta.index},
         {"checksum", o.info.checksum},
         {"catalog_id", o.catalog_id},
         {"safety_snapshot_id", o.safety_id},
         {"restored_index", o.result.index}});
    ToProto(o.info.meta, false, resp_->mutable_metadata());
    resp_->set_archive_size(o.info.archive_size);
    resp_->set_checksum(o.info.checksum);
    resp_->set_restored_index(o.result.index);
    resp_->set_safety_snapshot_id(o.safety_id);
    return absl::OkStatus();
  }

 private:
  const Rpc* rpc_;
  const ServiceOptions& options_;
  RestoreRequest request_;
  v1::RestoreSnapshotResponse* resp_;
};

}  // namespace

// --- SnapshotService --------------------------------------------------------

SnapshotServiceImpl::SnapshotServiceImpl(RaftNode* node, Restorer* restorer,
                                         ServiceOptions options, SnapshotJob* job)
    : node_(node), restorer_(restorer), options_(std::move(options)), job_(job),
      streams_(options_.max_concurrent_streams, options_.idle_timeout,
               options_.min_transfer_rate),
      workers_(options_.max_concurrent_streams) {}

SnapshotServiceImpl::~SnapshotServiceImpl() {
  // Every upload reactor is done once the server has shut down; they use the
  // stream limits and the workers, which go with this object.
  if (!workers_.Drain(absl::Now() + absl::Minutes(1))) {
    Log(LogLevel::kError, "upload calls still running when the service was destroyed", {});
  }
}

grpc::Status SnapshotServiceImpl::TakeSnapshot(
    grpc::ServerContext* ctx, const v1::TakeSnapshotRequest* req,
    grpc::ServerWriter<v1::TakeSnapshotResponse>* writer) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  return rpc.Done(Take(ctx, *req, writer, &rpc.bytes, rpc.read_role()));
}

absl::Status SnapshotServiceImpl::Take(
    grpc::ServerContext* ctx, const v1::TakeSnapshotRequest& req,
    grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
    uint64_t* bytes, bool read_role) {
  SA_ASSIGN_OR_RETURN(const uint32_t chunk, ChunkSize(req.chunk_size()));
  TakeOptions opts;
  opts.limits = options_.limits;
  opts.snapshot.allow_stale = req.allow_stale();
  if (req.fast() && req.has_compression_level()) {
    return absl::InvalidArgumentError(
        "fast and compression_level exclude each other: ask for fast mode or "
        "for a level");
  }
  if (req.has_compression_level()) {
    opts.compression = req.compression_level();
  } else if (req.fast()) {
    opts.compression = Compression::Fast();
  }
  opts.compress_threads = CompressThreads(options_.compress_threads);
  SA_ASSIGN_OR_RETURN(std::unique_ptr<StreamSlot> slot, streams_.Acquire(read_role));
  std::shared_ptr<StreamWatchdog::Stream> watch =
      streams_.Watch([ctx](const absl::Status&) { ctx->TryCancel(); });
  ChunkSink<v1::TakeSnapshotResponse> sink(ctx, writer, chunk, watch.get(), bytes);
  absl::StatusOr<ArchiveInfo> info = TakeArchive(
      node_, opts, &sink, absl::Now() + options_.raft_timeout,
      [&](const CapturedSnapshot& snap) -> absl::Status {
        v1::TakeSnapshotResponse first;
        ToProto(snap.meta, snap.stale, first.mutable_metadata());
        if (!writer->Write(first)) {
          return absl::CancelledError("the stream to the client broke");
        }
        watch->Touch(0);
        return absl::OkStatus();
      });
  absl::Status s = info.ok() ? sink.Flush() : info.status();
  if (!s.ok()) {
    if (sink.broken() || absl::IsCancelled(s)) return Interrupted(*watch);
    return s;
  }
  v1::TakeSnapshotResponse last;
  last.mutable_trailer()->set_archive_size(info->archive_size);
  last.mutable_trailer()->set_checksum(info->checksum);
  if (!writer->Write(last)) return Interrupted(*watch);
  return absl::OkStatus();
}

grpc::ServerReadReactor<v1::VerifySnapshotRequest>*
SnapshotServiceImpl::VerifySnapshot(grpc::CallbackServerContext* ctx,
                                    v1::VerifySnapshotResponse* resp) {
  auto rpc = std::make_unique<Rpc>(ctx, options_.auth);
  absl::Status start = rpc->authorized();
  std::unique_ptr<StreamSlot> slot;
  if (start.ok()) {
    absl::StatusOr<std::unique_ptr<StreamSlot>> got = streams_.Acquire(rpc->read_role());
    if (got.ok()) slot = std::move(*got); else start = got.status();
  }
  return new UploadReactor<v1::VerifySnapshotRequest>(
      ctx, std::move(rpc), &streams_, &workers_, start, std::move(slot),
      std::make_unique<VerifySession>(options_.limits, resp));
}

grpc::ServerReadReactor<v1::RestoreSnapshotRequest>*
SnapshotServiceImpl::RestoreSnapshot(grpc::CallbackServerContext* ctx,
                                     v1::RestoreSnapshotResponse* resp) {
  auto rpc = std::make_unique<Rpc>(ctx, options_.auth);
  absl::Status start = rpc->authorized();
  std::unique_ptr<StreamSlot> slot;
  if (start.ok()) {
    absl::StatusOr<std::unique_ptr<StreamSlot>> got = streams_.Acquire(rpc->read_role());
    if (got.ok()) slot = std::move(*got); else start = got.status();
  }
  std::unique_ptr<UploadSession<v1::RestoreSnapshotRequest>> session;
  if (start.ok()) {
    // Refuses on a follower, or while another restore runs, before
    // receiving what may be gigabytes.
    absl::StatusOr<std::unique_ptr<RestoreSpool>> spool =
        restorer_->Begin(absl::Now() + options_.raft_timeout);
    if (spool.ok()) {
      session = std::make_unique<RestoreSession>(rpc.get(), options_, job_,
                                                 std::move(*spool), resp);
    } else {
      start = spool.status();
    }
  }
  return new UploadReactor<v1::RestoreSnapshotRequest>(
      ctx, std::move(rpc), &streams_, &workers_, start, std::move(slot), std::move(session));
}

void SnapshotServiceImpl::StopStreams() {
  streams_.StopAll(absl::UnavailableError(
      "the agent is shutting down; retry against it when it is back, or "
      "against another node"));
}

grpc::Status SnapshotServiceImpl::GetStatus(grpc::ServerContext* ctx,
                                            const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  absl::StatusOr<NodeStatus> st = node_->Status(absl::Now() + options_.raft_timeout);
  if (!st.ok()) return rpc.Done(st.status());
  resp->set_node_id(st->id);
  resp->set_raft_address(st->raft_address);
  resp->set_role(RoleName(st->role));
  resp->set_leader_id(st->leader_id);
  resp->set_leader_agent_address(st->leader_agent_address);
  resp->set_leader_raft_address(st->leader_raft_address);
  resp->set_term(st->term);
  resp->set_commit_index(st->commit_index);
  resp->set_applied_index(st->applied_index);
  resp->set_last_index(st->last_index);
  for (const Member& m : st->members) {
    v1::Member* pm = resp->add_members();
    pm->set_id(m.id);
    pm->set_raft_address(m.raft_address);
    pm->set_agent_address(m.agent_address);
    pm->set_voter(m.voter);
  }
  return rpc.Done(absl::OkStatus());
}

// --- The catalog -------------------------------------------------------------

absl::Status SnapshotServiceImpl::NeedCatalog() const {
  if (job_ == nullptr) {
    return absl::FailedPreconditionError("this agent keeps no snapshot catalog");
  }
  return absl::OkStatus();
}

grpc::Status SnapshotServiceImpl::ListSnapshots(grpc::ServerContext* ctx,
                                                const v1::ListSnapshotsRequest*,
                                                v1::ListSnapshotsResponse* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  if (absl::Status s = NeedCatalog(); !s.ok()) return rpc.Done(s);
  std::vector<CatalogEntry> local = job_->catalog()->List();
  std::vector<RemoteEntry> remote;
  if (job_->remote() != nullptr) {
    absl::StatusOr<std::vector<RemoteEntry>> listed = job_->remote()->List();
    if (listed.ok()) {
      remote = std::move(*listed);
    } else {
      // The local catalog is still worth listing when the bucket is not
      // reachable; the failure shows in the log and in the remote's health.
      Log(LogLevel::kWarning, "listing the remote store failed; listing local snapshots only",
          {{"remote", job_->remote()->Where()}, {"error", listed.status().message()}});
    }
  }
  // Newest first, local and remote merged by id.
  std::map<std::string, v1::CatalogEntry, std::greater<std::string>> merged;
  for (const RemoteEntry& r : remote) {
    v1::CatalogEntry& out = merged[r.entry.id];
    if (!out.id().empty() && r.object.cluster != job_->remote()->cluster()) continue;
    ToProto(r.entry, &out);
    out.set_location("remote");
    out.set_cluster(r.object.cluster);
    out.set_encrypted(r.object.encrypted);
  }
  for (const CatalogEntry& e : local) {
    v1::CatalogEntry& out = merged[e.id];
    const bool also_remote = !out.id().empty();
    const std::string cluster = out.cluster();
    const bool encrypted = out.encrypted();
    ToProto(e, &out);
    out.set_location(also_remote ? "local+remote" : "local");
    out.set_cluster(cluster);
    out.set_encrypted(encrypted);
  }
  for (auto& [id, e] : merged) *resp->add_snapshots() = std::move(e);
  resp->set_total_bytes(job_->catalog()->TotalBytes());
  if (job_->remote() != nullptr) resp->set_remote_cluster(job_->remote()->cluster());
  return rpc.Done(absl::OkStatus());
}

absl::Status SnapshotServiceImpl::FetchSealed(
    grpc::ServerContext* ctx, const v1::FetchSnapshotRequest& req, const RemoteEntry& r,
    uint32_t chunk, grpc::ServerWriterInterface<v1::FetchSnapshotResponse>* writer,
    uint64_t* bytes, bool read_role) {
  Digest d;
  if (!ParseHexDigest(r.object_sha256, &d)) {
    return absl::DataLossError(absl::StrCat("the sidecar of ", r.object.archive_key,
                                            " records no valid SHA-256 of the object"));
  }
  if (req.offset() > r.object.archive_size) {
    return absl::OutOfRangeError(absl::StrFormat(
        "offset %d is past the end of %s (%d bytes)", req.offset(), r.object.archive_key,
        r.object.archive_size));
  }
  SA_ASSIGN_OR_RETURN(std::unique_ptr<StreamSlot> slot, streams_.Acquire(read_role));
  std::shared_ptr<StreamWatchdog::Stream> watch =
      streams_.Watch([ctx](const absl::Status&) { ctx->TryCancel(); });
  v1::FetchSnapshotResponse first;
  ToProto(r.entry, first.mutable_entry());
  first.mutable_entry()->set_location("remote");
  first.mutable_entry()->set_cluster(r.object.cluster);
  first.mutable_entry()->set_encrypted(true);
  if (!writer->Write(first)) return Interrupted(*watch);
  watch->Touch(0);
  ChunkSink<v1::FetchSnapshotResponse> sink(ctx, writer, chunk, watch.get(), bytes);
  // The client checks the whole file against the hash recorded at upload.
  absl::Status s = job_->remote()->FetchObject(r, req.offset(), &sink).status();
  if (s.ok()) s = sink.Flush();
  if (!s.ok()) return sink.broken() ? Interrupted(*watch) : s;
  v1::FetchSnapshotResponse last;
  last.mutable_trailer()->set_archive_size(r.object.archive_size);
  last.mutable_trailer()->set_checksum(ChecksumString(d));
  if (!writer->Write(last)) return Interrupted(*watch);
  return absl::OkStatus();
}

grpc::Status SnapshotServiceImpl::FetchSnapshot(
    grpc::ServerContext* ctx, const v1::FetchSnapshotRequest* req,
    grpc::ServerWriter<v1::FetchSnapshotResponse>* writer) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  return rpc.Done(Fetch(ctx, *req, writer, &rpc.bytes, rpc.read_role()));
}

absl::Status SnapshotServiceImpl::Fetch(
    grpc::ServerContext* ctx, const v1::FetchSnapshotRequest& req,
    grpc::ServerWriterInterface<v1::FetchSnapshotResponse>* writer, uint64_t* bytes,
    bool read_role) {
  SA_RETURN_IF_ERROR(NeedCatalog());
  SA_ASSIGN_OR_RETURN(const uint32_t chunk, ChunkSize(req.chunk_size()));
  RemoteSync* remote = job_->remote();
  if (remote != nullptr && !remote->CanDecrypt() && !job_->catalog()->Get(req.id()).ok()) {
    // Encrypted in the bucket and no key here: the object as it is.
    absl::StatusOr<RemoteEntry> r = remote->Find(req.id());
    if (r.ok() && r->object.encrypted) return FetchSealed(ctx, req, *r, chunk, writer, bytes, read_role);
  }
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Catalog::Pin> pin, job_->catalog()->Acquire(req.id()));
  const CatalogEntry& e = pin->entry();
  if (req.offset() > e.archive_size) {
    return absl::OutOfRangeError(absl::StrFormat(
        "offset %d is past the end of snapshot %s (%d bytes)", req.offset(), e.id,
        e.archive_size));
  }
  SA_ASSIGN_OR_RETURN(std::unique_ptr<StreamSlot> slot, streams_.Acquire(read_role));
  std::shared_ptr<StreamWatchdog::Stream> watch =
      streams_.Watch([ctx](const absl::Status&) { ctx->TryCancel(); });
  v1::FetchSnapshotResponse first;
  ToProto(e, first.mutable_entry());
  if (!writer->Write(first)) return Interrupted(*watch);
  watch->Touch(0);
  // The whole file is hashed (the bytes before the offset too), so that the
  // trailer covers the whole archive and a file that changed on disk since
  // it was stored is caught.
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, pin->Open());
  Sha256 hash;
  std::string buf(chunk, '\0');
  uint64_t at = 0;
  for (;;) {
    SA_ASSIGN_OR_RETURN(size_t n, src->Read(&buf[0], buf.size()));
    if (n == 0) break;
    absl::string_view data(buf.data(), n);
    hash.Update(data);
    if (at + n > req.offset()) {
      const size_t skip = at < req.offset() ? static_cast<size_t>(req.offset() - at) : 0;
      v1::FetchSnapshotResponse msg;
      msg.set_chunk(std::string(data.substr(skip)));
      if (!writer->Write(msg)) return Interrupted(*watch);
      *bytes += n - skip;
      watch->Touch(n - skip);
    }
    at += n;
  }
  const std::string checksum = ChecksumString(hash.Finish());
  if (at != e.archive_size || checksum != e.checksum) {
    return absl::DataLossError(absl::StrCat(
        "snapshot ", e.id, " changed on disk since it was stored (", at, " bytes, ", checksum,
        "; the catalog recorded ", e.archive_size, " bytes, ", e.checksum,
        "): do not use what was sent"));
  }
  v1::FetchSnapshotResponse last;
  last.mutable_trailer()->set_archive_size(at);
  last.mutable_trailer()->set_checksum(checksum);
  if (!writer->Write(last)) return Interrupted(*watch);
  return absl::OkStatus();
}

grpc::Status SnapshotServiceImpl::CreateSnapshot(grpc::ServerContext* ctx,
                                                 const v1::CreateSnapshotRequest*,
                                                 v1::CatalogEntry* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  if (absl::Status s = NeedCatalog(); !s.ok()) return rpc.Done(s);
  absl::StatusOr<CatalogEntry> e =
      job_->Create(SnapshotOrigin::kOnDemand, absl::Now() + options_.restore_timeout);
  if (!e.ok()) return rpc.Done(e.status());
  ToProto(*e, resp);
  rpc.bytes = e->archive_size;
  return rpc.Done(absl::OkStatus());
}

grpc::Status SnapshotServiceImpl::DeleteSnapshot(grpc::ServerContext* ctx,
                                                 const v1::DeleteSnapshotRequest* req,
                                                 v1::DeleteSnapshotResponse*) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  if (absl::Status s = NeedCatalog(); !s.ok()) return rpc.Done(s);
  return rpc.Done(job_->Delete(req->id()));
}

// --- KeyValueService --------------------------------------------------------

KeyValueServiceImpl::KeyValueServiceImpl(KeyValueStore* store,
                                         ServiceOptions options)
    : store_(store), options_(std::move(options)) {}

grpc::Status KeyValueServiceImpl::Put(grpc::ServerContext* ctx,
                                      const v1::PutRequest* req,
                                      v1::PutResponse* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  rpc.bytes = req->key().size() + req->value().size();
  auto index = store_->Put(req->key(), req->value(),
                           absl::Now() + options_.raft_timeout);
  if (!index.ok()) return rpc.Done(index.status());
  resp->set_index(*index);
  return rpc.Done(absl::OkStatus());
}

grpc::Status KeyValueServiceImpl::Get(grpc::ServerContext* ctx,
                                      const v1::GetRequest* req,
                                      v1::GetResponse* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  auto v = store_->Get(req->key(), req->allow_stale(),
                       absl::Now() + options_.raft_timeout);
  if (!v.ok()) return rpc.Done(v.status());
  resp->set_found(v->has_value());
  if (v->has_value()) {
    rpc.bytes = (*v)->size();
    resp->set_value(std::move(**v));
  }
  return rpc.Done(absl::OkStatus());
}

grpc::Status KeyValueServiceImpl::Delete(grpc::ServerContext* ctx,
                                         const v1::DeleteRequest* req,
                                         v1::DeleteResponse* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  auto index = store_->Delete(req->key(), absl::Now() + options_.raft_timeout);
  if (!index.ok()) return rpc.Done(index.status());
  resp->set_index(*index);
  return rpc.Done(absl::OkStatus());
}

grpc::Status KeyValueServiceImpl::List(grpc::ServerContext* ctx,
                                       const v1::ListRequest* req,
                                       v1::ListResponse* resp) {
  Rpc rpc(ctx, options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  ListOptions lo;
  lo.limit = req->limit() == 0 ? kDefaultListLimit : req->limit();
  if (lo.limit > kMaxListLimit) {
    return rpc.Done(absl::InvalidArgumentError(absl::StrFormat(
        "limit must be at most %d, got %d", kMaxListLimit, lo.limit)));
  }
  lo.prefix = req->prefix();
  lo.start_after = req->page_token();
  lo.max_bytes = kListPageBytes;
  lo.allow_stale = req->allow_stale();
  auto page = store_->List(lo, absl::Now() + options_.raft_timeout);
  if (!page.ok()) return rpc.Done(page.status());
  for (auto& [k, v] : page->entries) {
    rpc.bytes += k.size() + v.size();
    v1::KeyValue* kv = resp->add_entries();
    kv->set_key(std::move(k));
    kv->set_value(std::move(v));
  }
  if (page->more && resp->entries_size() > 0) {
    resp->set_next_page_token(resp->entries(resp->entries_size() - 1).key());
  }
  return rpc.Done(absl::OkStatus());
}

}  // namespace snapshot
