#include "raft/restore_log.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "raft/command.h"
#include "raft/kv_fsm.h"
#include "raft/kv_state.h"

namespace snapshot {
namespace {

std::string RandomId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

// Proposes a command and turns a non-applied result into an error.
absl::StatusOr<uint64_t> ProposeCommand(ReplicatedLog* log, const kv::Command& c,
                                        absl::Time deadline) {
  SA_ASSIGN_OR_RETURN(ApplyOutcome o, log->Propose(kv::EncodeCommand(c), deadline));
  if (o.result != kv::kApplied) {
    return absl::InternalError(absl::StrCat(
        "the state machine refused the entry: ", kv::ApplyResultName(o.result)));
  }
  return o.index;
}

}  // namespace

absl::StatusOr<RestoreResult> RestoreThroughLog(ReplicatedLog* log,
                                                const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline) {
  // Fail fast on a follower, before reading anything.
  SA_RETURN_IF_ERROR(log->CheckLeader(deadline));

  // 1. The bytes must be this engine's state, of the announced length.
  Digest digest;
  {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
    kv::StateDecoder decoder;
    Sha256 h;
    uint64_t total = 0;
    std::string buf(1 << 20, '\0');
    for (;;) {
      SA_ASSIGN_OR_RETURN(size_t n, src->Read(&buf[0], buf.size()));
      if (n == 0) break;
      absl::string_view chunk(buf.data(), n);
      total += n;
      h.Update(chunk);
      SA_RETURN_IF_ERROR(decoder.Feed(chunk));
    }
    SA_RETURN_IF_ERROR(decoder.Finish().status());
    if (total != meta.size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the state has %d bytes but the metadata announces %d", total,
          meta.size));
    }
    digest = h.Finish();
  }

  // 2. Replicate through the log: begin, chunks, commit.
  const std::string id = RandomId();
  kv::Command begin;
  begin.type = kv::Command::kRestoreBegin;
  begin.restore_id = id;
  begin.size = meta.size;
  begin.sha256 = digest;
  SA_RETURN_IF_ERROR(ProposeCommand(log, begin, deadline).status());
  {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
    std::string buf(kv::kRestoreChunkBytes, '\0');
    uint64_t offset = 0;
    for (;;) {
      // Fill a whole chunk (sources may return short reads).
      size_t filled = 0;
      while (filled < buf.size()) {
        SA_ASSIGN_OR_RETURN(size_t n, src->Read(&buf[filled], buf.size() - filled));
        if (n == 0) break;
        filled += n;
      }
      if (filled == 0) break;
      kv::Command chunk;
      chunk.type = kv::Command::kRestoreChunk;
      chunk.restore_id = id;
      chunk.offset = offset;
      chunk.value.assign(buf.data(), filled);
      SA_RETURN_IF_ERROR(ProposeCommand(log, chunk, deadline).status());
      offset += filled;
      if (filled < buf.size()) break;
    }
  }
  kv::Command commit;
  commit.type = kv::Command::kRestoreCommit;
  commit.restore_id = id;
  absl::StatusOr<ApplyOutcome> outcome =
      log->Propose(kv::EncodeCommand(commit), deadline);
  if (outcome.ok()) {
    switch (outcome->result) {
      case kv::kApplied:
        return RestoreResult{outcome->index};
      case kv::kRestoreInvalidState:
        return absl::FailedPreconditionError(
            "the state was refused at commit: it is not a valid key-value "
            "state; nothing changed");
      default:
        return absl::AbortedError(
            absl::StrCat("the restore was not applied: ",
                         kv::ApplyResultName(outcome->result),
                         "; nothing changed"));
    }
  }
  // "Leadership lost" does not mean "not applied": the commit may still be
  // applied by the next leader. Watch this node's own state machine.
  absl::Time confirm_until =
      std::min(deadline, absl::Now() + absl::Seconds(10));
  while (absl::Now() < confirm_until) {
    auto done = log->RestoreCommitted(id, confirm_until);
    if (done.ok() && done->first) return RestoreResult{done->second};
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::AbortedError(absl::StrCat(
      "the restore's commit could not be confirmed (", outcome.status().message(),
      "); it may or may not have taken effect: check the data before retrying"));
}

}  // namespace snapshot
