#include "server/service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "server/metrics.h"
#include "server/rpc.h"

namespace snapshot {
namespace {

constexpr uint32_t kMinChunk = 16 << 10;
constexpr uint32_t kMaxChunk = 4 << 20;
constexpr uint32_t kDefaultChunk = 1 << 20;
constexpr uint32_t kDefaultListLimit = 1000;
constexpr uint32_t kMaxListLimit = 10000;
// Keys and values per List response (plus at most one entry): far below
// gRPC's default 4 MiB receive limit of every client.
constexpr uint64_t kListPageBytes = 1 << 20;

// A place among the concurrent snapshot streams.
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

absl::Status TooManyStreams(const ServiceOptions& o) {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "already serving %d snapshot streams (limit --max-streams); retry later",
      o.max_concurrent_streams));
}

// Why a stream ended early: stopped by the watchdog (idle, too slow,
// shutdown), or cancelled by the client.
absl::Status Interrupted(const StreamWatchdog::Stream& watch) {
  absl::Status why = watch.why();
  if (!why.ok()) return why;
  return absl::CancelledError("the call was cancelled");
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

// Turns the archive byte stream into chunk messages of a fixed size.
class ChunkSink : public ByteSink {
 public:
  ChunkSink(grpc::ServerContext* ctx,
            grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
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
  grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer_;
  size_t chunk_size_;
  StreamWatchdog::Stream* watch_;
  uint64_t* bytes_;
  std::string buf_;
  v1::TakeSnapshotResponse resp_;
  bool broken_ = false;
};

}  // namespace

// --- StreamWatchdog ---------------------------------------------------------

void StreamWatchdog::Stream::Disarm() {
  std::lock_guard<std::mutex> l(mu_);
  armed_ = false;
}

absl::Status StreamWatchdog::Stream::why() const {
  std::lock_guard<std::mutex> l(mu_);
  return why_;
}

void StreamWatchdog::Stream::Stop(const absl::Status& why) {
  // Under the lock, so that Disarm() returns only once no stop is running.
  std::lock_guard<std::mutex> l(mu_);
  if (!armed_ || !why_.ok()) return;
  why_ = why;
  stop_(why);
}

StreamWatchdog::StreamWatchdog(absl::Duration window, uint64_t min_rate)
    : window_(window), min_rate_(min_rate), thread_([this] { Run(); }) {}

StreamWatchdog::~StreamWatchdog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<StreamWatchdog::Stream> StreamWatchdog::Watch(
    std::function<void(const absl::Status&)> stop) {
  auto s = std::make_shared<Stream>();
  s->stop_ = std::move(stop);
  s->Touch(0);
  s->window_start_ns_ = absl::GetCurrentTimeNanos();
  std::lock_guard<std::mutex> l(mu_);
  streams_.push_back(s);
  return s;
}

void StreamWatchdog::StopAll(const absl::Status& why) {
  std::vector<std::shared_ptr<Stream>> live;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& weak : streams_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Stop(why);
}

void StreamWatchdog::Run() {
  const absl::Duration tick = std::min(absl::Milliseconds(250), window_ / 4);
  const int64_t window_ns = absl::ToInt64Nanoseconds(window_);
  const uint64_t window_min_bytes = static_cast<uint64_t>(
      static_cast<double>(min_rate_) * absl::ToDoubleSeconds(window_));
  const absl::Status idle = absl::ResourceExhaustedError(absl::StrFormat(
      "no data moved for %s; the transfer was abandoned (limit "
      "--idle-timeout)",
      absl::FormatDuration(window_)));
  const absl::Status slow = absl::ResourceExhaustedError(absl::StrFormat(
      "fewer than %d bytes moved in %s, slower than the minimum of %d "
      "bytes/s; the transfer was abandoned (limit --min-transfer-rate)",
      window_min_bytes, absl::FormatDuration(window_), min_rate_));
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, absl::ToChronoNanoseconds(tick));
    const int64_t now = absl::GetCurrentTimeNanos();
    std::vector<std::pair<std::shared_ptr<Stream>, absl::Status>> to_stop;
    for (auto it = streams_.begin(); it != streams_.end();) {
      std::shared_ptr<Stream> s = it->lock();
      if (!s) {
        it = streams_.erase(it);
        continue;
      }
      if (now - s->last_ns_ > window_ns) {
        to_stop.emplace_back(std::move(s), idle);
      } else if (now - s->window_start_ns_ >= window_ns) {
        const uint64_t moved = s->window_bytes_.exchange(0);
        s->window_start_ns_ = now;
        if (moved < window_min_bytes) to_stop.emplace_back(std::move(s), slow);
      }
      ++it;
    }
    l.unlock();
    for (auto& [s, why] : to_stop) s->Stop(why);
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
  virtual absl::Status OnMessage(const Req& req, uint64_t* bytes) = 0;
  virtual absl::Status OnEnd() = 0;
};

