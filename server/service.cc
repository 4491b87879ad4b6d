#include "server/service.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "archive/parallel_gzip.h"
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
  RpcLog(const grpc::ServerContextBase* ctx, const char* method, bool enabled)
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
  const grpc::ServerContextBase* ctx_;
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

grpc::Status Authorize(const ServiceOptions& o,
                       const grpc::ServerContextBase& ctx,
                       Permission need, const char* method) {
  return o.auth ? o.auth->Check(ctx, need, method) : grpc::Status::OK;
}

grpc::Status TooManyStreams(const ServiceOptions& o) {
  return Error(grpc::StatusCode::RESOURCE_EXHAUSTED,
               absl::StrFormat("already serving %d snapshot streams (limit "
                               "--max-streams); retry later",
                               o.max_concurrent_streams));
}

// Why a stream ended early: stopped by the watchdog (idle, shutdown), or
// cancelled by the client.
grpc::Status Interrupted(const IdleWatchdog::Stream& watch) {
  absl::Status why = watch.why();
  if (!why.ok()) return ToGrpcStatus(why);
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

void IdleWatchdog::Stream::Disarm() {
  std::lock_guard<std::mutex> l(mu_);
  armed_ = false;
}

absl::Status IdleWatchdog::Stream::why() const {
  std::lock_guard<std::mutex> l(mu_);
  return why_;
}

void IdleWatchdog::Stream::Stop(const absl::Status& why) {
  // Under the lock, so that Disarm() returns only once no stop is running.
  std::lock_guard<std::mutex> l(mu_);
  if (!armed_ || !why_.ok()) return;
  why_ = why;
  stop_(why);
}

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
    std::function<void(const absl::Status&)> stop) {
  auto s = std::make_shared<Stream>();
  s->stop_ = std::move(stop);
  s->Touch();
  std::lock_guard<std::mutex> l(mu_);
  streams_.push_back(s);
  return s;
}

void IdleWatchdog::StopAll(const absl::Status& why) {
  std::vector<std::shared_ptr<Stream>> live;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& weak : streams_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Stop(why);
}

void IdleWatchdog::Run() {
  const absl::Duration tick = std::min(absl::Milliseconds(250), timeout_ / 4);
  const absl::Status idle = absl::ResourceExhaustedError(absl::StrFormat(
      "no data moved for %s; the transfer was abandoned (limit "
      "--idle-timeout)",
      absl::FormatDuration(timeout_)));
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, absl::ToChronoNanoseconds(tick));
    const int64_t now = absl::GetCurrentTimeNanos();
    std::vector<std::shared_ptr<Stream>> idle_streams;
    for (auto it = streams_.begin(); it != streams_.end();) {
      std::shared_ptr<Stream> s = it->lock();
      if (!s) {
        it = streams_.erase(it);
        continue;
      }
      if (now - s->last_ns_ > absl::ToInt64Nanoseconds(timeout_)) {
        idle_streams.push_back(std::move(s));
      }
      ++it;
    }
    l.unlock();
    for (auto& s : idle_streams) s->Stop(idle);
    l.lock();
  }
}

// --- Upload RPCs (callback API) ---------------------------------------------

namespace {

// What an upload RPC does with the messages it receives, apart from the
// transport: OnMessage for each (fast), OnEnd once the client has sent
// everything (may be slow: it runs on its own thread).
template <typename Req>
class UploadSession {
 public:
  virtual ~UploadSession() = default;
  virtual grpc::Status OnMessage(const Req& req, uint64_t* bytes) = 0;
  virtual grpc::Status OnEnd() = 0;
};

// Drives an UploadSession from gRPC's callback API. Deletes itself when the
// call is done. Ends the call with RESOURCE_EXHAUSTED when the client stays
// idle (the watchdog), UNAVAILABLE at shutdown, CANCELLED when cancelled.
// The session (e.g. a restore's spool file) and `on_finish` (e.g. the
// one-restore-at-a-time flag) are released before the client hears the
// final status, so that it can start the next call at once.
template <typename Req>
class UploadReactor : public grpc::ServerReadReactor<Req> {
 public:
  UploadReactor(grpc::CallbackServerContext* ctx, const char* method,
                const ServiceOptions& options, IdleWatchdog* watchdog,
                grpc::Status start, std::unique_ptr<UploadSession<Req>> session,
                std::function<void()> on_finish)
      : ctx_(ctx), log_(ctx, method, options.log_rpcs),
        session_(std::move(session)), on_finish_(std::move(on_finish)) {
    if (!start.ok()) {
      FinishOnce(start);
      return;
    }
    watch_ = watchdog->Watch([this](const absl::Status& why) {
      FinishOnce(ToGrpcStatus(why));
    });
    this->StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client finished sending, or the call was cancelled or stopped.
      if (Finished()) return;
      if (ctx_->IsCancelled()) {
        FinishOnce(Error(grpc::StatusCode::CANCELLED, "the call was cancelled"));
        return;
      }
      // Nothing moves from here on (verifying the end, applying): the idle
      // limit and the shutdown stop no longer apply. The reactor lives until
      // Finish() is called, at the end of this thread.
      watch_->Disarm();
      std::thread([this] {
        grpc::Status s;
        {
          std::lock_guard<std::mutex> l(session_mu_);
          s = session_->OnEnd();
        }
        FinishOnce(s);
      }).detach();
      return;
    }
    watch_->Touch();
    grpc::Status s;
    {
      std::lock_guard<std::mutex> l(session_mu_);
      if (!session_) return;  // finished meanwhile (idle, shutdown)
      s = session_->OnMessage(req_, &log_.bytes);
    }
    if (!s.ok()) {
      FinishOnce(s);
      return;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!finished_) this->StartRead(&req_);
  }

