// The embedded engine's mailbox to its libuv loop thread.
//
// Only the loop thread may touch `struct raft` (../shared/RAFT_NOTES.md).
// Other threads post closures to a mutex-protected queue and wake the loop
// with one uv_async_t (uv_async_send is the only thread-safe libuv call); the
// loop runs the whole queue per wake-up. A caller that needs an answer posts
// a closure that fills a Waiter, and waits with a deadline: request state
// lives in shared_ptrs, so a callback that fires after the caller gave up is
// harmless. Never wait on the loop thread for something the loop must
// produce (deadlock).
//
// Threading: Post/Call/Close from any thread; Attach before the loop runs.
#ifndef SNAPSHOT_AGENT_RAFT_LOOP_H_
#define SNAPSHOT_AGENT_RAFT_LOOP_H_

#include <uv.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace snapshot {

// A one-shot result that a loop-thread callback fills and a caller waits for.
// The first Set wins.
template <typename T>
class Waiter {
 public:
  void Set(absl::StatusOr<T> v) {
    std::lock_guard<std::mutex> l(mu_);
    if (value_) return;
    value_ = std::move(v);
    cv_.notify_all();
  }
  // DEADLINE_EXCEEDED when nothing was set by `deadline`.
  absl::StatusOr<T> Wait(absl::Time deadline) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_until(l, absl::ToChronoTime(deadline),
                        [&] { return value_.has_value(); })) {
      return absl::DeadlineExceededError(
          "the deadline passed before the Raft node answered");
    }
    return *value_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<absl::StatusOr<T>> value_;
};

class LoopMailbox {
 public:
  // Registers the wake-up handle on `loop` (before uv_run).
  void Attach(uv_loop_t* loop);

  // Runs `fn` on the loop thread. False when the mailbox is closed.
  bool Post(std::function<void()> fn);

  // Posts `fn`, which must eventually Set() the waiter, and waits for it
  // until `deadline`. UNAVAILABLE when the mailbox is closed.
  template <typename T>
  absl::StatusOr<T> Call(std::function<void(std::shared_ptr<Waiter<T>>)> fn,
                         absl::Time deadline) {
    auto w = std::make_shared<Waiter<T>>();
    if (!Post([w, fn = std::move(fn)] { fn(w); })) {
      return absl::UnavailableError("the Raft node is shutting down");
    }
    return w->Wait(deadline);
  }

  // Refuses further posts and runs `last` on the loop thread after what is
  // queued. `last` must eventually call CloseHandle() (on the loop thread)
  // so that the loop can end.
  void Close(std::function<void()> last);
  // Loop thread: closes the wake-up handle.
  void CloseHandle();

 private:
  static void OnWake(uv_async_t* h);
  uv_async_t wake_;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  bool accepting_ = true;                     // guarded by mu_
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_LOOP_H_
