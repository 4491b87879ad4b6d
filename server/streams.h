// The limits every snapshot stream of an agent lives under, whoever opened
// it — a client (Take, Verify, Restore, Fetch) or another agent (the etcd
// restore's Prepare): a slot among --max-streams (of which callers with the
// read role may hold all but a reserve, so that they cannot starve an
// admin's restore or another agent's Prepare), and the StreamWatchdog,
// which ends a stream that stays idle for --idle-timeout or moves less than
// --min-transfer-rate, and every stream at shutdown.
//
// Threading: everything here is thread-safe. One StreamLimits per agent,
// shared by its services; it must outlive them.
#ifndef SNAPSHOT_AGENT_SERVER_STREAMS_H_
#define SNAPSHOT_AGENT_SERVER_STREAMS_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace snapshot {

// Ends streams that move too little data, and all streams at shutdown.
// One background thread.
class StreamWatchdog {
 public:
  // `min_rate` in bytes per second (0: none), checked per `window`.
  StreamWatchdog(absl::Duration window, uint64_t min_rate);
  ~StreamWatchdog();

  class Stream {
   public:
    // Records that `bytes` moved (0: a message without payload).
    void Touch(uint64_t bytes) {
      last_ns_ = absl::GetCurrentTimeNanos();
      window_bytes_ += bytes;
    }
    // From now on the stream is not stopped any more (call before the owner
    // goes away, or before work that moves no data, such as an apply).
    void Disarm();
    // Why the stream was stopped; OK while it was not.
    absl::Status why() const;

   private:
    friend class StreamWatchdog;
    void Stop(const absl::Status& why);
    mutable std::mutex mu_;
    bool armed_ = true;
    absl::Status why_;
    std::function<void(const absl::Status&)> stop_;
    std::atomic<int64_t> last_ns_{0};
    std::atomic<uint64_t> window_bytes_{0};
    int64_t window_start_ns_ = 0;  // watchdog thread only
  };

  // Watches a stream until the handle is destroyed or disarmed. `stop` is
  // called at most once, from the watchdog's thread, with
  // RESOURCE_EXHAUSTED (idle, too slow) or UNAVAILABLE (shutdown); it must
  // make the stream end promptly (cancel it or finish it with that status).
  std::shared_ptr<Stream> Watch(std::function<void(const absl::Status&)> stop);
  // Stops every watched stream now with `why`.
  void StopAll(const absl::Status& why);

 private:
  void Run();
  const absl::Duration window_;
  const uint64_t min_rate_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::list<std::weak_ptr<Stream>> streams_;
  std::thread thread_;
};

// A place among the concurrent snapshot streams, held until destroyed.
class StreamSlot {
 public:
  // Counts itself in `count`, and in `read` when not null.
  StreamSlot(std::atomic<int>* count, std::atomic<int>* read) : count_(count), read_(read) {
    count_->fetch_add(1);
    if (read_ != nullptr) read_->fetch_add(1);
  }
  ~StreamSlot() {
    count_->fetch_sub(1);
    if (read_ != nullptr) read_->fetch_sub(1);
  }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

 private:
  std::atomic<int>* count_;
  std::atomic<int>* read_;
};

class StreamLimits {
 public:
  // `max_streams` slots; the watchdog's window and minimum rate (bytes/s, 0:
  // none).
  StreamLimits(int max_streams, absl::Duration idle_timeout, uint64_t min_rate);

  // A slot, or RESOURCE_EXHAUSTED naming the limit when all are taken. A
  // caller with the read role (`read_role`) gets one only while read-role
  // streams hold fewer than ReadShare() slots.
  absl::StatusOr<std::unique_ptr<StreamSlot>> Acquire(bool read_role);
  // What read-role streams may hold: all but max/4 (at least one) of the
  // slots; all of them when there is only one.
  int ReadShare() const { return max_ < 2 ? max_ : max_ - std::max(1, max_ / 4); }
  // As StreamWatchdog::Watch.
  std::shared_ptr<StreamWatchdog::Stream> Watch(std::function<void(const absl::Status&)> stop) {
    return watchdog_.Watch(std::move(stop));
  }
  // Ends every watched stream now with `why`.
  void StopAll(const absl::Status& why) { watchdog_.StopAll(why); }

 private:
  const int max_;
  std::mutex mu_;  // one Acquire at a time: the two counts are checked together
  std::atomic<int> count_{0};
  std::atomic<int> read_count_{0};
  StreamWatchdog watchdog_;
};

// Why a watched stream ended early: stopped by the watchdog (idle, too slow,
// shutdown), or cancelled by the client.
absl::Status Interrupted(const StreamWatchdog::Stream& watch);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_STREAMS_H_
