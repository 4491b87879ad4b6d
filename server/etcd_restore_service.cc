#include "server/etcd_restore_service.h"

#include "server/rpc.h"

namespace snapshot {

grpc::Status EtcdRestoreServiceImpl::Prepare(
    grpc::ServerContext* ctx, grpc::ServerReader<v1::EtcdPrepareRequest>* reader,
    v1::EtcdRestoreStepResponse* resp) {
  Rpc rpc(ctx, "Prepare", auth_);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  v1::EtcdPrepareRequest req;
  if (!reader->Read(&req) || !req.has_header()) {
    return rpc.Done(absl::InvalidArgumentError(
        "Prepare starts with a header message"));
  }
  absl::StatusOr<std::unique_ptr<ClusterRestore::Prepare>> prepare =
      restore_->BeginPrepare(req.header());
  if (!prepare.ok()) return rpc.Done(prepare.status());
  while (reader->Read(&req)) {
    if (!req.has_chunk() && req.message_case() != v1::EtcdPrepareRequest::kChunk) {
      return rpc.Done(absl::InvalidArgumentError("only chunks follow the header"));
    }
    rpc.bytes += req.chunk().size();
    absl::Status s = (*prepare)->Feed(req.chunk());
    if (!s.ok()) return rpc.Done(s);
  }
  if (ctx->IsCancelled()) {
    return rpc.Done(absl::CancelledError("the coordinator cancelled the prepare"));
  }
  absl::Status s = (*prepare)->Finish();
  resp->set_member(restore_->member());
  return rpc.Done(s);
}

grpc::Status EtcdRestoreServiceImpl::Step(
    grpc::ServerContext* ctx, const char* method, const v1::EtcdRestoreStep* req,
    v1::EtcdRestoreStepResponse* resp,
    const std::function<absl::Status(const std::string&)>& step) {
  Rpc rpc(ctx, method, auth_);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  resp->set_member(restore_->member());
  return rpc.Done(step(req->restore_id()));
}

grpc::Status EtcdRestoreServiceImpl::Stop(grpc::ServerContext* ctx,
                                          const v1::EtcdRestoreStep* req,
                                          v1::EtcdRestoreStepResponse* resp) {
  return Step(ctx, "Stop", req, resp,
              [this](const std::string& id) { return restore_->Stop(id); });
}

grpc::Status EtcdRestoreServiceImpl::Commit(grpc::ServerContext* ctx,
                                            const v1::EtcdRestoreStep* req,
                                            v1::EtcdRestoreStepResponse* resp) {
  const absl::Time deadline = absl::FromChrono(ctx->deadline());
  return Step(ctx, "Commit", req, resp, [this, deadline](const std::string& id) {
    return restore_->Commit(id, std::min(deadline, absl::Now() + absl::Minutes(5)));
  });
}

grpc::Status EtcdRestoreServiceImpl::Abort(grpc::ServerContext* ctx,
                                           const v1::EtcdRestoreStep* req,
                                           v1::EtcdRestoreStepResponse* resp) {
  return Step(ctx, "Abort", req, resp,
              [this](const std::string& id) { return restore_->Abort(id); });
}

grpc::Status EtcdRestoreServiceImpl::Finalize(grpc::ServerContext* ctx,
                                              const v1::EtcdRestoreStep* req,
                                              v1::EtcdRestoreStepResponse* resp) {
  return Step(ctx, "Finalize", req, resp,
              [this](const std::string& id) { return restore_->Finalize(id); });
}

grpc::Status EtcdRestoreServiceImpl::Decision(grpc::ServerContext* ctx,
                                              const v1::EtcdRestoreStep* req,
                                              v1::EtcdDecisionResponse* resp) {
  Rpc rpc(ctx, "Decision", auth_);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  resp->set_decision(restore_->Decision(req->restore_id()));
  return rpc.Done(absl::OkStatus());
}

}  // namespace snapshot
