#include "raft/restore_log.h"

#include <algorithm>
#include <deque>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/deflate.h"
#include "base/log.h"
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
  absl::Status Propose(std::string entry) {
    if (in_flight_.size() >= kRestoreWindow) SA_RETURN_IF_ERROR(WaitOldest());
    in_flight_.push_back(log_->ProposeAsync(std::move(entry)));
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

// Where a restore's chunk entries come from, in order.
class EntrySource {
 public:
  virtual ~EntrySource() = default;
  // The next chunk entry, false after the last.
  virtual absl::StatusOr<bool> Next(std::string* entry) = 0;
  // After the last: the CRC-64 of the whole state, or why it is refused.
  virtual absl::StatusOr<uint64_t> Finish() = 0;
};

}  // namespace

// Turns the state, chunk after chunk, into its entries: checks the format,
// computes the CRC-64 and deflates the compressible runs.
class ChunkEncoder {
 public:
  explicit ChunkEncoder(std::string id) : id_(std::move(id)) {}

  // The entry of the next chunk (kRestoreChunkBytes, the last shorter);
  // FAILED_PRECONDITION (from the decoder) for bytes of another format.
  absl::StatusOr<std::string> Encode(absl::string_view chunk) {
    SA_RETURN_IF_ERROR(decoder_.Feed(chunk));
    crc64_ = Crc64(crc64_, chunk);
    kv::Command c;
    c.type = kv::Command::kRestoreChunk;
    c.restore_id = id_;
    c.offset = offset_;
    c.data = chunk;
    // Compressible runs deflated when that saves 3%: fewer bytes for every
    // node to write to its log (with O_DSYNC), send and checksum.
    if (kv::EncodeChunkSegments(chunk, &deflater_, &deflated_)) {
      c.type = kv::Command::kRestoreChunkDeflated;
      c.raw_size = chunk.size();
      c.data = deflated_;
    }
    offset_ += chunk.size();
    return kv::EncodeCommand(c);
  }
  // After the last chunk: the CRC-64 of all, once the state checked complete.
  absl::StatusOr<uint64_t> Finish() {
    SA_RETURN_IF_ERROR(decoder_.Finish().status());
    return crc64_;
  }
  // State bytes encoded so far.
  uint64_t offset() const { return offset_; }

 private:
  const std::string id_;
  kv::StateDecoder decoder_;  // checks the format; keeps nothing
  uint64_t crc64_ = 0;
  uint64_t offset_ = 0;
  FastDeflater deflater_;
  std::string deflated_;
};

namespace {

// The entries read and encoded here from the state's source, checked
// against the size the metadata announces.
class SourceEntries : public EntrySource {
 public:
  SourceEntries(ByteSource* src, const std::string& id, uint64_t size)
      : src_(src), encoder_(id), size_(size), buf_(kv::kRestoreChunkBytes, '\0') {}

  absl::StatusOr<bool> Next(std::string* entry) override {
    SA_ASSIGN_OR_RETURN(n_, ReadFully(src_, &buf_[0], buf_.size()));
    if (n_ == 0 || encoder_.offset() + n_ > size_) return false;  // longer: Finish says
    SA_ASSIGN_OR_RETURN(*entry, encoder_.Encode(absl::string_view(buf_.data(), n_)));
    return true;
  }
  absl::StatusOr<uint64_t> Finish() override {
    if (n_ > 0 || encoder_.offset() != size_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the state has %s bytes but the metadata announces %d",
          n_ > 0 ? absl::StrCat("more than ", size_) : absl::StrCat(encoder_.offset()), size_));
    }
    return encoder_.Finish();
  }

 private:
  ByteSource* src_;
  ChunkEncoder encoder_;
  const uint64_t size_;
  std::string buf_;
  size_t n_ = 0;  // bytes of the last read
};

// How each prepared entry is stored in the scratch file.
constexpr size_t kRecordHeaderBytes = 4;  // u32 LE: the entry's length

}  // namespace

// The prepared entries, read back from the scratch file.
class PreparedEntries : public EntrySource {
 public:
  // The entries of `p` when it prepared exactly `size` state bytes, with
  // their restore id in *id; otherwise null (the state is read again).
  static std::unique_ptr<EntrySource> Open(const PreparedRestore* p, uint64_t size,
                                           std::string* id) {
    if (p->done_ && p->encoder_->offset() == size) {
      *id = p->id_;
      return std::unique_ptr<EntrySource>(new PreparedEntries(p));
    }
    // A state of another format is found again, with its error; any other
    // fault of the preparation (a full disk) is the operator's to see.
    if (!p->status_.ok() && p->status_.code() != absl::StatusCode::kFailedPrecondition) {
      Log(LogLevel::kWarning,
          "restore: the chunks prepared during the upload cannot be used; "
          "reading the received state instead",
          {{"error", p->status_.message()}});
    }
    return nullptr;
  }

  absl::StatusOr<bool> Next(std::string* entry) override {
    char header[kRecordHeaderBytes];
    SA_ASSIGN_OR_RETURN(size_t n, ReadFully(src_.get(), header, sizeof(header)));
    if (n == 0) return false;
    uint32_t len = 0;
    for (size_t i = 0; i < kRecordHeaderBytes; ++i) {
      len |= static_cast<uint32_t>(static_cast<unsigned char>(header[i])) << (8 * i);
    }
    if (n != sizeof(header) || len > kv::kMaxCommandBytes) {
      return absl::InternalError("the restore's prepared entries are damaged");
    }
    entry->resize(len);
    SA_ASSIGN_OR_RETURN(n, ReadFully(src_.get(), &(*entry)[0], len));
    if (n != len) return absl::InternalError("the restore's prepared entries are cut short");
    return true;
  }
  absl::StatusOr<uint64_t> Finish() override { return p_->crc64_; }

