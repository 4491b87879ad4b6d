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
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/deflate.h"

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
    kRestoreBegin = 3,   // restore_id, size, 32 reserved bytes (zero)
    kRestoreChunk = 4,   // restore_id, offset, data
    kRestoreCommit = 5,  // restore_id, crc64
    kRestoreAbort = 6,   // restore_id: drop the staging
    // restore_id, offset, raw_size, data: the chunk's raw_size bytes in
    // segments, compressible runs deflated (EncodeChunkSegments), when that
    // saves 3% or more.
    kRestoreChunkDeflated = 7,
  };
  Type type = kPut;
  std::string key;         // kPut, kDelete
  std::string value;       // kPut
  // kRestoreChunk*: the chunk's bytes. Encoding reads them from here;
  // decoding points into the entry, which must outlive the view.
  absl::string_view data;
  std::string restore_id;  // restore commands
  uint64_t size = 0;       // kRestoreBegin: total state bytes
  uint64_t offset = 0;     // kRestoreChunk*: offset of the chunk
  uint64_t raw_size = 0;   // kRestoreChunkDeflated: the chunk's size
  // kRestoreCommit: CRC-64 (base/deflate.h) of the whole state, which every
  // node checks against the bytes it received. (The archive's SHA-256 was
  // checked where it was received; this guards the way through the log
  // against accidents, at a tenth of SHA-256's cost on every node.)
  uint64_t crc64 = 0;
};

// The data of a kRestoreChunkDeflated command: segments of
//   u32 LE raw length | u32 LE stored length | stored bytes
// where a stored length equal to the raw length means the bytes as they are
// and a smaller one raw deflate of them. Random-looking runs (compressed or
// encrypted values) are kept as they are, so they cost no inflating.
// Returns false (and leaves `out` unspecified) when the segments would not
// save 3% of `chunk`.
bool EncodeChunkSegments(absl::string_view chunk, FastDeflater* deflater,
                         std::string* out);
// Calls `fn` with the raw bytes of each segment in turn, using `scratch` to
// inflate. False when the segments are malformed or do not add up to
// `raw_size` bytes (fn may have been called for some of them).
bool DecodeChunkSegments(absl::string_view data, uint64_t raw_size, std::string* scratch,
                         const std::function<void(absl::string_view)>& fn);

// Encodes `c`, padded to a multiple of 8 bytes.
std::string EncodeCommand(const Command& c);

// Decodes an entry; INTERNAL for anything malformed (a log entry we did not
// write).
absl::StatusOr<Command> DecodeCommand(absl::string_view entry);

}  // namespace kv
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_COMMAND_H_
