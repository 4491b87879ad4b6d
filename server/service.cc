#include "server/service.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/snapshot_ops.h"

namespace snapshot {
namespace {

constexpr uint32_t kMinChunk = 16 << 10;
constexpr uint32_t kMaxChunk = 4 << 20;
constexpr uint32_t kDefaultChunk = 1 << 20;
constexpr uint32_t kDefaultListLimit = 1000;
constexpr uint32_t kMaxListLimit = 10000;

grpc::Status Error(grpc::StatusCode code, std::string msg) {
  return grpc::Status(code, std::move(msg));
}

// One log line per RPC: method, peer, bytes, duration, status.
class RpcLog {
 public:
  RpcLog(const grpc::ServerContext* ctx, const char* method, bool enabled)
      : ctx_(ctx), method_(method), enabled_(enabled), start_(absl::Now()) {}

  grpc::Status Done(grpc::Status s) {
    if (enabled_) {
      std::string line = absl::StrFormat(
          "snapshot-agent: rpc=%s peer=%s bytes=%d duration_ms=%.1f status=%s",
          method_, ctx_->peer(), bytes,
          absl::ToDoubleMilliseconds(absl::Now() - start_),
          StatusName(s.error_code()));
      if (!s.ok()) absl::StrAppend(&line, " message=\"", s.error_message(), "\"");
      fprintf(stderr, "%s\n", line.c_str());
    }
    return s;
  }

  uint64_t bytes = 0;

 private:
  static const char* StatusName(grpc::StatusCode c) {
    static const char* kNames[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
        "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED"};
    int i = static_cast<int>(c);
    return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
  }
  const grpc::ServerContext* ctx_;
  const char* method_;
  bool enabled_;
  absl::Time start_;
};

// A place among the concurrent snapshot streams, held for the whole call.
class StreamSlot {
 public:
  StreamSlot(std::atomic<int>* count, int max) : count_(count) {
    ok_ = count_->fetch_add(1) < max;
  }
  ~StreamSlot() { count_->fetch_sub(1); }
  bool ok() const { return ok_; }

 private:
  std::atomic<int>* count_;
  bool ok_;
};

grpc::Status Authorize(const ServiceOptions& o, const grpc::ServerContext& ctx,
                       Permission need, const char* method) {
  return o.auth ? o.auth->Check(ctx, need, method) : grpc::Status::OK;
}

grpc::Status TooManyStreams(const ServiceOptions& o) {
  return Error(grpc::StatusCode::RESOURCE_EXHAUSTED,
               absl::StrFormat("already serving %d snapshot streams (limit "
                               "--max-streams); retry later",
                               o.max_concurrent_streams));
}

// Why a stream stopped moving: the client cancelled, or it stayed idle.
grpc::Status Interrupted(const IdleWatchdog::Stream& watch,
                         const ServiceOptions& o) {
  if (watch.timed_out()) {
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED,
                 absl::StrFormat("no data moved for %s; the transfer was "
                                 "abandoned (limit --idle-timeout)",
                                 absl::FormatDuration(o.idle_timeout)));
  }
  return Error(grpc::StatusCode::CANCELLED, "the call was cancelled");
}

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
}

// Turns the archive byte stream into chunk messages of a fixed size.
class ChunkSink : public ByteSink {
 public:
  ChunkSink(grpc::ServerContext* ctx,
            grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
            size_t chunk_size, IdleWatchdog::Stream* watch, uint64_t* bytes)
      : ctx_(ctx), writer_(writer), chunk_size_(chunk_size), watch_(watch),
        bytes_(bytes) {
    buf_.reserve(chunk_size);
  }

