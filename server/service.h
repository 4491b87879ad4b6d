// The gRPC services of snapshot-agent: thin glue between the generated
// service classes and core/snapshot_ops.h, engine/node.h. Every call is
// authorized through one table (server/auth.h), every outcome is an
// absl::Status until it leaves through ToGrpcStatus(), and every RPC writes
// one log line (base/log.h) naming the caller's role.
//
// Threading: gRPC calls the handlers from its threads, concurrently. The
// synchronous handlers hold no lock across a stream operation; the upload
// reactor (server/upload.h) calls StartRead, which does not block, under its
// own mutex, so that a read cannot start after Finish. Ownership: the RaftNode,
// KeyValueStore, Restorer and Authorizer are borrowed and must outlive the
// services.
#ifndef SNAPSHOT_AGENT_SERVER_SERVICE_H_
#define SNAPSHOT_AGENT_SERVER_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/limits.h"
#include "core/snapshot_ops.h"
#include "engine/node.h"
#include "proto/snapshot/v1/snapshot.grpc.pb.h"
#include "server/auth.h"
#include "server/rpc.h"
#include "core/snapshot_job.h"
#include "server/streams.h"
#include "server/upload.h"

namespace snapshot {

struct ServiceOptions {
  // The agent's limits (core/limits.h): Take, Verify and, through the
  // Restorer, Restore.
  Limits limits;
  // Snapshot streams (Take, Verify, Restore) served at once; more are
  // refused with RESOURCE_EXHAUSTED.
  int max_concurrent_streams = 4;
  // A stream that moves no message for this long is ended
  // (RESOURCE_EXHAUSTED).
  absl::Duration idle_timeout = absl::Seconds(60);
  // A stream that moves fewer than min_transfer_rate × idle_timeout bytes in
  // any window of idle_timeout is ended (RESOURCE_EXHAUSTED), so that a
  // client trickling bytes cannot hold a stream slot or the restore slot
  // forever. Bytes count when a whole message has moved. 0: no minimum.
  uint64_t min_transfer_rate = 64 << 10;
  // Threads compressing a TakeSnapshot archive (parallel gzip members);
  // 0 = as many as the machine has cores.
  int compress_threads = 0;
  // Deadline for calls into the Raft node (capture, status, key-value).
  absl::Duration raft_timeout = absl::Seconds(30);
  // Deadline for applying a verified restore to the cluster.
  absl::Duration restore_timeout = absl::Minutes(30);
  // nullptr: no authentication (every caller is "anonymous" with every
  // right).
  const Authorizer* auth = nullptr;
};

// TakeSnapshot runs on gRPC's synchronous API; VerifySnapshot and
// RestoreSnapshot on the callback API, so that an idle upload can be ended
// with RESOURCE_EXHAUSTED (a synchronous Read() cannot time out).
using SnapshotServiceBase = v1::SnapshotService::WithCallbackMethod_VerifySnapshot<
    v1::SnapshotService::WithCallbackMethod_RestoreSnapshot<
        v1::SnapshotService::Service>>;

class SnapshotServiceImpl final : public SnapshotServiceBase {
 public:
  // `job` (the catalog, the safety snapshot) may be null: the catalog RPCs
  // then answer FAILED_PRECONDITION and restores take no safety snapshot.
  SnapshotServiceImpl(RaftNode* node, Restorer* restorer,
                      ServiceOptions options, SnapshotJob* job = nullptr);
  // Waits (up to a minute) for upload calls still running: call after the
  // server has shut down.
  ~SnapshotServiceImpl() override;

  grpc::Status TakeSnapshot(
      grpc::ServerContext* ctx, const v1::TakeSnapshotRequest* req,
      grpc::ServerWriter<v1::TakeSnapshotResponse>* writer) override;
  grpc::ServerReadReactor<v1::VerifySnapshotRequest>* VerifySnapshot(
      grpc::CallbackServerContext* ctx,
      v1::VerifySnapshotResponse* resp) override;
  grpc::ServerReadReactor<v1::RestoreSnapshotRequest>* RestoreSnapshot(
      grpc::CallbackServerContext* ctx,
      v1::RestoreSnapshotResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx,
                         const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override;
  grpc::Status ListSnapshots(grpc::ServerContext* ctx,
                             const v1::ListSnapshotsRequest* req,
                             v1::ListSnapshotsResponse* resp) override;
  grpc::Status FetchSnapshot(
      grpc::ServerContext* ctx, const v1::FetchSnapshotRequest* req,
      grpc::ServerWriter<v1::FetchSnapshotResponse>* writer) override;
  grpc::Status CreateSnapshot(grpc::ServerContext* ctx,
                              const v1::CreateSnapshotRequest* req,
                              v1::CatalogEntry* resp) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext* ctx,
                              const v1::DeleteSnapshotRequest* req,
                              v1::DeleteSnapshotResponse* resp) override;

  // The TakeSnapshot stream loop, written against the interface so that
  // tests can drive it with grpc::testing mock streams. `read_role`: the
  // caller has the read role (its stream takes a slot of the read share).
  absl::Status Take(grpc::ServerContext* ctx,
                    const v1::TakeSnapshotRequest& req,
                    grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
                    uint64_t* bytes, bool read_role = false);
  // A snapshot encrypted in the bucket, which this agent cannot open: the
  // object as it is, from the request's offset.
  absl::Status FetchSealed(grpc::ServerContext* ctx, const v1::FetchSnapshotRequest& req,
                           const RemoteEntry& r, uint32_t chunk,
                           grpc::ServerWriterInterface<v1::FetchSnapshotResponse>* writer,
                           uint64_t* bytes, bool read_role);
  // The FetchSnapshot stream loop, likewise.
  absl::Status Fetch(grpc::ServerContext* ctx, const v1::FetchSnapshotRequest& req,
                     grpc::ServerWriterInterface<v1::FetchSnapshotResponse>* writer,
                     uint64_t* bytes, bool read_role = false);

  // Ends every snapshot stream in progress with UNAVAILABLE (a restore
  // already applying is left to finish); for the end of the shutdown grace
  // period.
  void StopStreams();
  // The agent's stream limits, for its other streaming services (the etcd
  // restore's Prepare between agents).
  StreamLimits* stream_limits() { return &streams_; }

 private:
  absl::Status NeedCatalog() const;

  RaftNode* node_;
  Restorer* restorer_;
  ServiceOptions options_;
  SnapshotJob* job_;
  StreamLimits streams_;
  UploadWorkers workers_;  // after streams_: its reactors use them
};

class KeyValueServiceImpl final : public v1::KeyValueService::Service {
 public:
  KeyValueServiceImpl(KeyValueStore* store, ServiceOptions options);
  grpc::Status Put(grpc::ServerContext* ctx, const v1::PutRequest* req,
                   v1::PutResponse* resp) override;
  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                   v1::GetResponse* resp) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const v1::DeleteRequest* req,
                      v1::DeleteResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const v1::ListRequest* req,
                    v1::ListResponse* resp) override;

 private:
  KeyValueStore* store_;
  ServiceOptions options_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_SERVICE_H_
