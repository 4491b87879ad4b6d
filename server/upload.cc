#include "server/upload.h"

#include "base/thread_name.h"

namespace snapshot {

UploadWorkers::UploadWorkers(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this] {
      SetThreadName("sa-upload-end");
      std::unique_lock<std::mutex> l(mu_);
      for (;;) {
        cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing left
        std::function<void()> fn = std::move(queue_.front());
        queue_.pop_front();
        l.unlock();
        fn();
        l.lock();
      }
    });
  }
}

UploadWorkers::~UploadWorkers() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void UploadWorkers::Run(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_all();
}

void UploadWorkers::ReactorStarted() {
  std::lock_guard<std::mutex> l(mu_);
  ++live_reactors_;
}

void UploadWorkers::ReactorDone() {
  {
    std::lock_guard<std::mutex> l(mu_);
    --live_reactors_;
  }
  cv_.notify_all();
}

bool UploadWorkers::Drain(absl::Time deadline) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_until(l, absl::ToChronoTime(deadline), [this] { return live_reactors_ == 0; });
}

}  // namespace snapshot
