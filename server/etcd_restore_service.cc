#include "server/etcd_restore_service.h"

#include "server/rpc.h"

namespace snapshot {

grpc::Status EtcdRestoreServiceImpl::Prepare(
    grpc::ServerContext* ctx, grpc::ServerReader<v1::EtcdPrepareRequest>* reader,
    v1::EtcdRestoreStepResponse* resp) {
  Rpc rpc(ctx, auth_);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  // A stream slot, and the idle and minimum-rate limits, as for a client's
  // upload: a stalled coordinator cannot hold this agent's resources.
  absl::StatusOr<std::unique_ptr<StreamSlot>> slot = streams_->Acquire(rpc.read_role());
  if (!slot.ok()) return rpc.Done(slot.status());
  std::shared_ptr<StreamWatchdog::Stream> watch =
      streams_->Watch([ctx](const absl::Status&) { ctx->TryCancel(); });
  v1::EtcdPrepareRequest req;
  if (!reader->Read(&req) || !req.has_header()) {
    if (ctx->IsCancelled()) return rpc.Done(Interrupted(*watch));
    return rpc.Done(absl::InvalidArgumentError(
        "Prepare starts with a header message"));
  }
  watch->Touch(0);
  PrepareHeader header;
  header.restore_id = req.header().restore_id();
  header.coordinator = req.header().coordinator();
  header.state_size = req.header().state_size();
  header.snapshot_id = req.header().snapshot_id();
  header.protocol = req.header().protocol();
  absl::StatusOr<std::unique_ptr<ClusterRestore::Prepare>> prepare =
      restore_->BeginPrepare(header);
  if (!prepare.ok()) return rpc.Done(prepare.status());
  std::string sha256;  // the last message
  while (reader->Read(&req)) {
    if (!sha256.empty()) {
      return rpc.Done(absl::InvalidArgumentError("nothing follows the state's SHA-256"));
    }
    if (req.message_case() == v1::EtcdPrepareRequest::kStateSha256) {
      sha256 = req.state_sha256();
      if (sha256.empty()) return rpc.Done(absl::InvalidArgumentError("an empty SHA-256"));
      continue;
    }
    if (req.message_case() != v1::EtcdPrepareRequest::kChunk) {
      return rpc.Done(absl::InvalidArgumentError("only chunks follow the header"));
    }
    rpc.bytes += req.chunk().size();
    watch->Touch(req.chunk().size());
    absl::Status s = (*prepare)->Write(req.chunk());
    if (!s.ok()) return rpc.Done(s);
  }
  if (ctx->IsCancelled()) {
    absl::Status why = watch->why();
    return rpc.Done(why.ok() ? absl::CancelledError("the coordinator cancelled the prepare")
                             : why);
  }
  if (sha256.empty()) {
    // The coordinator sends it only once its upload has verified.
    return rpc.Done(absl::InvalidArgumentError(
        "the prepare ended without the state's SHA-256: nothing was built"));
  }
  watch->Disarm();  // the rest moves no data (etcdctl snapshot restore)
  absl::Status s = (*prepare)->Finish(sha256);
  resp->set_member(restore_->member());
  return rpc.Done(s);
}

grpc::Status EtcdRestoreServiceImpl::Step(
    grpc::ServerContext* ctx, const v1::EtcdRestoreStep* req,
    v1::EtcdRestoreStepResponse* resp,
    const std::function<absl::Status(const std::string&)>& step) {
  Rpc rpc(ctx, auth_);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  resp->set_member(restore_->member());
  return rpc.Done(step(req->restore_id()));
}

grpc::Status EtcdRestoreServiceImpl::Stop(grpc::ServerContext* ctx,
                                          const v1::EtcdRestoreStep* req,
                                          v1::EtcdRestoreStepResponse* resp) {
  return Step(ctx, req, resp,
              [this](const std::string& id) { return restore_->Stop(id); });
}

grpc::Status EtcdRestoreServiceImpl::Commit(grpc::ServerContext* ctx,
                                            const v1::EtcdRestoreStep* req,
                                            v1::EtcdRestoreStepResponse* resp) {
  const absl::Time deadline = absl::FromChrono(ctx->deadline());
  return Step(ctx, req, resp, [this, deadline](const std::string& id) {
    return restore_->Commit(id, std::min(deadline, absl::Now() + absl::Minutes(5)));
  });
}

grpc::Status EtcdRestoreServiceImpl::Abort(grpc::ServerContext* ctx,
                                           const v1::EtcdRestoreStep* req,
                                           v1::EtcdRestoreStepResponse* resp) {
  return Step(ctx, req, resp,
              [this](const std::string& id) { return restore_->Abort(id); });
}

grpc::Status EtcdRestoreServiceImpl::Finalize(grpc::ServerContext* ctx,
                                              const v1::EtcdRestoreStep* req,
                                              v1::EtcdRestoreStepResponse* resp) {
  return Step(ctx, req, resp,
              [this](const std::string& id) { return restore_->Finalize(id); });
}

grpc::Status EtcdRestoreServiceImpl::Decision(grpc::ServerContext* ctx,
                                              const v1::EtcdRestoreStep* req,
                                              v1::EtcdDecisionResponse* resp) {
  Rpc rpc(ctx, auth_);
  if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
  switch (restore_->Decision(req->restore_id())) {
    case RestoreDecision::kCommit:
      resp->set_decision(v1::EtcdDecisionResponse::DECISION_COMMIT);
      break;
    case RestoreDecision::kPending:
      resp->set_decision(v1::EtcdDecisionResponse::DECISION_PENDING);
      break;
    case RestoreDecision::kUnknown:
      resp->set_decision(v1::EtcdDecisionResponse::DECISION_UNKNOWN);
      break;
  }
  return rpc.Done(absl::OkStatus());
}

}  // namespace snapshot
