// The embedded engine's replicated key-value state and its serialized form.
//
// KvState is the state machine's data: an ordered map of byte-string keys to
// byte-string values. It is held as its own serialized entries: leaves of up
// to kLeafBytes of consecutive entries (a larger entry has a leaf of its
// own), grouped into branches of up to kBranchLeaves leaves, both shared
// copy-on-write. So the in-memory state costs little more than its
// serialized form (4 bytes an entry and a few dozen a leaf), View() captures
// an immutable point-in-time view in O(branches) — a few microseconds for
// GiBs —, a write while a view is alive copies one leaf and one branch's
// leaf list, serializing a view is copying its leaves, and a state read in
// key order (a restore, a Raft snapshot) is built by appending, with no
// per-key lookup.
//
// Serialized form (what `state.bin` holds for this engine; deterministic: the
// same contents always give the same bytes):
//
//   header  "SAKV" | u8 version = 1 | 3 zero bytes | u64 LE entry count
//   entry   u32 LE key length | u32 LE value length | key | value
//
// entries in strictly ascending bytewise key order; nothing after the last.
// Keys are 1..kMaxKeyBytes bytes, values 0..kMaxValueBytes bytes.
//
// Threading: KvState is not thread-safe (the Raft loop thread owns it).
// StateView is immutable and may be read from any thread, concurrently.
// Errors: decoding faults are FAILED_PRECONDITION naming what is wrong
// ("not a snapshot-agent key-value state"), since a well-formed archive whose
// state is of another kind is not corruption but the wrong input.
#ifndef SNAPSHOT_AGENT_RAFT_KV_STATE_H_
#define SNAPSHOT_AGENT_RAFT_KV_STATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/io.h"
#include "engine/node.h"

namespace snapshot {
namespace kv {

constexpr size_t kMaxKeyBytes = 4096;
constexpr size_t kMaxValueBytes = 1 << 20;
constexpr size_t kHeaderBytes = 16;
// A leaf closes once its entries reach this many bytes.
constexpr size_t kLeafBytes = 16 << 10;
// A branch splits in two beyond this many leaves.
constexpr size_t kBranchLeaves = 1024;

// Serialized size of one entry.
inline uint64_t EntryBytes(size_t key_len, size_t value_len) {
  return 8 + key_len + value_len;
}

// The serialized form's header for a state of `count` entries.
std::string EncodeStateHeader(uint64_t count);

// Checks a key and a value against the limits (INVALID_ARGUMENT).
absl::Status ValidateEntry(absl::string_view key, absl::string_view value);

// Leaves and branches (defined in kv_state.cc).
struct Leaf;
struct Branch;

class StateView {
 public:
  StateView() = default;
  uint64_t count() const { return count_; }
  // Length of the serialized form.
  uint64_t SerializedSize() const { return kHeaderBytes + bytes_; }
  std::optional<std::string> Get(absl::string_view key) const;
  // A page of the entries whose key starts with `prefix` and is greater than
  // `start_after`, in key order: at most `limit` entries, ending once
  // `max_bytes` of keys and values are reached (at least one entry when there
  // is one). Work and memory are bounded by the page, not the state.
  ListPage List(absl::string_view prefix, absl::string_view start_after,
                size_t limit, uint64_t max_bytes) const;
  // A source of the serialized form (SerializedSize() bytes). The source
  // keeps the view alive; it may be read on any thread.
  std::unique_ptr<ByteSource> NewSource() const;
  // The serialized form without copying it: `fn` gets its pieces in order.
  // A piece with `stable` true is a run of entries inside the view's leaves,
  // valid for as long as this view or a copy of it lives; any other piece
  // (the header) is valid only during the call. Runs on the calling thread.
  void ForEachPiece(const std::function<void(absl::string_view piece, bool stable)>& fn) const;

 private:
  friend class KvState;
  std::vector<std::shared_ptr<const Branch>> branches_;
  uint64_t count_ = 0;
  uint64_t bytes_ = 0;
};

class KvState {
 public:
  // Inserts or replaces. The entry must pass ValidateEntry().
  void Put(std::string key, std::string value);
  // Adds an entry after every key held (the caller has checked the order
  // and ValidateEntry): how a state read in key order is built, with no
  // lookup.
  void Append(absl::string_view key, absl::string_view value);
  // Returns whether the key existed.
  bool Delete(const std::string& key);
  std::optional<std::string> Get(absl::string_view key) const;
  uint64_t count() const { return count_; }
  uint64_t SerializedSize() const { return kHeaderBytes + bytes_; }
  // An immutable view of the current contents, in O(branches).
  StateView View() const;

 private:
  std::vector<std::shared_ptr<Branch>> branches_;
  uint64_t count_ = 0;
  uint64_t bytes_ = 0;
};

// Incremental parser of the serialized form: feed bytes in chunks of any
// size; `on_entry` (may be empty) sees every entry in order (the views are
// valid during the call only). Memory is bounded by one entry.
class StateDecoder {
 public:
  using EntryFn = std::function<void(absl::string_view key, absl::string_view value)>;
  explicit StateDecoder(EntryFn on_entry = nullptr);
  absl::Status Feed(absl::string_view data);
  // Checks that the input ended exactly after the last announced entry.
  // Returns the number of entries.
  absl::StatusOr<uint64_t> Finish();

  // Where the decoder stands, so that the bytes fed so far can be rebuilt
  // from the entries delivered: the header's entry count (once the header
  // is complete) and the bytes of an incomplete header or entry.
  bool header_done() const { return header_done_; }
  uint64_t expected() const { return expected_; }
  absl::string_view pending() const { return buf_; }

 private:
  absl::Status Fail(const std::string& what);
  absl::Status CheckSizes(uint64_t key_len, uint64_t value_len, uint64_t at);
  absl::Status Entry(absl::string_view key, absl::string_view value);
  absl::Status CheckMagic();
  EntryFn on_entry_;
  std::string buf_;
  bool header_done_ = false;
  uint64_t expected_ = 0, seen_ = 0;
  uint64_t offset_ = 0;
  std::string last_key_;
  absl::Status error_;
};

// Decodes a whole serialized state.
absl::StatusOr<KvState> DecodeState(absl::string_view bytes);

}  // namespace kv
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_KV_STATE_H_
