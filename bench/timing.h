// What the benchmarks share: wall-clock timing, medians, and dying with a
// message (named after the program) when a step that must work fails.
// Header-only; for bench/ binaries only.
#ifndef SNAPSHOT_AGENT_BENCH_TIMING_H_
#define SNAPSHOT_AGENT_BENCH_TIMING_H_

#include <errno.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace snapshot {
namespace bench {

using Clock = std::chrono::steady_clock;

// Seconds since `since`.
inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The median of `times` (sorted in place).
inline double Median(std::vector<double>* times) {
  std::sort(times->begin(), times->end());
  return (*times)[times->size() / 2];
}

// "PROGRAM: what: status" on stderr, and exit 1.
[[noreturn]] inline void Die(const std::string& what, const absl::Status& s) {
  std::cerr << program_invocation_short_name << ": " << what << ": " << s << "\n";
  exit(1);
}

}  // namespace bench
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BENCH_TIMING_H_
