// Tar headers as the snapshot archive uses them (see docs/archive-format.md):
// USTAR headers as Go's archive/tar writes them, plus a PAX extended header
// carrying `size` for entries of 8 GiB or more.
//
// Pure functions on byte blocks; no I/O. Parse errors are DATA_LOSS.
#ifndef SNAPSHOT_AGENT_ARCHIVE_TAR_H_
#define SNAPSHOT_AGENT_ARCHIVE_TAR_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace snapshot {
namespace tar {

constexpr size_t kBlockSize = 512;
// Largest size the 11-digit octal USTAR size field holds (8 GiB - 1).
constexpr uint64_t kMaxUstarSize = 077777777777ull;

// Bytes of zero padding that follow `size` bytes of entry data.
inline size_t PaddingFor(uint64_t size) {
  return static_cast<size_t>((kBlockSize - size % kBlockSize) % kBlockSize);
}

// One USTAR header block as Go writes it: mode 0600, uid/gid 0, `mtime` in
// seconds, magic "ustar\0" "00", checksum filled in. `name` is cut at 100
// bytes; `size` must be at most kMaxUstarSize.
std::string EncodeHeaderBlock(absl::string_view name, uint64_t size,
                              int64_t mtime, char typeflag);

// One PAX record "<len> <key>=<value>\n", <len> counting the whole record.
std::string PaxRecord(absl::string_view key, absl::string_view value);

// The header block(s) for a regular file `name` (≤ 100 bytes) of `size`
// bytes: one USTAR block (mode 0600, uid/gid 0, `mtime` in seconds), preceded
// by a PAX header and its body when `size` exceeds kMaxUstarSize. The result
// is a multiple of kBlockSize bytes.
std::string EncodeFileHeader(absl::string_view name, uint64_t size,
                             int64_t mtime);

struct Header {
  std::string name;   // prefix + "/" + name when the USTAR prefix is set
  uint64_t size = 0;  // bytes of data that follow the header
  char typeflag = 0;  // '0' or '\0' regular file, 'x' PAX header, ...
};

// True when all 512 bytes are zero (the end-of-archive marker).
bool IsZeroBlock(absl::string_view block);

// Parses one 512-byte header block. DATA_LOSS when the checksum does not
// match or a numeric field is malformed.
absl::StatusOr<Header> ParseHeader(absl::string_view block);

// Records of a PAX extended header body ("<len> <key>=<value>\n" ...).
// Returns the `size` and `path` records it finds (others are ignored, as Go
// does for unknown keys); DATA_LOSS for a malformed body.
struct PaxRecords {
  bool has_size = false;
  uint64_t size = 0;
  bool has_path = false;
  std::string path;
};
absl::StatusOr<PaxRecords> ParsePax(absl::string_view body);

}  // namespace tar
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_TAR_H_
