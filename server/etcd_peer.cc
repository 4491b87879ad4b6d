#include "server/etcd_peer.h"

#include <mutex>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "base/grpc_credentials.h"
#include "base/status_macros.h"
#include "proto/snapshot/v1/snapshot.grpc.pb.h"

namespace snapshot {
namespace {

class RemoteParticipant : public Participant {
 public:
  RemoteParticipant(std::string member, std::string address, std::string token,
                    std::shared_ptr<grpc::ChannelCredentials> creds)
      : member_(std::move(member)),
        address_(std::move(address)),
        token_(std::move(token)),
        stub_(v1::EtcdRestoreService::NewStub(grpc::CreateChannel(address_, creds))) {}

  void Cancel() override {
    std::lock_guard<std::mutex> l(mu_);
    cancelled_ = true;
    if (current_ != nullptr) current_->TryCancel();
  }

  absl::StatusOr<std::unique_ptr<PrepareStream>> BeginPrepare(const PrepareHeader& h,
                                                             absl::Time deadline) override {
    auto stream = std::make_unique<RemotePrepare>(this);
    Setup(&stream->ctx, deadline);
    stream->current.emplace(this, &stream->ctx);
    stream->writer = stub_->Prepare(&stream->ctx, &stream->resp);
    v1::EtcdPrepareRequest first;
    v1::EtcdPrepareHeader* ph = first.mutable_header();
    ph->set_restore_id(h.restore_id);
    ph->set_coordinator(h.coordinator);
    ph->set_state_size(h.state_size);
    ph->set_snapshot_id(h.snapshot_id);
    ph->set_protocol(h.protocol);
    SA_RETURN_IF_ERROR(stream->Send(first));
    return std::unique_ptr<PrepareStream>(std::move(stream));
  }

  absl::Status Step(RestoreStep step, const std::string& id, absl::Time deadline) override {
    grpc::ClientContext ctx;
    Setup(&ctx, deadline);
    Current current(this, &ctx);
    v1::EtcdRestoreStep req;
    req.set_restore_id(id);
    v1::EtcdRestoreStepResponse resp;
    grpc::Status st;
    switch (step) {
      case RestoreStep::kStop:
        st = stub_->Stop(&ctx, req, &resp);
        break;
      case RestoreStep::kCommit:
        st = stub_->Commit(&ctx, req, &resp);
        break;
      case RestoreStep::kAbort:
        st = stub_->Abort(&ctx, req, &resp);
        break;
      case RestoreStep::kFinalize:
        st = stub_->Finalize(&ctx, req, &resp);
        break;
    }
    return From(st);
  }

  absl::StatusOr<RestoreDecision> AskDecision(const std::string& id,
                                              absl::Time deadline) override {
    grpc::ClientContext ctx;
    Setup(&ctx, deadline);
    Current current(this, &ctx);
    v1::EtcdRestoreStep req;
    req.set_restore_id(id);
    v1::EtcdDecisionResponse resp;
    SA_RETURN_IF_ERROR(From(stub_->Decision(&ctx, req, &resp)));
    switch (resp.decision()) {
      case v1::EtcdDecisionResponse::DECISION_COMMIT:
        return RestoreDecision::kCommit;
      case v1::EtcdDecisionResponse::DECISION_PENDING:
        return RestoreDecision::kPending;
      default:
        return RestoreDecision::kUnknown;
    }
  }

 private:
  // The call in progress, cancellable by Cancel() while it lasts.
  class Current {
   public:
    Current(RemoteParticipant* p, grpc::ClientContext* ctx) : p_(p) {
      std::lock_guard<std::mutex> l(p_->mu_);
      p_->current_ = ctx;
      if (p_->cancelled_) ctx->TryCancel();
    }
    ~Current() {
      std::lock_guard<std::mutex> l(p_->mu_);
      p_->current_ = nullptr;
    }

   private:
    RemoteParticipant* p_;
  };

  // One Prepare call: the chunks as they come, then the SHA-256.
  class RemotePrepare : public PrepareStream {
   public:
    explicit RemotePrepare(RemoteParticipant* p) : p_(p) {}
    ~RemotePrepare() override {
      if (writer != nullptr && !finished_) {
        ctx.TryCancel();  // the member drops what it received
        writer->Finish().ok();
      }
    }

    absl::Status Write(absl::string_view data) override {
      v1::EtcdPrepareRequest req;
      req.set_chunk(data.data(), data.size());
      return Send(req);
    }

    absl::Status Finish(const std::string& state_sha256) override {
      v1::EtcdPrepareRequest last;
      last.set_state_sha256(state_sha256);
      SA_RETURN_IF_ERROR(Send(last));
      writer->WritesDone();
      finished_ = true;
      return p_->From(writer->Finish());
    }

    // Writes `req`; a stream the member has ended gives the member's error.
    absl::Status Send(const v1::EtcdPrepareRequest& req) {
      if (writer->Write(req)) return absl::OkStatus();
      finished_ = true;
      absl::Status s = p_->From(writer->Finish());
      return s.ok() ? absl::UnavailableError(absl::StrCat(
                          "the agent of member ", p_->member_, " at ", p_->address_,
                          " ended the prepare early"))
                    : s;
    }

    grpc::ClientContext ctx;
    std::optional<Current> current;
    v1::EtcdRestoreStepResponse resp;
    std::unique_ptr<grpc::ClientWriter<v1::EtcdPrepareRequest>> writer;

   private:
    RemoteParticipant* p_;
    bool finished_ = false;
  };

  void Setup(grpc::ClientContext* ctx, absl::Time deadline) const {
    // No waiting for an agent that is down: steps that must get through
    // (commit) are retried by the coordinator.
    ctx->set_deadline(absl::ToChronoTime(deadline));
    if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  absl::Status From(const grpc::Status& s) const {
    if (s.ok()) return absl::OkStatus();
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the agent of member ", member_, " at ", address_,
          " refused this agent's peer credentials (", s.error_message(),
          "): give every agent an admin token of the others (--peer-token-file, or the "
          "first admin token of --token-file) and, with mutual TLS, --peer-cert/--peer-key"));
    }
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("agent of member ", member_, " at ", address_, ": ",
                                     s.error_message()));
  }

  std::mutex mu_;
  grpc::ClientContext* current_ = nullptr;  // guarded by mu_
  bool cancelled_ = false;                  // guarded by mu_
  const std::string member_;
  const std::string address_;
  const std::string token_;
  std::unique_ptr<v1::EtcdRestoreService::Stub> stub_;
};

}  // namespace

ParticipantFactory PeerParticipants(PeerOptions o) {
  return [o](const std::string& member,
             const std::string& address) -> absl::StatusOr<std::unique_ptr<Participant>> {
    TlsClientFiles files;
    files.ca_file = o.ca_file;
    if (!o.ca_file.empty()) {  // peers speak TLS when given a CA
      files.cert_file = o.cert_file;
      files.key_file = o.key_file;
    }
    files.cert_flag = "--peer-cert";
    files.key_flag = "--peer-key";
    SA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds,
                        ChannelCredentialsFromFiles(files));
    return std::unique_ptr<Participant>(
        new RemoteParticipant(member, address, o.token, std::move(creds)));
  };
}

}  // namespace snapshot