  absl::Status Write(absl::string_view data) override {
    while (!data.empty()) {
      size_t n = std::min(chunk_size_ - buf_.size(), data.size());
      buf_.append(data.data(), n);
      data.remove_prefix(n);
      if (buf_.size() == chunk_size_) {
        absl::Status s = Flush();
        if (!s.ok()) return s;
      }
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
    *bytes_ += chunk->size();
    chunk->swap(buf_);
    buf_.clear();
    if (!ok) return Broken();
    watch_->Touch();
    return absl::OkStatus();
  }

  // Set when the stream broke (client gone, cancelled, idle).
  bool broken() const { return broken_; }

 private:
  absl::Status Broken() {
    broken_ = true;
    return absl::CancelledError("the stream to the client broke");
  }
  grpc::ServerContext* ctx_;
  grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer_;
  size_t chunk_size_;
  IdleWatchdog::Stream* watch_;
  uint64_t* bytes_;
  std::string buf_;
  v1::TakeSnapshotResponse resp_;
  bool broken_ = false;
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

// --- IdleWatchdog -----------------------------------------------------------

IdleWatchdog::IdleWatchdog(absl::Duration timeout)
    : timeout_(timeout), thread_([this] { Run(); }) {}

IdleWatchdog::~IdleWatchdog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<IdleWatchdog::Stream> IdleWatchdog::Watch(
    grpc::ServerContext* ctx) {
  auto s = std::make_shared<Stream>();
  s->ctx_ = ctx;
  s->Touch();
  std::lock_guard<std::mutex> l(mu_);
  streams_.push_back(s);
  return s;
}

void IdleWatchdog::CancelAll() {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& weak : streams_) {
    if (std::shared_ptr<Stream> s = weak.lock()) s->ctx_->TryCancel();
  }
}

void IdleWatchdog::Run() {
  const absl::Duration tick =
      std::min(absl::Milliseconds(250), timeout_ / 4);
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, absl::ToChronoNanoseconds(tick));
    const int64_t now = absl::GetCurrentTimeNanos();
    for (auto it = streams_.begin(); it != streams_.end();) {
      std::shared_ptr<Stream> s = it->lock();
      if (!s) {
        it = streams_.erase(it);
        continue;
      }
      if (!s->timed_out_ &&
          now - s->last_ns_ > absl::ToInt64Nanoseconds(timeout_)) {
        s->timed_out_ = true;
        // Unblocks the handler's Read()/Write(); it reports why.
        s->ctx_->TryCancel();
      }
      ++it;
    }
  }
}

// --- SnapshotService --------------------------------------------------------

SnapshotServiceImpl::SnapshotServiceImpl(RaftNode* node, ServiceOptions options)
    : node_(node), options_(std::move(options)),
      watchdog_(options_.idle_timeout) {}

grpc::Status SnapshotServiceImpl::TakeSnapshot(
    grpc::ServerContext* ctx, const v1::TakeSnapshotRequest* req,
    grpc::ServerWriter<v1::TakeSnapshotResponse>* writer) {
  RpcLog log(ctx, "TakeSnapshot", options_.log_rpcs);
  return log.Done(Take(ctx, *req, writer, &log.bytes));
}

grpc::Status SnapshotServiceImpl::Take(
    grpc::ServerContext* ctx, const v1::TakeSnapshotRequest& req,
    grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
    uint64_t* bytes) {
  grpc::Status auth = Authorize(options_, *ctx, Permission::kRead, "TakeSnapshot");
  if (!auth.ok()) return auth;
  uint32_t chunk = req.chunk_size() == 0 ? kDefaultChunk : req.chunk_size();
  if (chunk < kMinChunk || chunk > kMaxChunk) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrFormat("chunk_size must be %d to %d bytes, got %d",
                                 kMinChunk, kMaxChunk, chunk));
  }
  TakeOptions opts;
  opts.snapshot.allow_stale = req.allow_stale();
  if (req.has_compression_level()) {
    if (req.compression_level() < 0 || req.compression_level() > 9) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrFormat("compression_level must be 0 to 9, got %d",
                                   req.compression_level()));
    }
    opts.writer.compression_level = req.compression_level();
  }
  StreamSlot slot(&streams_, options_.max_concurrent_streams);
  if (!slot.ok()) {
    return TooManyStreams(options_);
  }
  std::shared_ptr<IdleWatchdog::Stream> watch = watchdog_.Watch(ctx);
  ChunkSink sink(ctx, writer, chunk, watch.get(), bytes);
  absl::StatusOr<ArchiveInfo> info = TakeArchive(
      node_, opts, &sink, absl::Now() + options_.raft_timeout,
      [&](const CapturedSnapshot& snap) -> absl::Status {
        v1::TakeSnapshotResponse first;
        ToProto(snap.meta, snap.stale, first.mutable_metadata());
        if (!writer->Write(first)) {
          return absl::CancelledError("the stream to the client broke");
        }
        watch->Touch();
        return absl::OkStatus();
      });
  absl::Status s = info.ok() ? sink.Flush() : info.status();
  if (!s.ok()) {
    if (sink.broken() || absl::IsCancelled(s)) return Interrupted(*watch, options_);
    return ToGrpcStatus(s);
  }
  v1::TakeSnapshotResponse last;
  last.mutable_trailer()->set_archive_size(info->archive_size);
  last.mutable_trailer()->set_checksum(info->checksum);
  if (!writer->Write(last)) return Interrupted(*watch, options_);
  return grpc::Status::OK;
}

