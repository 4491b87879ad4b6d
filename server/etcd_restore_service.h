// The agent-to-agent steps of an etcd cluster restore (snapshot.v1
// EtcdRestoreService): thin glue over etcd/cluster_restore.h. Every call
// needs the admin role; every outcome leaves through ToGrpcStatus and one
// log line.
//
// Threading: gRPC's synchronous server calls the handlers concurrently.
// Ownership: the ClusterRestore and Authorizer are borrowed.
#ifndef SNAPSHOT_AGENT_SERVER_ETCD_RESTORE_SERVICE_H_
#define SNAPSHOT_AGENT_SERVER_ETCD_RESTORE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "etcd/cluster_restore.h"
#include "proto/snapshot/v1/snapshot.grpc.pb.h"
#include "server/auth.h"
#include "server/streams.h"

namespace snapshot {

class EtcdRestoreServiceImpl final : public v1::EtcdRestoreService::Service {
 public:
  // `streams`: the agent's stream limits, which a Prepare (an archive's
  // state from the coordinating agent) lives under like a client's upload.
  EtcdRestoreServiceImpl(ClusterRestore* restore, const Authorizer* auth, StreamLimits* streams)
      : restore_(restore), auth_(auth), streams_(streams) {}

  grpc::Status Prepare(grpc::ServerContext* ctx,
                       grpc::ServerReader<v1::EtcdPrepareRequest>* reader,
                       v1::EtcdRestoreStepResponse* resp) override;
  grpc::Status Stop(grpc::ServerContext* ctx, const v1::EtcdRestoreStep* req,
                    v1::EtcdRestoreStepResponse* resp) override;
  grpc::Status Commit(grpc::ServerContext* ctx, const v1::EtcdRestoreStep* req,
                      v1::EtcdRestoreStepResponse* resp) override;
  grpc::Status Abort(grpc::ServerContext* ctx, const v1::EtcdRestoreStep* req,
                     v1::EtcdRestoreStepResponse* resp) override;
  grpc::Status Finalize(grpc::ServerContext* ctx, const v1::EtcdRestoreStep* req,
                        v1::EtcdRestoreStepResponse* resp) override;
  grpc::Status Decision(grpc::ServerContext* ctx, const v1::EtcdRestoreStep* req,
                        v1::EtcdDecisionResponse* resp) override;

 private:
  grpc::Status Step(grpc::ServerContext* ctx,
                    const v1::EtcdRestoreStep* req,
                    v1::EtcdRestoreStepResponse* resp,
                    const std::function<absl::Status(const std::string&)>& step);
  ClusterRestore* restore_;
  const Authorizer* auth_;
  StreamLimits* streams_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_ETCD_RESTORE_SERVICE_H_
