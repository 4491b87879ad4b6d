#include "core/limits.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_format.h"
#include "base/snapshot_meta.h"

namespace snapshot {

absl::Status Limits::CheckState(uint64_t state_bytes) const {
  if (state_bytes <= max_state_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "state.bin is %d bytes, over the limit of %d (--max-state-bytes): this agent would "
      "refuse to verify or restore such a snapshot; raise the limit on every agent of the "
      "cluster",
      state_bytes, max_state_bytes));
}

uint64_t ArchiveBytesFor(uint64_t state_bytes) {
  // Stored blocks add 5 bytes per 64 KiB (< 0.01%); gzip members, tar
  // headers, meta.json and SHA256SUMS are a few KiB. 1/16 and 64 MiB is a
  // wide margin.
  const uint64_t margin = state_bytes / 16 + (uint64_t{64} << 20);
  return state_bytes > UINT64_MAX - margin ? UINT64_MAX : state_bytes + margin;
}

uint64_t DefaultMaxStateBytes(absl::string_view engine) {
  return engine == kEngineEtcd ? uint64_t{8} << 30 : kEmbeddedMaxStateBytes;
}

absl::StatusOr<Limits> MakeLimits(absl::string_view engine, uint64_t max_state_bytes,
                                  uint64_t max_archive_bytes) {
  Limits l;
  l.max_state_bytes = max_state_bytes != 0 ? max_state_bytes : DefaultMaxStateBytes(engine);
  if (engine == kEngineEmbedded && l.max_state_bytes > kEmbeddedMaxStateBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-state-bytes=%d is over the embedded engine's limit of %d bytes: libraft 0.15 "
        "cannot read back a Raft snapshot of 2 GiB or more (a single read), and the engine's "
        "snapshot holds the state twice during a restore; use the etcd engine for larger states",
        l.max_state_bytes, kEmbeddedMaxStateBytes));
  }
  const uint64_t needed = ArchiveBytesFor(l.max_state_bytes);
  l.max_archive_bytes = max_archive_bytes != 0 ? max_archive_bytes : needed;
  if (l.max_archive_bytes < needed) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-archive-bytes=%d cannot hold the archive of a state of --max-state-bytes=%d "
        "(up to %d bytes): raise it, or leave it unset to follow --max-state-bytes",
        l.max_archive_bytes, l.max_state_bytes, needed));
  }
  return l;
}

absl::StatusOr<uint32_t> ChunkSize(uint32_t requested) {
  const uint32_t chunk = requested == 0 ? Limits::kDefaultChunk : requested;
  if (chunk < Limits::kMinChunk || chunk > Limits::kMaxChunk) {
    return absl::InvalidArgumentError(absl::StrFormat("chunk_size must be %d to %d bytes, got %d",
                                                      Limits::kMinChunk, Limits::kMaxChunk,
                                                      chunk));
  }
  return chunk;
}

int CompressThreads(int flag) {
  if (flag > 0) return flag;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace snapshot
