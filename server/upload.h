// The one shape of the agent's upload RPCs (VerifySnapshot,
// RestoreSnapshot) on gRPC's callback API: an UploadSession says what the
// messages mean; the UploadReactor does the transport, as gRPC's own health
// service does it — one read in flight, OnCancel handled, Finish exactly
// once — under the agent's StreamLimits (a slot; idle and slow streams ended
// by the watchdog). The slow end of an upload (verifying its end, applying a
// restore) runs on UploadWorkers' threads, never on a detached thread; the
// workers count the live reactors, so that shutdown can wait for them.
//
// Threading: a reactor's callbacks come from gRPC's threads, one read at a
// time; the session is used under a mutex. Ownership: a reactor deletes
// itself in OnDone; the StreamLimits and UploadWorkers must outlive every
// reactor (the service that owns them drains them first).
#ifndef SNAPSHOT_AGENT_SERVER_UPLOAD_H_
#define SNAPSHOT_AGENT_SERVER_UPLOAD_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/rpc.h"
#include "server/streams.h"

namespace snapshot {

// What an upload RPC does with the messages it receives, apart from the
// transport: OnMessage for each (fast), OnEnd once the client has sent
// everything (may be slow: it runs on a worker thread).
template <typename Req>
class UploadSession {
 public:
  virtual ~UploadSession() = default;
  virtual absl::Status OnMessage(const Req& req, uint64_t* bytes) = 0;
  virtual absl::Status OnEnd() = 0;
};

// Threads for the slow ends of uploads, and the count of live reactors.
class UploadWorkers {
 public:
  // `threads` >= 1: as many ends as can run at once (the stream slots).
  explicit UploadWorkers(int threads);
  // Waits for the work queued and running, then joins the threads.
  ~UploadWorkers();

  void Run(std::function<void()> fn);
  void ReactorStarted();
  void ReactorDone();
  // Waits until no reactor is alive; false when `deadline` passes first.
  bool Drain(absl::Time deadline);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  int live_reactors_ = 0;
  std::vector<std::thread> threads_;
};

// Drives an UploadSession. Ends the call with RESOURCE_EXHAUSTED when the
// client stays idle or too slow, UNAVAILABLE at shutdown, CANCELLED when
// cancelled. The session (e.g. a restore's spool and the restore slot) and
// the stream slot are released before the client hears the final status, so
// that it can start its next call at once.
template <typename Req>
class UploadReactor : public grpc::ServerReadReactor<Req> {
 public:
  // `rpc` has been authorized already; `start` not OK ends the call at once.
  UploadReactor(grpc::CallbackServerContext* ctx, std::unique_ptr<Rpc> rpc, StreamLimits* limits,
                UploadWorkers* workers, absl::Status start, std::unique_ptr<StreamSlot> slot,
                std::unique_ptr<UploadSession<Req>> session)
      : ctx_(ctx), rpc_(std::move(rpc)), workers_(workers), slot_(std::move(slot)),
        session_(std::move(session)) {
    workers_->ReactorStarted();
    if (!start.ok()) {
      FinishOnce(start);
      return;
    }
    watch_ = limits->Watch([this](const absl::Status& why) { FinishOnce(why); });
    this->StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client finished sending, or the call was cancelled or stopped.
      if (Finished()) return;
      if (ctx_->IsCancelled()) {
        FinishOnce(absl::CancelledError("the call was cancelled"));
        return;
      }
      // Nothing moves from here on (verifying the end, applying): the
      // transfer limits and the shutdown stop no longer apply, and a
      // cancellation no longer interrupts (the apply runs to its end).
      watch_->Disarm();
      {
        std::lock_guard<std::mutex> l(mu_);
        ending_ = true;
      }
      workers_->Run([this] {
        absl::Status s;
        {
          std::lock_guard<std::mutex> l(session_mu_);
          s = session_->OnEnd();
        }
        FinishOnce(s);
      });
      return;
    }
    absl::Status s;
    const uint64_t before = rpc_->bytes;
    {
      std::lock_guard<std::mutex> l(session_mu_);
      if (!session_) return;  // finished meanwhile (idle, shutdown)
      s = session_->OnMessage(req_, &rpc_->bytes);
    }
    watch_->Touch(rpc_->bytes - before);
    if (!s.ok()) {
      FinishOnce(s);
      return;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!finished_) this->StartRead(&req_);
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (ending_) return;  // the end runs to completion and finishes
    }
    FinishOnce(absl::CancelledError("the call was cancelled"));
  }

  void OnDone() override {
    if (watch_) watch_->Disarm();
    UploadWorkers* workers = workers_;
    delete this;
    workers->ReactorDone();
  }

 private:
  bool Finished() {
    std::lock_guard<std::mutex> l(mu_);
    return finished_;
  }
  // Finish() may lead to OnDone() (and `delete this`) on another thread at
  // once: nothing may touch the reactor after it.
  void FinishOnce(const absl::Status& s) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (finished_) return;
      finished_ = true;
    }
    {
      std::lock_guard<std::mutex> l(session_mu_);
      session_.reset();
    }
    slot_.reset();
    grpc::Status final_status = rpc_->Done(s);
    this->Finish(final_status);
  }

  grpc::CallbackServerContext* ctx_;
  std::unique_ptr<Rpc> rpc_;
  UploadWorkers* workers_;
  std::unique_ptr<StreamSlot> slot_;
  std::mutex session_mu_;  // held while the session is in use
  std::unique_ptr<UploadSession<Req>> session_;
  std::shared_ptr<StreamWatchdog::Stream> watch_;
  Req req_;
  std::mutex mu_;
  bool finished_ = false;  // guarded by mu_
  bool ending_ = false;    // guarded by mu_: OnEnd handed to a worker
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_UPLOAD_H_
