#include "core/restore_request.h"

#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/thread_name.h"

namespace snapshot {

RestoreRequest::RestoreRequest(std::unique_ptr<RestoreSpool> spool, Catalog* catalog,
                               SafetySnapshotFn safety)
    : spool_(std::move(spool)), catalog_(catalog), safety_(std::move(safety)) {}

absl::Status RestoreRequest::Next(bool options) {
  const bool first = std::exchange(first_, false);
  if (ended_) {
    return absl::InvalidArgumentError(
        "expected_checksum must be the last message; nothing may follow it");
  }
  if (options && !first) {
    return absl::InvalidArgumentError("options may only come in the first message");
  }
  return absl::OkStatus();
}

absl::Status RestoreRequest::Options(const std::string& expected_checksum,
                                     const std::string& catalog_id) {
  SA_RETURN_IF_ERROR(Next(/*options=*/true));
  expected_ = expected_checksum;
  spool_->ExpectChecksum(expected_);
  if (!catalog_id.empty()) {
    if (catalog_ == nullptr) {
      return absl::FailedPreconditionError("this agent keeps no snapshot catalog");
    }
    // Pinned: not deleted (retention, DeleteSnapshot) while in use.
    SA_ASSIGN_OR_RETURN(stored_, catalog_->Acquire(catalog_id));
  }
  return absl::OkStatus();
}

absl::Status RestoreRequest::Chunk(absl::string_view bytes) {
  SA_RETURN_IF_ERROR(Next(false));
  if (stored_) {
    return absl::InvalidArgumentError(
        "a restore of a catalog snapshot (options.catalog_id) takes no other message");
  }
  return spool_->Write(bytes);
}

absl::Status RestoreRequest::ExpectedChecksum(const std::string& checksum) {
  SA_RETURN_IF_ERROR(Next(false));
  if (stored_) {
    return absl::InvalidArgumentError(
        "a restore of a catalog snapshot (options.catalog_id) takes no other message");
  }
  ended_ = true;
  if (!expected_.empty() && expected_ != checksum) {
    return absl::DataLossError(absl::StrCat(
        "the first message expects checksum ", expected_, " but the last one ", checksum,
        ": the client's bytes changed on the way; nothing was restored"));
  }
  spool_->ExpectChecksum(checksum);
  return absl::OkStatus();
}

absl::StatusOr<RestoreOutcome> RestoreRequest::Finish(absl::Time deadline) {
  RestoreOutcome out;
  if (stored_) {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, stored_->Open());
    SA_RETURN_IF_ERROR(CopyAll(src.get(), spool_.get()).status());
    out.catalog_id = stored_->entry().id;
  }
  SA_ASSIGN_OR_RETURN(out.info, spool_->Finish());
  SA_RETURN_IF_ERROR(spool_->CheckEngine());
  if (!safety_) {
    SA_ASSIGN_OR_RETURN(out.result, spool_->Apply(deadline));
    return out;
  }
  // The safety snapshot is written while the new state travels; the commit
  // waits for it.
  std::future<absl::StatusOr<std::string>> safety =
      std::async(std::launch::async, [this, deadline] {
        SetThreadName("sa-safety");
        return safety_(deadline);
      });
  absl::StatusOr<std::string> id;
  auto wait_for_safety = [&]() -> absl::Status {
    if (safety.valid()) id = safety.get();  // (an engine calls this once; never twice)
    if (absl::IsCancelled(id.status())) {
      // The agent is stopping (SIGTERM): nothing happened; retry later.
      return absl::UnavailableError(
          "the agent is stopping; nothing was restored: retry when it is back, or through another "
          "agent of the cluster");
    }
    if (!id.ok()) {
      // The remedy the cause calls for: space for a full disk, else the cause.
      const char* remedy = absl::IsResourceExhausted(id.status())
                               ? "Free space in the catalog"
                               : "Fix that";
      return absl::Status(
          id.status().code(),
          absl::StrCat("the safety snapshot of the current state could not be stored (",
                       id.status().message(), "); nothing was restored. ", remedy,
                       ", or run the agent with --no-safety-snapshot"));
    }
    return absl::OkStatus();
  };
  absl::StatusOr<RestoreResult> result = spool_->Apply(deadline, wait_for_safety);
  // A restore that failed before its commit did not wait: the snapshot
  // still ends (and stays in the catalog) before the request does.
  if (safety.valid()) id = safety.get();
  SA_RETURN_IF_ERROR(result.status());
  out.result = *result;
  if (id.ok()) out.safety_id = *id;
  return out;
}

}  // namespace snapshot
