// Commands of the embedded engine's replicated log.
//
// Every command is self-delimiting and its encoding is zero-padded to a
// multiple of 8 bytes: libraft 0.15.0 writes unreadable log segments for
// entries of other lengths (../shared/RAFT_NOTES.md, defect 1). The decoder
// ignores at most 7 trailing zero bytes and refuses anything else.
//
//   u8 type | 7 zero bytes | fields...   (u32 LE lengths, u64 LE numbers)
//
// Pure functions; no Raft in here.
#ifndef SNAPSHOT_AGENT_RAFT_COMMAND_H_
#define SNAPSHOT_AGENT_RAFT_COMMAND_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/sha256.h"

namespace snapshot {
namespace kv {

// Largest encoded command; entries stay ≤ 4 MiB (RAFT_NOTES, defect 5).
constexpr size_t kMaxCommandBytes = 4 << 20;
// Largest chunk of state carried by one RestoreChunk command.
constexpr size_t kRestoreChunkBytes = kMaxCommandBytes - 64;

struct Command {
  enum Type : uint8_t {
    kPut = 1,
    kDelete = 2,
    kRestoreBegin = 3,   // restore_id, size, sha256
    kRestoreChunk = 4,   // restore_id, offset, data
    kRestoreCommit = 5,  // restore_id
  };
  Type type = kPut;
  std::string key;         // kPut, kDelete
  std::string value;       // kPut; chunk data for kRestoreChunk
  std::string restore_id;  // restore commands
  uint64_t size = 0;       // kRestoreBegin: total state bytes
  uint64_t offset = 0;     // kRestoreChunk: offset of the chunk
  Digest sha256{};         // kRestoreBegin: SHA-256 of the whole state
};

// Encodes `c`, padded to a multiple of 8 bytes.
std::string EncodeCommand(const Command& c);

// Decodes an entry; INTERNAL for anything malformed (a log entry we did not
// write).
absl::StatusOr<Command> DecodeCommand(absl::string_view entry);

}  // namespace kv
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_COMMAND_H_
