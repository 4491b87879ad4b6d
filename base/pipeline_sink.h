// PipelineSink: a ByteSink that hands what it is given to another sink on a
// thread of its own, so that the writer (a gRPC callback receiving an upload,
// say) and the next stage (inflating and hashing it) run at the same time.
//
//   PipelineSink pipe(&reader_sink);
//   pipe.Write(chunk); ...          // returns once the bytes are queued
//   SA_RETURN_IF_ERROR(pipe.Flush());  // everything passed on, or the error
//
// Write copies the bytes into a queue of at most kMaxQueued bytes (it waits
// while the queue is full) and returns the first error `next` has returned so
// far: an error shows on a later Write than the bytes that caused it, and
// bytes written after it are dropped. Flush waits until `next` has taken
// everything queued and returns that error (OK when none).
//
// Threading: Write and Flush from one thread at a time; `next` is called on
// the pipeline's thread only, in order, and not after Flush has returned
// until the next Write. Ownership: `next` is borrowed and must outlive the
// pipeline; the destructor drops what is still queued and joins the thread.
// Memory: up to kMaxQueued bytes queued plus the block being passed on.
#ifndef SNAPSHOT_AGENT_BASE_PIPELINE_SINK_H_
#define SNAPSHOT_AGENT_BASE_PIPELINE_SINK_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/io.h"

namespace snapshot {

class PipelineSink : public ByteSink {
 public:
  static constexpr size_t kMaxQueued = 2 << 20;

  explicit PipelineSink(ByteSink* next) : next_(next) {}
  ~PipelineSink() override;
  PipelineSink(const PipelineSink&) = delete;
  PipelineSink& operator=(const PipelineSink&) = delete;

  absl::Status Write(absl::string_view data) override;
  absl::Status Flush();

 private:
  void Run();

  ByteSink* const next_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;   // guarded by mu_
  size_t queued_ = 0;               // guarded by mu_: bytes in queue_
  bool busy_ = false;               // guarded by mu_: a block is being passed on
  bool stop_ = false;               // guarded by mu_
  absl::Status error_;              // guarded by mu_: next_'s first error
  std::vector<std::string> spare_;  // guarded by mu_: buffers to reuse
  std::thread thread_;              // started by the first Write
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_PIPELINE_SINK_H_