// Drives an UploadSession from gRPC's callback API. Deletes itself when the
// call is done. Ends the call with RESOURCE_EXHAUSTED when the client stays
// idle or too slow (the watchdog), UNAVAILABLE at shutdown, CANCELLED when
// cancelled. The session (e.g. a restore's spool and the restore slot) and
// the stream slot are released before the client hears the final status, so
// that it can start its next call at once.
template <typename Req>
class UploadReactor : public grpc::ServerReadReactor<Req> {
 public:
  // `rpc` has been authorized already; `start` not OK ends the call at once.
  UploadReactor(grpc::CallbackServerContext* ctx, std::unique_ptr<Rpc> rpc,
                StreamWatchdog* watchdog, absl::Status start,
                std::unique_ptr<StreamSlot> slot,
                std::unique_ptr<UploadSession<Req>> session)
      : ctx_(ctx), rpc_(std::move(rpc)), slot_(std::move(slot)),
        session_(std::move(session)) {
    if (!start.ok()) {
      FinishOnce(start);
      return;
    }
    watch_ = watchdog->Watch([this](const absl::Status& why) { FinishOnce(why); });
    this->StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client finished sending, or the call was cancelled or stopped.
      if (Finished()) return;
      if (ctx_->IsCancelled()) {
        FinishOnce(absl::CancelledError("the call was cancelled"));
        return;
      }
      // Nothing moves from here on (verifying the end, applying): the
      // transfer limits and the shutdown stop no longer apply. The reactor
      // lives until Finish() is called, at the end of this thread.
      watch_->Disarm();
      std::thread([this] {
        absl::Status s;
        {
          std::lock_guard<std::mutex> l(session_mu_);
          s = session_->OnEnd();
        }
        FinishOnce(s);
      }).detach();
      return;
    }
    absl::Status s;
    uint64_t before = rpc_->bytes;
    {
      std::lock_guard<std::mutex> l(session_mu_);
      if (!session_) return;  // finished meanwhile (idle, shutdown)
      s = session_->OnMessage(req_, &rpc_->bytes);
    }
    watch_->Touch(rpc_->bytes - before);
    if (!s.ok()) {
      FinishOnce(s);
      return;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!finished_) this->StartRead(&req_);
  }

  void OnDone() override {
    if (watch_) watch_->Disarm();
    delete this;
  }

 private:
  bool Finished() {
    std::lock_guard<std::mutex> l(mu_);
    return finished_;
  }
  // Finish() may lead to OnDone() (and `delete this`) on another thread at
  // once: nothing may touch the reactor after it.
  void FinishOnce(const absl::Status& s) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (finished_) return;
      finished_ = true;
    }
    {
      std::lock_guard<std::mutex> l(session_mu_);
      session_.reset();
    }
    slot_.reset();
    grpc::Status final_status = rpc_->Done(s);
    this->Finish(final_status);
  }

  grpc::CallbackServerContext* ctx_;
  std::unique_ptr<Rpc> rpc_;
  std::unique_ptr<StreamSlot> slot_;
  std::mutex session_mu_;  // held while the session is in use
  std::unique_ptr<UploadSession<Req>> session_;
  std::shared_ptr<StreamWatchdog::Stream> watch_;
  Req req_;
  std::mutex mu_;
  bool finished_ = false;
};

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