grpc::Status SnapshotServiceImpl::VerifySnapshot(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::VerifySnapshotRequest>* reader,
    v1::VerifySnapshotResponse* resp) {
  RpcLog log(ctx, "VerifySnapshot", options_.log_rpcs);
  return log.Done(Verify(ctx, reader, resp, &log.bytes));
}

grpc::Status SnapshotServiceImpl::Verify(
    grpc::ServerContext* ctx,
    grpc::ServerReaderInterface<v1::VerifySnapshotRequest>* reader,
    v1::VerifySnapshotResponse* resp, uint64_t* bytes) {
  grpc::Status auth = Authorize(options_, *ctx, Permission::kRead, "VerifySnapshot");
  if (!auth.ok()) return auth;
  StreamSlot slot(&streams_, options_.max_concurrent_streams);
  if (!slot.ok()) {
    return TooManyStreams(options_);
  }
  std::shared_ptr<IdleWatchdog::Stream> watch = watchdog_.Watch(ctx);
  ReaderOptions ro;
  ro.max_archive_bytes = options_.max_archive_bytes;
  ArchiveReader archive(/*state_sink=*/nullptr, ro);
  v1::VerifySnapshotRequest req;
  while (reader->Read(&req)) {
    watch->Touch();
    *bytes += req.chunk().size();
    absl::Status s = archive.Feed(req.chunk());
    if (!s.ok()) return ToGrpcStatus(s);
  }
  if (ctx->IsCancelled()) return Interrupted(*watch, options_);
  absl::StatusOr<ArchiveInfo> info = archive.Finish();
  if (!info.ok()) return ToGrpcStatus(info.status());
  ToProto(info->meta, false, resp->mutable_metadata());
  resp->set_archive_size(info->archive_size);
  resp->set_checksum(info->checksum);
  resp->set_state_sha256(HexLower(info->state_sha256));
  return grpc::Status::OK;
}

grpc::Status SnapshotServiceImpl::RestoreSnapshot(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::RestoreSnapshotRequest>* reader,
    v1::RestoreSnapshotResponse* resp) {
  RpcLog log(ctx, "RestoreSnapshot", options_.log_rpcs);
  return log.Done(Restore(ctx, reader, resp, &log.bytes));
}

grpc::Status SnapshotServiceImpl::Restore(
    grpc::ServerContext* ctx,
    grpc::ServerReaderInterface<v1::RestoreSnapshotRequest>* reader,
    v1::RestoreSnapshotResponse* resp, uint64_t* bytes) {
  grpc::Status auth =
      Authorize(options_, *ctx, Permission::kAdmin, "RestoreSnapshot");
  if (!auth.ok()) return auth;
  std::unique_lock<std::mutex> one(restore_mu_, std::try_to_lock);
  if (!one.owns_lock()) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 "another restore is in progress on this agent; wait for it "
                 "to finish");
  }
  StreamSlot slot(&streams_, options_.max_concurrent_streams);
  if (!slot.ok()) {
    return TooManyStreams(options_);
  }
  // Refuse on a follower before receiving what may be gigabytes.
  absl::Status leader = node_->CheckLeader(absl::Now() + options_.raft_timeout);
  if (!leader.ok()) return ToGrpcStatus(leader);

  std::shared_ptr<IdleWatchdog::Stream> watch = watchdog_.Watch(ctx);
  ReaderOptions ro;
  ro.max_archive_bytes = options_.max_archive_bytes;
  ro.max_state_bytes = options_.max_state_bytes;
  absl::StatusOr<std::unique_ptr<RestoreSpool>> spool =
      RestoreSpool::Create(options_.spool_dir, ro);
  if (!spool.ok()) return ToGrpcStatus(spool.status());

  std::string expected_checksum;
  v1::RestoreSnapshotRequest req;
  bool first = true;
  while (reader->Read(&req)) {
    watch->Touch();
    if (req.has_options()) {
      if (!first) {
        return Error(grpc::StatusCode::INVALID_ARGUMENT,
                     "options may only come in the first message");
      }
      expected_checksum = req.options().expected_checksum();
    } else {
      *bytes += req.chunk().size();
      absl::Status s = (*spool)->Feed(req.chunk());
      if (!s.ok()) return ToGrpcStatus(s);
    }
    first = false;
  }
  // A cancelled upload is never applied, however much of it arrived.
  if (ctx->IsCancelled()) return Interrupted(*watch, options_);
  absl::StatusOr<ArchiveInfo> info = (*spool)->Finish();
  if (!info.ok()) return ToGrpcStatus(info.status());
  if (!expected_checksum.empty() && expected_checksum != info->checksum) {
    return Error(grpc::StatusCode::DATA_LOSS,
                 absl::StrCat("the archive's checksum is ", info->checksum,
                              " but the client expected ", expected_checksum,
                              "; nothing was restored"));
  }
  absl::StatusOr<RestoreResult> result =
      (*spool)->Apply(node_, absl::Now() + options_.restore_timeout);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ToProto(info->meta, false, resp->mutable_metadata());
  resp->set_archive_size(info->archive_size);
  resp->set_checksum(info->checksum);
  resp->set_restored_index(result->index);
  return grpc::Status::OK;
}

