// The gRPC services of snapshot-agent: thin glue between the generated
// service classes and core/snapshot_ops.h, raft/node.h. Every absl::Status
// leaves through ToGrpcStatus(); every RPC writes one log line.
//
// Threading: gRPC's synchronous server calls the handlers from its thread
// pool, concurrently; the services hold no lock across a stream operation.
// Ownership: the RaftNode, KeyValueStore and TokenAuth are borrowed and must
// outlive the services.
#ifndef SNAPSHOT_AGENT_SERVER_SERVICE_H_
#define SNAPSHOT_AGENT_SERVER_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/snapshot/v1/snapshot.grpc.pb.h"
#include "raft/node.h"
#include "server/auth.h"

namespace snapshot {

// The one mapping from absl::Status to grpc::Status (the codes coincide).
grpc::Status ToGrpcStatus(const absl::Status& s);

struct ServiceOptions {
  // Where RestoreSnapshot spools archives (private files, removed after).
  std::string spool_dir;
  // Largest archive accepted by Verify and Restore.
  uint64_t max_archive_bytes = uint64_t{64} << 30;
  // Largest state Restore accepts (also bounded by the engine and the disk).
  uint64_t max_state_bytes = uint64_t{1} << 30;
  // Snapshot streams (Take, Verify, Restore) served at once; more are
  // refused with RESOURCE_EXHAUSTED.
  int max_concurrent_streams = 4;
  // A stream that moves no byte for this long is cancelled
  // (RESOURCE_EXHAUSTED). There is no limit on a whole transfer.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Deadline for calls into the Raft node (capture, status, key-value).
  absl::Duration raft_timeout = absl::Seconds(30);
  // Deadline for applying a verified restore to the cluster.
  absl::Duration restore_timeout = absl::Minutes(30);
  // nullptr: no authentication.
  const TokenAuth* auth = nullptr;
  // One log line per RPC on stderr.
  bool log_rpcs = true;
};

// Cancels streams that stay idle too long. One background thread.
class IdleWatchdog {
 public:
  explicit IdleWatchdog(absl::Duration timeout);
  ~IdleWatchdog();

  class Stream {
   public:
    void Touch() { last_ns_ = absl::GetCurrentTimeNanos(); }
    bool timed_out() const { return timed_out_; }

   private:
    friend class IdleWatchdog;
    grpc::ServerContext* ctx_ = nullptr;
    std::atomic<int64_t> last_ns_{0};
    std::atomic<bool> timed_out_{false};
  };
  // Watches `ctx` until the returned handle is destroyed.
  std::shared_ptr<Stream> Watch(grpc::ServerContext* ctx);
  // Cancels every watched stream now (shutdown after the grace period).
  void CancelAll();

 private:
  void Run();
  const absl::Duration timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::list<std::weak_ptr<Stream>> streams_;
  std::thread thread_;
};

class SnapshotServiceImpl final : public v1::SnapshotService::Service {
 public:
  SnapshotServiceImpl(RaftNode* node, ServiceOptions options);

  grpc::Status TakeSnapshot(
      grpc::ServerContext* ctx, const v1::TakeSnapshotRequest* req,
      grpc::ServerWriter<v1::TakeSnapshotResponse>* writer) override;
  grpc::Status VerifySnapshot(
      grpc::ServerContext* ctx,
      grpc::ServerReader<v1::VerifySnapshotRequest>* reader,
      v1::VerifySnapshotResponse* resp) override;
  grpc::Status RestoreSnapshot(
      grpc::ServerContext* ctx,
      grpc::ServerReader<v1::RestoreSnapshotRequest>* reader,
      v1::RestoreSnapshotResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx,
                         const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override;

  // Cancels every snapshot stream in progress (Take, Verify, Restore before
  // its apply); used when the shutdown grace period is over.
  void CancelStreams() { watchdog_.CancelAll(); }

  // The stream loops, written against the interfaces so that tests can
  // drive them with grpc::testing mock streams.
  grpc::Status Take(grpc::ServerContext* ctx, const v1::TakeSnapshotRequest& req,
                    grpc::ServerWriterInterface<v1::TakeSnapshotResponse>* writer,
                    uint64_t* bytes);
  grpc::Status Verify(grpc::ServerContext* ctx,
                      grpc::ServerReaderInterface<v1::VerifySnapshotRequest>* reader,
                      v1::VerifySnapshotResponse* resp, uint64_t* bytes);
  grpc::Status Restore(grpc::ServerContext* ctx,
                       grpc::ServerReaderInterface<v1::RestoreSnapshotRequest>* reader,
                       v1::RestoreSnapshotResponse* resp, uint64_t* bytes);

 private:
  RaftNode* node_;
  ServiceOptions options_;
  IdleWatchdog watchdog_;
  std::atomic<int> streams_{0};
  std::mutex restore_mu_;
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
