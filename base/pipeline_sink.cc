#include "base/pipeline_sink.h"

#include <utility>

#include "base/thread_name.h"

namespace snapshot {

PipelineSink::~PipelineSink() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    queue_.clear();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status PipelineSink::Write(absl::string_view data) {
  if (data.empty()) return absl::OkStatus();
  std::unique_lock<std::mutex> l(mu_);
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  // One block may always wait, whatever its size: a write larger than the
  // queue is passed on alone.
  cv_.wait(l, [&] { return !error_.ok() || queue_.empty() || queued_ + data.size() <= kMaxQueued; });
  if (!error_.ok()) return error_;
  std::string block;
  if (!spare_.empty()) {
    block = std::move(spare_.back());
    spare_.pop_back();
  }
  block.assign(data.data(), data.size());
  queued_ += block.size();
  queue_.push_back(std::move(block));
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status PipelineSink::Flush() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  return error_;
}

void PipelineSink::Run() {
  SetThreadName("sa-pipeline");
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::string block = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    const bool pass = error_.ok();
    l.unlock();
    absl::Status s = pass ? next_->Write(block) : absl::OkStatus();
    l.lock();
    busy_ = false;
    if (!s.ok() && error_.ok()) error_ = std::move(s);
    queued_ -= block.size();
    if (spare_.size() < 2) spare_.push_back(std::move(block));
    cv_.notify_all();
  }
}

}  // namespace snapshot
