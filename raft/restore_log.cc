#include "raft/restore_log.h"

#include <deque>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/deflate.h"
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

// The proposals of one restore in flight, checked in order.
class Pipeline {
 public:
  Pipeline(ReplicatedLog* log, absl::Time deadline) : log_(log), deadline_(deadline) {}

  // Proposes; first waits for the oldest when the window is full.
  absl::Status Propose(const kv::Command& c) {
    if (in_flight_.size() >= kRestoreWindow) SA_RETURN_IF_ERROR(WaitOldest());
    in_flight_.push_back(log_->ProposeAsync(kv::EncodeCommand(c)));
    return absl::OkStatus();
  }

  absl::Status Drain() {
    while (!in_flight_.empty()) SA_RETURN_IF_ERROR(WaitOldest());
    return absl::OkStatus();
  }

 private:
  absl::Status WaitOldest() {
    std::shared_ptr<Waiter<ApplyOutcome>> w = std::move(in_flight_.front());
    in_flight_.pop_front();
    SA_ASSIGN_OR_RETURN(ApplyOutcome o, w->Wait(deadline_));
    if (o.result == kv::kRestoreInvalidState) {
      return absl::FailedPreconditionError(
          "the state machine found the state invalid while receiving it; "
          "nothing changed");
    }
    if (o.result != kv::kApplied) {
      return absl::InternalError(absl::StrCat(
          "the state machine refused the entry: ", kv::ApplyResultName(o.result)));
    }
    return absl::OkStatus();
  }

  ReplicatedLog* log_;
  const absl::Time deadline_;
  std::deque<std::shared_ptr<Waiter<ApplyOutcome>>> in_flight_;
};

// Proposes begin and the chunks of restore `id`, reading, checksumming and
// checking the state as it goes; sets *proposed once begin went out.
// Returns the state's CRC-64 once every chunk is applied here.
absl::StatusOr<uint64_t> ProposeState(ReplicatedLog* log, const std::string& id,
                                    const SnapshotMeta& meta, ByteSource* src,
                                    absl::Time deadline, bool* proposed) {
  kv::StateDecoder decoder;  // checks the format; keeps nothing
  uint64_t crc64 = 0;
  FastDeflater deflater;
  std::string buf(kv::kRestoreChunkBytes, '\0');
  std::string deflated;
  SA_ASSIGN_OR_RETURN(size_t n, ReadFully(src, &buf[0], buf.size()));
  // The first chunk is checked before anything is proposed: a foreign or
  // broken state is mostly refused without touching the log.
  SA_RETURN_IF_ERROR(decoder.Feed(absl::string_view(buf.data(), n)));

  Pipeline pipe(log, deadline);
  kv::Command begin;
  begin.type = kv::Command::kRestoreBegin;
  begin.restore_id = id;
  begin.size = meta.size;  // the digest comes with the commit
  *proposed = true;
  SA_RETURN_IF_ERROR(pipe.Propose(begin));
  uint64_t offset = 0;
  for (bool first = true; n > 0; first = false) {
    if (offset + n > meta.size) break;  // longer than announced
    absl::string_view chunk(buf.data(), n);
    if (!first) SA_RETURN_IF_ERROR(decoder.Feed(chunk));
    crc64 = Crc64(crc64, chunk);
    kv::Command c;
    c.type = kv::Command::kRestoreChunk;
    c.restore_id = id;
    c.offset = offset;
    c.data = chunk;
    // Compressible runs deflated when that saves 3%: fewer bytes for every
    // node to write to its log (with O_DSYNC), send and checksum.
    if (kv::EncodeChunkSegments(chunk, &deflater, &deflated)) {
      c.type = kv::Command::kRestoreChunkDeflated;
      c.raw_size = n;
      c.data = deflated;
    }
    SA_RETURN_IF_ERROR(pipe.Propose(c));  // encodes (copies) the chunk
    offset += n;
    SA_ASSIGN_OR_RETURN(n, ReadFully(src, &buf[0], buf.size()));
  }
  if (n > 0 || offset != meta.size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the state has %s bytes but the metadata announces %d",
        n > 0 ? absl::StrCat("more than ", meta.size) : absl::StrCat(offset),
        meta.size));
  }
  SA_RETURN_IF_ERROR(decoder.Finish().status());
  SA_RETURN_IF_ERROR(pipe.Drain());
  return crc64;
}

}  // namespace

absl::StatusOr<RestoreResult> RestoreThroughLog(ReplicatedLog* log,
                                                const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline,
                                                const BeforeCommit& before_commit) {
  // Fail fast on a follower, before reading anything.
  SA_RETURN_IF_ERROR(log->CheckLeader(deadline));
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
  const std::string id = RandomId();
  bool proposed = false;
  absl::StatusOr<uint64_t> digest =
      ProposeState(log, id, meta, src.get(), deadline, &proposed);
  if (digest.ok() && before_commit) {
    absl::Status s = before_commit();
    if (!s.ok()) digest = s;
  }
  if (!digest.ok()) {
    if (proposed) {
      // Drop the staging everywhere (best effort: without a leader it stays
      // until the next restore's begin replaces it).
      kv::Command abort;
      abort.type = kv::Command::kRestoreAbort;
      abort.restore_id = id;
      (void)log->Propose(kv::EncodeCommand(abort),
                         std::min(deadline, absl::Now() + absl::Seconds(5)));
    }
    return digest.status();
  }

  kv::Command commit;
  commit.type = kv::Command::kRestoreCommit;
  commit.restore_id = id;
  commit.crc64 = *digest;
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
