#include "base/pipeline_sink.h"

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace {

// Collects what it is given; fails from the `fail_at`-th write on; may hold
// every write until released.
class TestSink : public ByteSink {
 public:
  absl::Status Write(absl::string_view data) override {
    if (hold_) released_.WaitForNotification();
    if (++writes_ >= fail_at_) return absl::DataLossError("bad bytes at write " + std::to_string(writes_));
    got_.append(data.data(), data.size());
    return absl::OkStatus();
  }
  std::string got_;
  int writes_ = 0;
  int fail_at_ = 1 << 30;
  bool hold_ = false;
  absl::Notification released_;
};

TEST(PipelineSink, PassesEverythingOnInOrder) {
  TestSink next;
  std::string want;
  {
    PipelineSink pipe(&next);
    for (int i = 0; i < 300; ++i) {
      std::string chunk(1 + (i * 7919) % 70000, static_cast<char>('a' + i % 26));
      want += chunk;
      ASSERT_TRUE(pipe.Write(chunk).ok());
    }
    ASSERT_TRUE(pipe.Write("").ok());
    ASSERT_TRUE(pipe.Flush().ok());
    EXPECT_EQ(next.got_, want);
    // Usable again after a Flush.
    ASSERT_TRUE(pipe.Write("tail").ok());
    ASSERT_TRUE(pipe.Flush().ok());
  }
  EXPECT_EQ(next.got_, want + "tail");
}

TEST(PipelineSink, TheFirstErrorComesBackAndLaterBytesAreDropped) {
  TestSink next;
  next.fail_at_ = 3;
  PipelineSink pipe(&next);
  absl::Status s;
  int n = 0;
  for (; n < 100 && s.ok(); ++n) s = pipe.Write("0123456789");
  // Shows on a later write (or at the latest on Flush), never lost.
  absl::Status flushed = pipe.Flush();
  EXPECT_EQ(flushed.code(), absl::StatusCode::kDataLoss) << flushed;
  EXPECT_EQ(flushed.message(), "bad bytes at write 3");
  if (!s.ok()) EXPECT_EQ(s, flushed);
  EXPECT_EQ(next.writes_, 3);  // nothing passed on after the error
  EXPECT_EQ(next.got_, std::string("0123456789") + "0123456789");
  EXPECT_EQ(pipe.Write("more"), flushed);
}

TEST(PipelineSink, TheQueueIsBoundedAndTheWriterWaits) {
  TestSink next;
  next.hold_ = true;
  PipelineSink pipe(&next);
  std::atomic<int> written{0};
  const std::string mib(1 << 20, 'x');
  std::thread writer([&] {
    for (int i = 0; i < 8; ++i) {
      EXPECT_TRUE(pipe.Write(mib).ok());
      ++written;
    }
  });
  // One block is held by `next`, at most kMaxQueued bytes wait: the writer
  // cannot get all 8 MiB out. (Waiting longer could only let it get further.)
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_LE(written.load(), 1 + static_cast<int>(PipelineSink::kMaxQueued / mib.size()));
  next.released_.Notify();
  writer.join();
  ASSERT_TRUE(pipe.Flush().ok());
  EXPECT_EQ(next.got_.size(), 8u << 20);
}

TEST(PipelineSink, AWriteLargerThanTheQueueGoesAlone) {
  TestSink next;
  PipelineSink pipe(&next);
  const std::string big(PipelineSink::kMaxQueued * 2 + 5, 'y');
  ASSERT_TRUE(pipe.Write(big).ok());
  ASSERT_TRUE(pipe.Write(big).ok());
  ASSERT_TRUE(pipe.Flush().ok());
  EXPECT_EQ(next.got_, big + big);
}

TEST(PipelineSink, DestroyedWithBytesQueuedDropsThem) {
  TestSink next;
  next.hold_ = true;
  std::thread release;
  {
    PipelineSink pipe(&next);
    ASSERT_TRUE(pipe.Write("first").ok());
    ASSERT_TRUE(pipe.Write("second").ok());
    release = std::thread([&] {
      absl::SleepFor(absl::Milliseconds(50));
      next.released_.Notify();
    });
  }  // joins: `next` got at most the block it held
  release.join();
  EXPECT_LE(next.writes_, 1);
}

}  // namespace
}  // namespace snapshot
