// Little-endian fixed-width integers, as the project's private binary
// formats (the SAKV state, the Raft commands, the FSM image) write them.
//
//   std::string out;
//   PutFixed32(7, &out);              // "\x07\x00\x00\x00"
//   uint32_t v = DecodeFixed32(out.data());  // 7
//
// Pure functions; the Decode functions read exactly 4 or 8 bytes at `p`,
// which the caller must have checked are there.
#ifndef SNAPSHOT_AGENT_BASE_CODING_H_
#define SNAPSHOT_AGENT_BASE_CODING_H_

#include <cstdint>
#include <string>

namespace snapshot {

inline void PutFixed32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

inline void PutFixed64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_CODING_H_