  void OnDone() override {
    if (watch_) watch_->Disarm();
    log_.Done(final_);
    delete this;
  }

 private:
  bool Finished() {
    std::lock_guard<std::mutex> l(mu_);
    return finished_;
  }
  // Finish() may lead to OnDone() (and `delete this`) on another thread at
  // once: nothing may touch the reactor after it.
  void FinishOnce(grpc::Status s) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (finished_) return;
      finished_ = true;
      final_ = s;
    }
    {
      std::lock_guard<std::mutex> l(session_mu_);
      session_.reset();
    }
    if (on_finish_) on_finish_();
    this->Finish(s);
  }

  grpc::CallbackServerContext* ctx_;
  RpcLog log_;
  std::mutex session_mu_;  // held while the session is in use
  std::unique_ptr<UploadSession<Req>> session_;
  std::function<void()> on_finish_;
  std::shared_ptr<IdleWatchdog::Stream> watch_;
  Req req_;
  std::mutex mu_;
  bool finished_ = false;
  grpc::Status final_;
};

class VerifySession : public UploadSession<v1::VerifySnapshotRequest> {
 public:
  VerifySession(const ServiceOptions& o, v1::VerifySnapshotResponse* resp)
      : reader_(/*state_sink=*/nullptr, Options(o)), resp_(resp) {}

  grpc::Status OnMessage(const v1::VerifySnapshotRequest& req,
                         uint64_t* bytes) override {
    *bytes += req.chunk().size();
    return ToGrpcStatus(reader_.Feed(req.chunk()));
  }

  grpc::Status OnEnd() override {
    absl::StatusOr<ArchiveInfo> info = reader_.Finish();
    if (!info.ok()) return ToGrpcStatus(info.status());
    ToProto(info->meta, false, resp_->mutable_metadata());
    resp_->set_archive_size(info->archive_size);
    resp_->set_checksum(info->checksum);
    resp_->set_state_sha256(HexLower(info->state_sha256));
    return grpc::Status::OK;
  }

 private:
  static ReaderOptions Options(const ServiceOptions& o) {
    ReaderOptions ro;
    ro.max_archive_bytes = o.max_archive_bytes;
    return ro;
  }
  ArchiveReader reader_;
  v1::VerifySnapshotResponse* resp_;
};

class RestoreSession : public UploadSession<v1::RestoreSnapshotRequest> {
 public:
  RestoreSession(RaftNode* node, const ServiceOptions& o,
                 std::unique_ptr<RestoreSpool> spool,
                 v1::RestoreSnapshotResponse* resp)
      : node_(node), options_(o), spool_(std::move(spool)), resp_(resp) {}

  grpc::Status OnMessage(const v1::RestoreSnapshotRequest& req,
                         uint64_t* bytes) override {
    const bool first = first_;
    first_ = false;
    if (req.has_options()) {
      if (!first) {
        return Error(grpc::StatusCode::INVALID_ARGUMENT,
                     "options may only come in the first message");
      }
      expected_checksum_ = req.options().expected_checksum();
      return grpc::Status::OK;
    }
    *bytes += req.chunk().size();
    return ToGrpcStatus(spool_->Feed(req.chunk()));
  }

