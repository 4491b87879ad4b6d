// libraft's CRC-32, computed with ISA-L.
//
// libraft 0.15.0 checksums every log batch, segment header and snapshot it
// writes or reads with an internal byte-at-a-time CRC-32 (`byteCrc32`, ~320
// MB/s here): on a restore through the log that was the largest single cost on
// the Raft loop (docs/restore.md). The agent links Debian's static libraft.a
// with `-Wl,--wrap=byteCrc32`, so libraft's calls land in this file, which
// computes the same function with ISA-L's carry-less-multiply CRC (~7.7 GB/s).
// The values are bit for bit the same, so logs and snapshots are unchanged on
// disk and stay readable by any libraft 0.15 build.
//
// The function is checked, not assumed: on first use the ISA-L result is
// compared with libraft's own on a fixed set of buffers, offsets and initial
// values, and if any differs (a libraft that changed its checksum) every call
// goes to libraft's own code instead. Thread-safe; no state besides that
// one-time check.
#ifndef SNAPSHOT_AGENT_RAFT_LIBRAFT_CRC32_H_
#define SNAPSHOT_AGENT_RAFT_LIBRAFT_CRC32_H_

#include <cstddef>

namespace snapshot {

// libraft's checksum of `size` bytes at `data`, continuing from `init` (0 to
// start), as libraft's `byteCrc32` defines it: CRC-32 with polynomial
// 0x04C11DB7, not reflected, no inversion.
unsigned LibraftCrc32(const void* data, std::size_t size, unsigned init);

// libraft's own (byte-at-a-time) implementation, for tests.
unsigned LibraftCrc32Reference(const void* data, std::size_t size,
                               unsigned init);

// True when LibraftCrc32 (and so libraft itself) uses ISA-L; false when the
// start-up comparison sent it back to libraft's own code.
bool LibraftCrc32IsAccelerated();

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_LIBRAFT_CRC32_H_