class RestoreSession : public UploadSession<v1::RestoreSnapshotRequest> {
 public:
  RestoreSession(const Rpc* rpc, const ServiceOptions& o, SnapshotJob* job,
                 std::unique_ptr<RestoreSpool> spool,
                 v1::RestoreSnapshotResponse* resp)
      : rpc_(rpc), options_(o), job_(job), spool_(std::move(spool)), resp_(resp) {}

  absl::Status OnMessage(const v1::RestoreSnapshotRequest& req,
                         uint64_t* bytes) override {
    const bool first = first_;
    first_ = false;
    if (ended_) {
      return absl::InvalidArgumentError(
          "expected_checksum must be the last message; nothing may follow it");
    }
    if (stored_ && req.message_case() != v1::RestoreSnapshotRequest::kOptions) {
      return absl::InvalidArgumentError(
          "a restore of a catalog snapshot (options.catalog_id) takes no other message");
    }
    switch (req.message_case()) {
      case v1::RestoreSnapshotRequest::kOptions:
        if (!first) {
          return absl::InvalidArgumentError(
              "options may only come in the first message");
        }
        expected_ = req.options().expected_checksum();
        spool_->ExpectChecksum(expected_);
        if (!req.options().catalog_id().empty()) {
          if (job_ == nullptr) {
            return absl::FailedPreconditionError("this agent keeps no snapshot catalog");
          }
          // Pinned: not deleted (retention, DeleteSnapshot) while in use.
          SA_ASSIGN_OR_RETURN(stored_, job_->catalog()->Acquire(req.options().catalog_id()));
        }
        return absl::OkStatus();
      case v1::RestoreSnapshotRequest::kExpectedChecksum:
        ended_ = true;
        if (!expected_.empty() && expected_ != req.expected_checksum()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the first message expects checksum ", expected_,
              " but the last one ", req.expected_checksum()));
        }
        spool_->ExpectChecksum(req.expected_checksum());
        return absl::OkStatus();
      case v1::RestoreSnapshotRequest::kChunk:
        *bytes += req.chunk().size();
        return spool_->Feed(req.chunk());
      default:
        return absl::InvalidArgumentError("empty RestoreSnapshotRequest");
    }
  }

  absl::Status OnEnd() override {
    if (stored_) {
      // The stored archive goes through the same verification as an upload
      // (a file on disk may have rotted since it was written).
      SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(stored_->path()));
      std::string buf(1 << 20, '\0');
      for (;;) {
        SA_ASSIGN_OR_RETURN(size_t n, src.Read(&buf[0], buf.size()));
        if (n == 0) break;
        SA_RETURN_IF_ERROR(spool_->Feed(absl::string_view(buf.data(), n)));
      }
    }
    SA_ASSIGN_OR_RETURN(ArchiveInfo info, spool_->Finish());
    SA_RETURN_IF_ERROR(spool_->CheckEngine());
    std::string safety_id;
    if (job_ != nullptr && job_->safety_snapshot()) {
      absl::StatusOr<CatalogEntry> safety = job_->Create(
          SnapshotOrigin::kPreRestore, absl::Now() + options_.restore_timeout);
      if (!safety.ok()) {
        return absl::Status(
            safety.status().code(),
            absl::StrCat("the safety snapshot of the current state could not be stored (",
                         safety.status().message(),
                         "); nothing was restored. Free space in the catalog, or run the "
                         "agent with --no-safety-snapshot"));
      }
      safety_id = safety->id;
    }
    SA_ASSIGN_OR_RETURN(RestoreResult result,
                        spool_->Apply(absl::Now() + options_.restore_timeout));
    Metrics::Get().RestoreApplied();
    Log(LogLevel::kInfo, "restore applied",
        {{"peer", rpc_->peer()},
         {"role", rpc_->role()},
         {"snapshot_id", info.meta.id},
         {"snapshot_index", info.meta.index},
         {"checksum", info.checksum},
         {"catalog_id", stored_ ? stored_->entry().id : ""},
         {"safety_snapshot_id", safety_id},
         {"restored_index", result.index}});
    ToProto(info.meta, false, resp_->mutable_metadata());
    resp_->set_archive_size(info.archive_size);
    resp_->set_checksum(info.checksum);
    resp_->set_restored_index(result.index);
    resp_->set_safety_snapshot_id(safety_id);
    return absl::OkStatus();
  }

 private:
  const Rpc* rpc_;
  const ServiceOptions& options_;
  SnapshotJob* job_;
  std::unique_ptr<RestoreSpool> spool_;
  std::unique_ptr<Catalog::Pin> stored_;  // restore of a catalog snapshot
  v1::RestoreSnapshotResponse* resp_;
  bool first_ = true;
  bool ended_ = false;
  std::string expected_;
};

}  // namespace

