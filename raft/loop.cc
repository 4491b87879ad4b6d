#include "raft/loop.h"

namespace snapshot {

void LoopMailbox::Attach(uv_loop_t* loop) {
  wake_.data = this;
  uv_async_init(loop, &wake_, &LoopMailbox::OnWake);
}

bool LoopMailbox::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!accepting_) return false;
    queue_.push_back(std::move(fn));
  }
  uv_async_send(&wake_);
  return true;
}

void LoopMailbox::Close(std::function<void()> last) {
  {
    std::lock_guard<std::mutex> l(mu_);
    accepting_ = false;
    queue_.push_back(std::move(last));
  }
  uv_async_send(&wake_);
}

void LoopMailbox::CloseHandle() {
  uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
}

void LoopMailbox::OnWake(uv_async_t* h) {
  auto* self = static_cast<LoopMailbox*>(h->data);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> l(self->mu_);
    work.swap(self->queue_);
  }
  for (auto& fn : work) fn();
}

}  // namespace snapshot
