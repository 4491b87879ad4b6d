#include "server/streams.h"

#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/thread_name.h"

namespace snapshot {

// --- StreamWatchdog ---------------------------------------------------------

void StreamWatchdog::Stream::Disarm() {
  std::lock_guard<std::mutex> l(mu_);
  armed_ = false;
}

absl::Status StreamWatchdog::Stream::why() const {
  std::lock_guard<std::mutex> l(mu_);
  return why_;
}

void StreamWatchdog::Stream::Stop(const absl::Status& why) {
  // Under the lock, so that Disarm() returns only once no stop is running.
  std::lock_guard<std::mutex> l(mu_);
  if (!armed_ || !why_.ok()) return;
  why_ = why;
  stop_(why);
}

StreamWatchdog::StreamWatchdog(absl::Duration window, uint64_t min_rate)
    : window_(window), min_rate_(min_rate), thread_([this] { Run(); }) {}

StreamWatchdog::~StreamWatchdog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<StreamWatchdog::Stream> StreamWatchdog::Watch(
    std::function<void(const absl::Status&)> stop) {
  auto s = std::make_shared<Stream>();
  s->stop_ = std::move(stop);
  s->Touch(0);
  s->window_start_ns_ = absl::GetCurrentTimeNanos();
  std::lock_guard<std::mutex> l(mu_);
  streams_.push_back(s);
  return s;
}

void StreamWatchdog::StopAll(const absl::Status& why) {
  std::vector<std::shared_ptr<Stream>> live;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& weak : streams_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Stop(why);
}

void StreamWatchdog::Run() {
  SetThreadName("sa-watchdog");
  const absl::Duration tick = std::min(absl::Milliseconds(250), window_ / 4);
  const int64_t window_ns = absl::ToInt64Nanoseconds(window_);
  const uint64_t window_min_bytes = static_cast<uint64_t>(
      static_cast<double>(min_rate_) * absl::ToDoubleSeconds(window_));
  const absl::Status idle = absl::ResourceExhaustedError(absl::StrFormat(
      "no data moved for %s; the transfer was abandoned (limit "
      "--idle-timeout)",
      absl::FormatDuration(window_)));
  const absl::Status slow = absl::ResourceExhaustedError(absl::StrFormat(
      "fewer than %d bytes moved in %s, slower than the minimum of %d "
      "bytes/s; the transfer was abandoned (limit --min-transfer-rate)",
      window_min_bytes, absl::FormatDuration(window_), min_rate_));
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, absl::ToChronoNanoseconds(tick));
    const int64_t now = absl::GetCurrentTimeNanos();
    std::vector<std::pair<std::shared_ptr<Stream>, absl::Status>> to_stop;
    for (auto it = streams_.begin(); it != streams_.end();) {
      std::shared_ptr<Stream> s = it->lock();
      if (!s) {
        it = streams_.erase(it);
        continue;
      }
      if (now - s->last_ns_ > window_ns) {
        to_stop.emplace_back(std::move(s), idle);
      } else if (now - s->window_start_ns_ >= window_ns) {
        const uint64_t moved = s->window_bytes_.exchange(0);
        s->window_start_ns_ = now;
        if (moved < window_min_bytes) to_stop.emplace_back(std::move(s), slow);
      }
      ++it;
    }
    l.unlock();
    for (auto& [s, why] : to_stop) s->Stop(why);
    l.lock();
  }
}

// --- StreamLimits -----------------------------------------------------------

StreamLimits::StreamLimits(int max_streams, absl::Duration idle_timeout, uint64_t min_rate)
    : max_(max_streams), watchdog_(idle_timeout, min_rate) {}

absl::StatusOr<std::unique_ptr<StreamSlot>> StreamLimits::Acquire(bool read_role) {
  std::lock_guard<std::mutex> l(mu_);
  if (count_ >= max_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "already serving %d snapshot streams (limit --max-streams); retry later", max_));
  }
  if (read_role && read_count_ >= ReadShare()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "read-role callers already hold %d of the %d snapshot streams (the rest is kept for "
        "restores and admin work); retry later",
        ReadShare(), max_));
  }
  return std::make_unique<StreamSlot>(&count_, read_role ? &read_count_ : nullptr);
}

absl::Status Interrupted(const StreamWatchdog::Stream& watch) {
  absl::Status why = watch.why();
  if (!why.ok()) return why;
  return absl::CancelledError("the call was cancelled");
}

}  // namespace snapshot
