#include "base/io.h"
#include "base/testing.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace snapshot {
namespace {

std::string TempPath(const std::string& name) {
  const char* t = getenv("TEST_TMPDIR");
  return std::string(t ? t : "/tmp") + "/" + name;
}

TEST(ErrnoStatus, FileErrorsAreNeverAuthErrors) {
  for (int err : {EACCES, EPERM, EROFS}) {
    absl::Status s = ErrnoStatus(err, "cannot write", "/x");
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << err;
    EXPECT_TRUE(IsLocalFileError(s));
  }
  EXPECT_EQ(ErrnoStatus(ENOSPC, "w", "/x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(ENOENT, "w", "/x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EIO, "w", "/x").code(), absl::StatusCode::kInternal);
  EXPECT_NE(ErrnoStatus(ENOSPC, "cannot write", "/x").message().find(
                "cannot write /x: No space left on device"),
            std::string::npos);
  // An agent's answer with the same code is not a local file error.
  EXPECT_FALSE(IsLocalFileError(absl::ResourceExhaustedError("limit")));
  EXPECT_FALSE(IsLocalFileError(absl::OkStatus()));
}

TEST(FileSink, WriteBehindKeepsEveryByteAcrossAMove) {
  const std::string path = TempPath("write-behind");
  std::string expected;
  {
    auto made = FileSink::Create(path, 0600, false);
    ASSERT_TRUE(made.ok()) << made.status();
    made->EnableWriteBehind(4096);  // a write-back start every page or so
    for (int i = 0; i < 100; ++i) {
      std::string piece(1000 + i * 37, static_cast<char>('a' + i % 26));
      ASSERT_TRUE(made->Write(piece).ok());
      expected += piece;
    }
    FileSink moved(std::move(*made));  // carries the write-behind state
    ASSERT_TRUE(moved.Write("tail").ok());
    expected += "tail";
    ASSERT_TRUE(moved.SyncAndClose().ok());
  }
  std::ifstream in(path, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(got == expected) << got.size() << " vs " << expected.size();
}

TEST(FileSink, AppendContinuesAFileAndCreatesAMissingOne) {
  const std::string path = TempPath("append");
  unlink(path.c_str());
  {
    auto made = FileSink::Append(path);  // missing: created
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_TRUE(made->Write("head-").ok());
    ASSERT_TRUE(made->SyncAndClose().ok());
  }
  {
    auto made = FileSink::Append(path);
    ASSERT_TRUE(made.ok()) << made.status();
    made->EnableWriteBehind(4096);
    ASSERT_TRUE(made->Write(std::string(10000, 'z')).ok());
    ASSERT_TRUE(made->SyncAndClose().ok());
  }
  std::ifstream in(path, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(got == "head-" + std::string(10000, 'z')) << got.size();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A pipe takes writes but no fdatasync (EINVAL): write-behind's background
// syncs fail, and SyncAndClose must say so instead of reporting success.
TEST(FileSink, WriteBehindSyncFailureSurfacesAtSyncAndClose) {
  // Background fdatasyncs fail, the final fsync succeeds: only the kept
  // background error can make SyncAndClose fail.
  testing::FaultEnv env;
  env.fdatasync_errno = EIO;
  auto made = FileSink::Create(TempPath("write-behind-eio"), 0600, false, &env);
  ASSERT_TRUE(made.ok()) << made.status();
  made->EnableWriteBehind(1024);
  for (int i = 0; i < 64 && env.fdatasync_calls == 0; ++i) {
    ASSERT_TRUE(made->Write(std::string(1000, 'x')).ok());
    usleep(1000);  // give the syncer a chance to run between writes
  }
  ASSERT_GT(env.fdatasync_calls.load(), 0);
  absl::Status s = made->SyncAndClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("cannot fsync"), std::string::npos) << s;
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s;
}

// A sink dropped half-way (an error elsewhere) stops its syncer and closes.
TEST(FileSink, WriteBehindSinkDroppedWithoutSyncStopsCleanly) {
  const std::string path = TempPath("write-behind-dropped");
  {
    auto made = FileSink::Create(path, 0600, false);
    ASSERT_TRUE(made.ok()) << made.status();
    made->EnableWriteBehind(4096);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(made->Write(std::string(5000, 'y')).ok());
  }
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 50 * 5000);
}

TEST(ReadSmallFile, ReadsAndBoundsTheSize) {
  const std::string path = TempPath("small");
  std::ofstream(path) << "hello";
  EXPECT_EQ(*ReadSmallFile(path), "hello");
  EXPECT_EQ(ReadSmallFile(path, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadSmallFile(TempPath("missing")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DirLock, ASecondHolderIsRefusedWithThePidAndAKilledHolderFreesIt) {
  const std::string dir = TempPath("locked");
  auto first = DirLock::Acquire(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // flock is per open file: a second Acquire in this process conflicts too.
  auto second = DirLock::Acquire(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(
                dir + " is in use by another process (pid " +
                std::to_string(getpid()) + ")"),
            std::string::npos)
      << second.status();
  first->reset();
  EXPECT_TRUE(DirLock::Acquire(dir).ok());

  // A holder killed with SIGKILL leaves no stale lock.
  const std::string dir2 = TempPath("killed");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = DirLock::Acquire(dir2);
    if (!held.ok()) _exit(1);
    pause();
    _exit(0);
  }
  for (int i = 0; i < 500; ++i) {
    if (access((dir2 + "/LOCK").c_str(), F_OK) == 0 &&
        !DirLock::Acquire(dir2).ok()) {
      break;
    }
    usleep(10000);
  }
  EXPECT_FALSE(DirLock::Acquire(dir2).ok());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(DirLock::Acquire(dir2).ok());
}

}  // namespace
}  // namespace snapshot