// --- SnapshotService --------------------------------------------------------

SnapshotServiceImpl::SnapshotServiceImpl(RaftNode* node, Restorer* restorer,
                                         ServiceOptions options, SnapshotJob* job)
    : node_(node), restorer_(restorer), options_(std::move(options)), job_(job),
      watchdog_(options_.idle_timeout, options_.min_transfer_rate) {}

grpc::Status SnapshotServiceImpl::TakeSnapshot(
    grpc::ServerContext* ctx, const v1::TakeSnapshotRequest* req,
    grpc::ServerWriter<v1::TakeSnapshotResponse>* writer) {
  Rpc rpc(ctx, "TakeSnapshot", options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  return rpc.Done(Take(ctx, *req, writer, &rpc.bytes));
}

absl::Status SnapshotServiceImpl::Take(
    grpc::ServerContext* ctx, const v1::TakeSnapshotRequest& req,
    grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
    uint64_t* bytes) {
  uint32_t chunk = req.chunk_size() == 0 ? kDefaultChunk : req.chunk_size();
  if (chunk < kMinChunk || chunk > kMaxChunk) {
    return absl::InvalidArgumentError(
        absl::StrFormat("chunk_size must be %d to %d bytes, got %d", kMinChunk,
                        kMaxChunk, chunk));
  }
  TakeOptions opts;
  opts.snapshot.allow_stale = req.allow_stale();
  if (req.fast() && req.has_compression_level()) {
    return absl::InvalidArgumentError(
        "fast and compression_level exclude each other: ask for fast mode or "
        "for a level");
  }
  if (req.has_compression_level()) {
    opts.compression_level = req.compression_level();
  } else if (req.fast()) {
    opts.compression_level = kFastCompression;
  }
  opts.compress_threads =
      options_.compress_threads > 0
          ? options_.compress_threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  StreamSlot slot(&streams_, options_.max_concurrent_streams);
  if (!slot.ok()) return TooManyStreams(options_);
  std::shared_ptr<StreamWatchdog::Stream> watch =
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
  auto rpc = std::make_unique<Rpc>(ctx, "VerifySnapshot", options_.auth);
  absl::Status start = rpc->authorized();
  auto slot = std::make_unique<StreamSlot>(&streams_,
                                           options_.max_concurrent_streams);
  if (start.ok() && !slot->ok()) start = TooManyStreams(options_);
  return new UploadReactor<v1::VerifySnapshotRequest>(
      ctx, std::move(rpc), &watchdog_, start, std::move(slot),
      std::make_unique<VerifySession>(options_.limits, resp));
}

grpc::ServerReadReactor<v1::RestoreSnapshotRequest>*
SnapshotServiceImpl::RestoreSnapshot(grpc::CallbackServerContext* ctx,
                                     v1::RestoreSnapshotResponse* resp) {
  auto rpc = std::make_unique<Rpc>(ctx, "RestoreSnapshot", options_.auth);
  absl::Status start = rpc->authorized();
  auto slot = std::make_unique<StreamSlot>(&streams_,
                                           options_.max_concurrent_streams);
  if (start.ok() && !slot->ok()) start = TooManyStreams(options_);
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
      ctx, std::move(rpc), &watchdog_, start, std::move(slot),
      std::move(session));
}

