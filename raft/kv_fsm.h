// KvFsm: the embedded engine's state machine — what every node applies, in
// log order. Engine-independent: the libraft adapter calls it from its FSM
// callbacks; tests call it directly.
//
// Besides the key-value data it holds the staging area of a restore in
// progress (restore through the log: begin, chunks, commit) and the ids of
// recent restores, so that a repeated commit is a no-op. Both are part of the
// FSM's own snapshots, so a node that catches up through InstallSnapshot in
// the middle of a restore ends with the same state as the others.
//
// Threading: not thread-safe; owned by the Raft loop thread, which it
// shares with one StagingWorker thread of its own (restore chunks are
// decoded there; Capture, commit and abort wait for it). Capture() gives an
// immutable FsmImage that may be serialized on any thread.
#ifndef SNAPSHOT_AGENT_RAFT_KV_FSM_H_
#define SNAPSHOT_AGENT_RAFT_KV_FSM_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "raft/command.h"
#include "raft/kv_state.h"

namespace snapshot {
namespace kv {

// Outcome of applying one entry, reported to the proposer through libraft's
// result pointer (apply itself never fails: RAFT_NOTES, defect 4).
enum ApplyResult : int {
  kApplied = 0,
  kBadEntry = 1,            // an entry that does not decode (never written by us)
  kNoSuchRestore = 2,       // chunk or commit for a restore not staged here
  kRestoreIncomplete = 3,   // commit: staged length or CRC-64 do not match
  kRestoreInvalidState = 4, // commit: staged bytes are not a valid state
};
const char* ApplyResultName(int r);

// A restore in progress on this node: the chunks received so far, decoded
// into the next state as they arrive (so a restore costs one copy of the
// state, not raw bytes and then a decoded copy), and checksummed.
struct Staging {
  std::string id;
  uint64_t size = 0;
  // Bytes accepted from chunk entries (in log order, on the Raft loop).
  uint64_t received = 0;
  // The rest is the StagingWorker's until it is drained.
  bool invalid = false;  // the bytes are not a valid state
  std::unique_ptr<KvState> next = std::make_unique<KvState>();
  std::unique_ptr<StateDecoder> decoder;
  uint64_t crc64 = 0;  // of the bytes added (base/deflate.h)

  Staging();
  // Checksums and decodes the next `data` bytes of the state.
  void Add(absl::string_view data);
  // Marks the staging invalid and frees what it decoded.
  void Poison();
};

// Feeds chunks to their Staging on a thread of its own, in order: the Raft
// loop only copies a chunk, while inflating, checksumming and decoding it (most
// of a restore's cost on every node) run beside the log's own work.
class StagingWorker {
 public:
  StagingWorker();
  ~StagingWorker();
  StagingWorker(const StagingWorker&) = delete;
  StagingWorker& operator=(const StagingWorker&) = delete;

  // Queues `bytes` for `s`: raw, or raw deflate of `raw_size` bytes (0: raw).
  // Blocks while more than kMaxQueuedBytes wait (the loop then waits for
  // the worker: memory stays bounded).
  void Add(std::shared_ptr<Staging> s, std::string bytes, uint64_t raw_size);
  // Returns once everything queued has been added.
  void Drain();

  static constexpr size_t kMaxQueuedBytes = 64 << 20;

 private:
  struct Job {
    std::shared_ptr<Staging> staging;
    std::string bytes;
    uint64_t raw_size;
  };
  void Run();

  std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;
  std::deque<Job> jobs_;       // guarded by mu_
  size_t queued_bytes_ = 0;    // guarded by mu_
  bool busy_ = false;          // guarded by mu_: a job is being added
  bool stop_ = false;          // guarded by mu_
  std::string inflated_;       // the worker's scratch
  std::thread thread_;
};

// What a Staging holds, for an image: enough to rebuild the exact bytes
// received (the decoded entries re-serialize to the bytes they came from).
struct StagingImage {
  std::string id;
  uint64_t size = 0;
  Digest sha256{};
  uint64_t received = 0;
  bool invalid = false;
  bool header_done = false;
  uint64_t expected = 0;  // the header's entry count
  StateView entries;
  std::string pending;    // an incomplete header or entry
};

// An immutable image of the whole FSM, for the FSM's own snapshots.
struct FsmImage {
  StateView kv;
  std::deque<std::string> committed_restores;
  std::optional<StagingImage> staging;
  // The envelope libraft stores: "SAFS" | version | kv state | restores |
  // staging. SerializeTo writes SerializedSize() bytes to `out`.
  uint64_t SerializedSize() const;
  void SerializeTo(char* out) const;
  std::string Serialize() const;
  // The same bytes as Serialize(), as pieces to write one after the other,
  // without copying the bulk: the state's leaves (runs of entries, kv_state.h)
  // of 4 KiB or more are referenced where the image holds them, the rest is
  // copied into strings appended to `arena`. The pieces stay valid while this image (or a copy of it) and
  // `arena` live; none is empty.
  std::vector<absl::string_view> Pieces(std::deque<std::string>* arena) const;
};

class KvFsm {
 public:
  ApplyResult Apply(absl::string_view entry);

  const KvState& state() const { return state_; }
  bool RestoreCommitted(const std::string& id) const;
  // The restore in progress, once the worker has caught up (nullptr: none).
  const Staging* staging() {
    worker_.Drain();
    return staging_.get();
  }
  // True once after each committed restore (the engine then compacts its
  // log: the chunks are no longer needed).
  bool TakeRestoreCommitted() { return std::exchange(restore_committed_, false); }

  FsmImage Capture();
  // Replaces everything with a serialized FsmImage (InstallSnapshot or
  // start-up). INTERNAL when the envelope is malformed; nothing changes then.
  absl::Status Load(absl::string_view image);

 private:
  ApplyResult Commit(const Command& c);

  KvState state_;
  bool restore_committed_ = false;
  std::shared_ptr<Staging> staging_;
  std::deque<std::string> committed_restores_;  // most recent last
  StagingWorker worker_;  // last: stopped before the rest goes
};

}  // namespace kv
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_KV_FSM_H_