 private:
  explicit PreparedEntries(const PreparedRestore* p) : p_(p), src_(p->file_->NewReader()) {}
  const PreparedRestore* p_;
  std::unique_ptr<ByteSource> src_;
};

// On the pipeline's thread: encodes each chunk it is given (whole, as
// PreparedRestore cut it) and appends its entry to the scratch file.
class PreparedRestore::ChunkWriter : public ByteSink {
 public:
  ChunkWriter(ChunkEncoder* encoder, ScratchFile* file) : encoder_(encoder), file_(file) {}
  absl::Status Write(absl::string_view chunk) override {
    SA_ASSIGN_OR_RETURN(std::string entry, encoder_->Encode(chunk));
    char header[kRecordHeaderBytes];
    for (size_t i = 0; i < kRecordHeaderBytes; ++i) {
      header[i] = static_cast<char>(entry.size() >> (8 * i));
    }
    SA_RETURN_IF_ERROR(file_->Write(absl::string_view(header, sizeof(header))));
    return file_->Write(entry);
  }

 private:
  ChunkEncoder* encoder_;
  ScratchFile* file_;
};

absl::StatusOr<std::unique_ptr<PreparedRestore>> PreparedRestore::Create(const std::string& dir) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ScratchFile> file, ScratchFile::Create(dir));
  return std::unique_ptr<PreparedRestore>(new PreparedRestore(std::move(file), RandomId()));
}

PreparedRestore::PreparedRestore(std::unique_ptr<ScratchFile> file, std::string id)
    : id_(std::move(id)),
      file_(std::move(file)),
      encoder_(std::make_unique<ChunkEncoder>(id_)),
      writer_(std::make_unique<ChunkWriter>(encoder_.get(), file_.get())),
      pipe_(std::make_unique<PipelineSink>(writer_.get(), "sa-prepare")) {}

PreparedRestore::~PreparedRestore() {
  pipe_.reset();  // joins the thread before what it uses goes
}

absl::Status PreparedRestore::Write(absl::string_view state_bytes) {
  // Cut here, passed on whole: the writer waits only when the preparing
  // thread is a whole chunk behind.
  while (status_.ok() && !state_bytes.empty()) {
    if (chunk_.capacity() < kv::kRestoreChunkBytes) chunk_.reserve(kv::kRestoreChunkBytes);
    size_t k = std::min(state_bytes.size(), kv::kRestoreChunkBytes - chunk_.size());
    chunk_.append(state_bytes.data(), k);
    state_bytes.remove_prefix(k);
    if (chunk_.size() == kv::kRestoreChunkBytes) status_ = pipe_->Pass(&chunk_);
  }
  return absl::OkStatus();  // a failed preparation is not the upload's error
}

void PreparedRestore::Verified(const Digest&) {
  if (status_.ok()) status_ = pipe_->Pass(&chunk_);  // the last, shorter chunk
  if (status_.ok()) status_ = pipe_->Flush();
  absl::StatusOr<uint64_t> crc = status_.ok() ? encoder_->Finish() : status_;
  if (!crc.ok()) {
    status_ = crc.status();
    pipe_.reset();  // idle since the Flush; then the disk space goes back
    file_.reset();
    return;
  }
  crc64_ = *crc;
  done_ = true;
}

namespace {

// Proposes begin and the chunks of restore `id` from `entries`; sets
// *proposed once begin went out. Returns the state's CRC-64 once every chunk
// is applied here.
absl::StatusOr<uint64_t> ProposeState(ReplicatedLog* log, const std::string& id,
                                    const SnapshotMeta& meta, EntrySource* entries,
                                    absl::Time deadline, bool* proposed) {
  // The first chunk is checked before anything is proposed: a foreign or
  // broken state is mostly refused without touching the log.
  std::string entry;
  SA_ASSIGN_OR_RETURN(bool more, entries->Next(&entry));

  Pipeline pipe(log, deadline);
  kv::Command begin;
  begin.type = kv::Command::kRestoreBegin;
  begin.restore_id = id;
  begin.size = meta.size;  // the digest comes with the commit
  *proposed = true;
  SA_RETURN_IF_ERROR(pipe.Propose(kv::EncodeCommand(begin)));
  while (more) {
    SA_RETURN_IF_ERROR(pipe.Propose(std::move(entry)));
    entry = std::string();
    SA_ASSIGN_OR_RETURN(more, entries->Next(&entry));
  }
  SA_ASSIGN_OR_RETURN(uint64_t crc64, entries->Finish());
  SA_RETURN_IF_ERROR(pipe.Drain());
  return crc64;
}

}  // namespace

absl::StatusOr<RestoreResult> RestoreThroughLog(ReplicatedLog* log,
                                                const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline,
                                                const BeforeCommit& before_commit,
                                                PreparedRestore* prepared) {
  // Fail fast on a follower, before reading anything.
  SA_RETURN_IF_ERROR(log->CheckLeader(deadline));
  std::string id;
  std::unique_ptr<ByteSource> src;
  std::unique_ptr<EntrySource> entries;
  if (prepared != nullptr) entries = PreparedEntries::Open(prepared, meta.size, &id);
  if (entries == nullptr) {
    SA_ASSIGN_OR_RETURN(src, open_state());
    id = RandomId();
    entries = std::make_unique<SourceEntries>(src.get(), id, meta.size);
  }
  bool proposed = false;
  absl::StatusOr<uint64_t> digest =
      ProposeState(log, id, meta, entries.get(), deadline, &proposed);
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
