// Limits: the sizes one agent accepts and produces, decided once — from the
// flags, with the defaults of its engine — and handed to everything that
// checks one (Take, Verify, Restore, the catalog, the etcd restore's
// prepare). One home, so that they cannot disagree: an agent never produces
// a snapshot its own Verify or Restore would refuse.
//
//   SA_ASSIGN_OR_RETURN(Limits l, MakeLimits(kEngineEtcd, flag_state, flag_archive));
//
// Threading: values; pure functions.
#ifndef SNAPSHOT_AGENT_CORE_LIMITS_H_
#define SNAPSHOT_AGENT_CORE_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace snapshot {

// A default-constructed Limits limits nothing (tools, tests); an agent's
// come from MakeLimits.
struct Limits {
  // Largest state.bin: Verify and Restore refuse a larger one from the tar
  // header, before the state is decompressed; Take refuses to produce one.
  uint64_t max_state_bytes = UINT64_MAX;
  // Largest compressed archive Verify and Restore accept; at least
  // ArchiveBytesFor(max_state_bytes), so that every state within the limit
  // fits.
  uint64_t max_archive_bytes = UINT64_MAX;

  // Message sizes of the streaming RPCs (TakeSnapshot, FetchSnapshot):
  // chunk_size 0 means kDefaultChunk.
  static constexpr uint32_t kMinChunk = 16 << 10;
  static constexpr uint32_t kMaxChunk = 4 << 20;
  static constexpr uint32_t kDefaultChunk = 1 << 20;

  // The refusal of a state over max_state_bytes, the same words for Take
  // (before it starts) as the archive reader uses for Verify and Restore.
  absl::Status CheckState(uint64_t state_bytes) const;
};

// The largest archive a state of `state_bytes` can produce (state stored in
// deflate's stored blocks, plus the tar and gzip framing), with margin.
uint64_t ArchiveBytesFor(uint64_t state_bytes);

// The embedded engine's largest state, its default and ceiling: 1 GiB less
// 1 MiB. libraft 0.15 reads a Raft snapshot back (at start-up, and to send
// it to a follower) with a single read(2), which Linux caps at 0x7ffff000
// bytes, so a larger snapshot file can be written but never loaded again
// ("short read"); and the engine's snapshot taken during a restore holds the
// state and the staged bytes, twice the state, plus a few KiB of envelope.
inline constexpr uint64_t kEmbeddedMaxStateBytes = (uint64_t{1} << 30) - (uint64_t{1} << 20);

// The engine's default state limit: kEmbeddedMaxStateBytes for the embedded
// engine (its state lives in memory, twice during a restore), 8 GiB for etcd
// (the largest --quota-backend-bytes etcd recommends).
uint64_t DefaultMaxStateBytes(absl::string_view engine);

// The agent's limits from its flags (0: the default). INVALID_ARGUMENT when
// --max-archive-bytes cannot hold an archive of a --max-state-bytes state,
// or when --max-state-bytes is over the embedded engine's ceiling.
absl::StatusOr<Limits> MakeLimits(absl::string_view engine, uint64_t max_state_bytes,
                                  uint64_t max_archive_bytes);

// The chunk size of a request: 0 is the default; INVALID_ARGUMENT outside
// kMinChunk..kMaxChunk.
absl::StatusOr<uint32_t> ChunkSize(uint32_t requested);

// --compress-threads: 0 means one per core (at least 1).
int CompressThreads(int flag);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_LIMITS_H_
