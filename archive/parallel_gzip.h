// The agent's gzip Compressor: parallel, and quick on data that does not
// compress. The input is cut into fixed-size blocks that worker threads
// compress at once; the output is standard gzip (RFC 1952): a sequence of
// gzip members, which every reader accepts — ours, zlib's, gzip(1) and Go's
// compress/gzip (Nomad, Consul).
//
// Inside a block, each 16 KiB piece is classified first. A piece whose bytes
// look random (sampled byte entropy near 8 bits) and hold no long repeats
// (random bytes repeated still compress) is *stored* (deflate's uncompressed
// blocks: a copy); the others are compressed — by libdeflate at `level`, or
// in fast mode by ISA-L's igzip (level 1). Consecutive pieces of one kind form one member.
// Snapshots often hold already-compressed or encrypted values: those pass at
// memory speed instead of costing the compressor's full effort for nothing,
// and read back at memory speed too. A level above 1 is honoured as a ratio:
// a block whose sample igzip (fast mode's encoder), libdeflate's level 1, or
// else one of its levels below the one asked for, compresses to within 1% of
// the level's size — libdeflate's at that level, or gzip's (zlib's) when that
// is larger — is compressed by the fastest such encoder (repetitive records
// and tiny ones often reach igzip's or level 1's; etcd's database of
// Kubernetes-like objects reaches gzip -6's size at libdeflate's level 5).
// Sizes are measured warm (after the sample's 32 KiB of history), and a
// worker's choice holds for its next three blocks.
//
// Every member carries, in its gzip header's FEXTRA field, a subfield "SA"
// (4 bytes, little endian) with the member's total size, as BGZF does with
// "BC": readers that do not know it skip it (RFC 1952 2.3.1.1); ours can find
// members without inflating them.
//
// Memory is bounded and reused: `threads` workers, 2 × threads block slots,
// each with its input and output buffers (about 2 × block_bytes each),
// allocated once per compressor; and each worker's encoders: libdeflate at
// the level (656 KiB in libdeflate 1.14) and, above level 1, its level 1
// (200 KiB), zlib at the level (~260 KiB) and, allocated the first time a
// sample reaches them, the levels between (656 KiB each: at most 4.5 MiB per
// worker at level 9, 2.6 MiB at level 6).
//
// Threading: the Compressor itself is used by one thread; it runs its own
// workers. Ownership: the sink is borrowed. Errors: INVALID_ARGUMENT for a
// bad level or thread count, RESOURCE_EXHAUSTED when out of memory, sink
// errors unchanged.
#ifndef SNAPSHOT_AGENT_ARCHIVE_PARALLEL_GZIP_H_
#define SNAPSHOT_AGENT_ARCHIVE_PARALLEL_GZIP_H_

#include <cstddef>

#include "archive/gzip.h"

namespace snapshot {

// The member-size subfield of our gzip headers ("SA", 4-byte value).
inline constexpr char kMemberSizeSubfield[2] = {'S', 'A'};

// A level 0 (store everything) to 9 with libdeflate, or fast mode (ISA-L
// igzip level 1); `threads` >= 1; `block_bytes` of input per block.
CompressorFactory ParallelGzipCompressor(Compression compression, int threads,
                                         size_t block_bytes = 4 << 20);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_PARALLEL_GZIP_H_