grpc::Status SnapshotServiceImpl::GetStatus(grpc::ServerContext* ctx,
                                            const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* resp) {
  RpcLog log(ctx, "GetStatus", options_.log_rpcs);
  grpc::Status auth = Authorize(options_, *ctx, Permission::kRead, "GetStatus");
  if (!auth.ok()) return log.Done(auth);
  absl::StatusOr<NodeStatus> st = node_->Status();
  if (!st.ok()) return log.Done(ToGrpcStatus(st.status()));
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
  return log.Done(grpc::Status::OK);
}

// --- KeyValueService --------------------------------------------------------

KeyValueServiceImpl::KeyValueServiceImpl(KeyValueStore* store,
                                         ServiceOptions options)
    : store_(store), options_(std::move(options)) {}

grpc::Status KeyValueServiceImpl::Put(grpc::ServerContext* ctx,
                                      const v1::PutRequest* req,
                                      v1::PutResponse* resp) {
  RpcLog log(ctx, "Put", options_.log_rpcs);
  grpc::Status auth = Authorize(options_, *ctx, Permission::kAdmin, "Put");
  if (!auth.ok()) return log.Done(auth);
  log.bytes = req->key().size() + req->value().size();
  auto index = store_->Put(req->key(), req->value(),
                           absl::Now() + options_.raft_timeout);
  if (!index.ok()) return log.Done(ToGrpcStatus(index.status()));
  resp->set_index(*index);
  return log.Done(grpc::Status::OK);
}

grpc::Status KeyValueServiceImpl::Get(grpc::ServerContext* ctx,
                                      const v1::GetRequest* req,
                                      v1::GetResponse* resp) {
  RpcLog log(ctx, "Get", options_.log_rpcs);
  grpc::Status auth = Authorize(options_, *ctx, Permission::kRead, "Get");
  if (!auth.ok()) return log.Done(auth);
  auto v = store_->Get(req->key(), req->allow_stale(),
                       absl::Now() + options_.raft_timeout);
  if (!v.ok()) return log.Done(ToGrpcStatus(v.status()));
  resp->set_found(v->has_value());
  if (v->has_value()) {
    log.bytes = (*v)->size();
    resp->set_value(std::move(**v));
  }
  return log.Done(grpc::Status::OK);
}

grpc::Status KeyValueServiceImpl::Delete(grpc::ServerContext* ctx,
                                         const v1::DeleteRequest* req,
                                         v1::DeleteResponse* resp) {
  RpcLog log(ctx, "Delete", options_.log_rpcs);
  grpc::Status auth = Authorize(options_, *ctx, Permission::kAdmin, "Delete");
  if (!auth.ok()) return log.Done(auth);
  auto index = store_->Delete(req->key(), absl::Now() + options_.raft_timeout);
  if (!index.ok()) return log.Done(ToGrpcStatus(index.status()));
  resp->set_index(*index);
  return log.Done(grpc::Status::OK);
}

grpc::Status KeyValueServiceImpl::List(grpc::ServerContext* ctx,
                                       const v1::ListRequest* req,
                                       v1::ListResponse* resp) {
  RpcLog log(ctx, "List", options_.log_rpcs);
  grpc::Status auth = Authorize(options_, *ctx, Permission::kRead, "List");
  if (!auth.ok()) return log.Done(auth);
  uint32_t limit = req->limit() == 0 ? kDefaultListLimit : req->limit();
  if (limit > kMaxListLimit) {
    return log.Done(Error(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrFormat("limit must be at most %d, got %d",
                                          kMaxListLimit, limit)));
  }
  auto entries = store_->List(req->prefix(), limit, req->allow_stale(),
                              absl::Now() + options_.raft_timeout);
  if (!entries.ok()) return log.Done(ToGrpcStatus(entries.status()));
  for (auto& [k, v] : *entries) {
    log.bytes += k.size() + v.size();
    v1::KeyValue* kv = resp->add_entries();
    kv->set_key(std::move(k));
    kv->set_value(std::move(v));
  }
  return log.Done(grpc::Status::OK);
}

}  // namespace snapshot