  grpc::Status OnEnd() override {
    absl::StatusOr<ArchiveInfo> info = spool_->Finish();
    if (!info.ok()) return ToGrpcStatus(info.status());
    if (!expected_checksum_.empty() && expected_checksum_ != info->checksum) {
      return Error(grpc::StatusCode::DATA_LOSS,
                   absl::StrCat("the archive's checksum is ", info->checksum,
                                " but the client expected ", expected_checksum_,
                                "; nothing was restored"));
    }
    absl::StatusOr<RestoreResult> result =
        spool_->Apply(node_, absl::Now() + options_.restore_timeout);
    if (!result.ok()) return ToGrpcStatus(result.status());
    ToProto(info->meta, false, resp_->mutable_metadata());
    resp_->set_archive_size(info->archive_size);
    resp_->set_checksum(info->checksum);
    resp_->set_restored_index(result->index);
    return grpc::Status::OK;
  }

 private:
  RaftNode* node_;
  const ServiceOptions& options_;
  std::unique_ptr<RestoreSpool> spool_;
  v1::RestoreSnapshotResponse* resp_;
  bool first_ = true;
  std::string expected_checksum_;
};

}  // namespace

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
  int threads = options_.compress_threads > 0
                    ? options_.compress_threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  opts.writer.compressor =
      ParallelGzipCompressor(opts.writer.compression_level, threads);
  StreamSlot slot(&streams_, options_.max_concurrent_streams);
  if (!slot.ok()) {
    return TooManyStreams(options_);
  }
  std::shared_ptr<IdleWatchdog::Stream> watch =
      watchdog_.Watch([ctx](const absl::Status&) { ctx->TryCancel(); });
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
    if (sink.broken() || absl::IsCancelled(s)) return Interrupted(*watch);
    return ToGrpcStatus(s);
  }
  v1::TakeSnapshotResponse last;
  last.mutable_trailer()->set_archive_size(info->archive_size);
  last.mutable_trailer()->set_checksum(info->checksum);
  if (!writer->Write(last)) return Interrupted(*watch);
  return grpc::Status::OK;
}

grpc::ServerReadReactor<v1::VerifySnapshotRequest>*
SnapshotServiceImpl::VerifySnapshot(grpc::CallbackServerContext* ctx,
                                    v1::VerifySnapshotResponse* resp) {
  grpc::Status start =
      Authorize(options_, *ctx, Permission::kRead, "VerifySnapshot");
  auto slot = std::make_shared<StreamSlot>(&streams_,
                                           options_.max_concurrent_streams);
  if (start.ok() && !slot->ok()) start = TooManyStreams(options_);
  return new UploadReactor<v1::VerifySnapshotRequest>(
      ctx, "VerifySnapshot", options_, &watchdog_, start,
      std::make_unique<VerifySession>(options_, resp), [slot] {});
}

grpc::ServerReadReactor<v1::RestoreSnapshotRequest>*
SnapshotServiceImpl::RestoreSnapshot(grpc::CallbackServerContext* ctx,
                                     v1::RestoreSnapshotResponse* resp) {
  using Reactor = UploadReactor<v1::RestoreSnapshotRequest>;
  auto reject = [&](grpc::Status s) {
    return new Reactor(ctx, "RestoreSnapshot", options_, &watchdog_, s,
                       nullptr, nullptr);
  };
  grpc::Status auth =
      Authorize(options_, *ctx, Permission::kAdmin, "RestoreSnapshot");
  if (!auth.ok()) return reject(auth);
  auto slot = std::make_shared<StreamSlot>(&streams_,
                                           options_.max_concurrent_streams);
  if (!slot->ok()) return reject(TooManyStreams(options_));
  bool expected = false;
  if (!restoring_.compare_exchange_strong(expected, true)) {
    return reject(Error(grpc::StatusCode::FAILED_PRECONDITION,
                        "another restore is in progress on this agent; wait "
                        "for it to finish"));
  }
  std::function<void()> done = [this, slot] { restoring_ = false; };
  // Refuse on a follower before receiving what may be gigabytes.
  absl::Status leader = node_->CheckLeader(absl::Now() + options_.raft_timeout);
  ReaderOptions ro;
  ro.max_archive_bytes = options_.max_archive_bytes;
  ro.max_state_bytes = options_.max_state_bytes;
  absl::StatusOr<std::unique_ptr<RestoreSpool>> spool =
      leader.ok() ? RestoreSpool::Create(options_.spool_dir, ro)
                  : absl::StatusOr<std::unique_ptr<RestoreSpool>>(leader);
  if (!spool.ok()) {
    done();
    return reject(ToGrpcStatus(spool.status()));
  }
  return new Reactor(
      ctx, "RestoreSnapshot", options_, &watchdog_, grpc::Status::OK,
      std::make_unique<RestoreSession>(node_, options_, std::move(*spool), resp),
      std::move(done));
}

void SnapshotServiceImpl::StopStreams() {
  watchdog_.StopAll(absl::UnavailableError(
      "the agent is shutting down; retry against it when it is back, or "
      "against another node"));
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