void SnapshotServiceImpl::StopStreams() {
  watchdog_.StopAll(absl::UnavailableError(
      "the agent is shutting down; retry against it when it is back, or "
      "against another node"));
}

grpc::Status SnapshotServiceImpl::GetStatus(grpc::ServerContext* ctx,
                                            const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* resp) {
  Rpc rpc(ctx, "GetStatus", options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  absl::StatusOr<NodeStatus> st = node_->Status();
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
  Rpc rpc(ctx, "ListSnapshots", options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  if (absl::Status s = NeedCatalog(); !s.ok()) return rpc.Done(s);
  for (const CatalogEntry& e : job_->catalog()->List()) ToProto(e, resp->add_snapshots());
  resp->set_total_bytes(job_->catalog()->TotalBytes());
  return rpc.Done(absl::OkStatus());
}

grpc::Status SnapshotServiceImpl::FetchSnapshot(
    grpc::ServerContext* ctx, const v1::FetchSnapshotRequest* req,
    grpc::ServerWriter<v1::FetchSnapshotResponse>* writer) {
  Rpc rpc(ctx, "FetchSnapshot", options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  return rpc.Done(Fetch(ctx, *req, writer, &rpc.bytes));
}

absl::Status SnapshotServiceImpl::Fetch(grpc::ServerContext* ctx,
                                        const v1::FetchSnapshotRequest& req,
                                        grpc::ServerWriter<v1::FetchSnapshotResponse>* writer,
                                        uint64_t* bytes) {
  SA_RETURN_IF_ERROR(NeedCatalog());
  const uint32_t chunk = req.chunk_size() == 0 ? kDefaultChunk : req.chunk_size();
  if (chunk < kMinChunk || chunk > kMaxChunk) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "chunk_size must be %d to %d bytes, got %d", kMinChunk, kMaxChunk, chunk));
  }
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Catalog::Pin> pin, job_->catalog()->Acquire(req.id()));
  const CatalogEntry& e = pin->entry();
  if (req.offset() > e.archive_size) {
    return absl::OutOfRangeError(absl::StrFormat(
        "offset %d is past the end of snapshot %s (%d bytes)", req.offset(), e.id,
        e.archive_size));
  }
  StreamSlot slot(&streams_, options_.max_concurrent_streams);
  if (!slot.ok()) return TooManyStreams(options_);
  std::shared_ptr<StreamWatchdog::Stream> watch =
      watchdog_.Watch([ctx](const absl::Status&) { ctx->TryCancel(); });
  v1::FetchSnapshotResponse first;
  ToProto(e, first.mutable_entry());
  if (!writer->Write(first)) return Interrupted(*watch);
  watch->Touch(0);
  // The whole file is hashed (the bytes before the offset too), so that the
  // trailer covers the whole archive and a file that changed on disk since
  // it was stored is caught.
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(pin->path()));
  Sha256 hash;
  std::string buf(chunk, '\0');
  uint64_t at = 0;
  for (;;) {
    SA_ASSIGN_OR_RETURN(size_t n, src.Read(&buf[0], buf.size()));
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
  Rpc rpc(ctx, "CreateSnapshot", options_.auth);
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
  Rpc rpc(ctx, "DeleteSnapshot", options_.auth);
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
  Rpc rpc(ctx, "Put", options_.auth);
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
  Rpc rpc(ctx, "Get", options_.auth);
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
  Rpc rpc(ctx, "Delete", options_.auth);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  auto index = store_->Delete(req->key(), absl::Now() + options_.raft_timeout);
  if (!index.ok()) return rpc.Done(index.status());
  resp->set_index(*index);
  return rpc.Done(absl::OkStatus());
}

grpc::Status KeyValueServiceImpl::List(grpc::ServerContext* ctx,
                                       const v1::ListRequest* req,
                                       v1::ListResponse* resp) {
  Rpc rpc(ctx, "List", options_.auth);
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
