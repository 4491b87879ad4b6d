// A parallel gzip Compressor: the input is cut into fixed-size blocks, each
// compressed by libdeflate into a gzip member of its own on a worker thread,
// and the members are written in order. Concatenated members are standard
// gzip (RFC 1952 section 2.2), which every reader accepts — ours, zlib's,
// gzip(1) and Go's compress/gzip (Nomad, Consul).
//
// Memory is bounded: at most `threads + 1` blocks are in flight, each with
// its compressed output (about 2 × block_bytes each).
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

// `level` 0 (store) to 9 (libdeflate accepts up to 12; we keep zlib's
// scale); `threads` >= 1; `block_bytes` of input per gzip member.
CompressorFactory ParallelGzipCompressor(int level, int threads,
                                         size_t block_bytes = 4 << 20);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_PARALLEL_GZIP_H_
