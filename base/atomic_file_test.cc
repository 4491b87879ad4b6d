#include "base/atomic_file.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/testing.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace {

bool Exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

std::string Contents(const std::string& p) {
  auto s = ReadSmallFile(p);
  return s.ok() ? *s : "<" + std::string(s.status().message()) + ">";
}

class AtomicFileTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  testing::FaultEnv env_;
  std::string path_ = dir_.path() + "/file";
  std::string part_ = path_ + ".part";
};

TEST_F(AtomicFileTest, AppearsOnlyWhenCommitted) {
  auto f = AtomicFile::Create(part_, 0640, &env_);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->Write("hello ").ok());
  ASSERT_TRUE(f->Write("world").ok());
  EXPECT_FALSE(Exists(path_));
  EXPECT_EQ(f->size(), 11u);
  ASSERT_TRUE(f->Commit(path_).ok());
  EXPECT_EQ(Contents(path_), "hello world");
  EXPECT_FALSE(Exists(part_));
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(AtomicFileTest, DroppedWithoutCommitLeavesNothing) {
  {
    auto f = AtomicFile::Create(part_, 0600, &env_);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Write("partial").ok());
  }
  EXPECT_FALSE(Exists(part_));
  EXPECT_FALSE(Exists(path_));
}

TEST_F(AtomicFileTest, KeptPartIsResumed) {
  {
    auto f = AtomicFile::Create(part_, 0600, &env_);
    ASSERT_TRUE(f->Write("first half, ").ok());
    f->KeepPart();
  }
  EXPECT_EQ(Contents(part_), "first half, ");
  auto f = AtomicFile::Resume(part_, &env_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->size(), 12u);
  ASSERT_TRUE(f->Write("second half").ok());
  ASSERT_TRUE(f->Commit(path_).ok());
  EXPECT_EQ(Contents(path_), "first half, second half");
}

TEST_F(AtomicFileTest, ASecondWriterOnThePartIsRefused) {
  auto a = AtomicFile::Create(part_, 0600, &env_);
  ASSERT_TRUE(a.ok());
  auto b = AtomicFile::Create(part_, 0600, &env_);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists) << b.status();
  EXPECT_TRUE(Exists(part_));  // the first writer's file is left alone
}

TEST_F(AtomicFileTest, FullDiskFailsTheWriteAndCleansUp) {
  ASSERT_TRUE(WriteFileAtomically(path_, "old", 0600, &env_).ok());
  env_.disk_bytes = 5;
  {
    auto f = AtomicFile::Create(part_, 0600, &env_);
    absl::Status s = f->Write("more than five bytes");
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  }
  EXPECT_FALSE(Exists(part_));
  EXPECT_EQ(Contents(path_), "old");
}

TEST_F(AtomicFileTest, ShortWritesStillWriteEverything) {
  env_.max_write = 3;
  ASSERT_TRUE(WriteFileAtomically(path_, "written three bytes at a time", 0600, &env_).ok());
  EXPECT_EQ(Contents(path_), "written three bytes at a time");
}

TEST_F(AtomicFileTest, FailedFsyncKeepsTheOldFile) {
  ASSERT_TRUE(WriteFileAtomically(path_, "old", 0600, &env_).ok());
  env_.fsync_errno = EIO;
  absl::Status s = WriteFileAtomically(path_, "new", 0600, &env_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("cannot fsync"), std::string::npos) << s;
  EXPECT_EQ(Contents(path_), "old");
  EXPECT_FALSE(Exists(part_));
}

TEST_F(AtomicFileTest, FailedSyncAheadOfCommitFailsTheCommit) {
  auto f = AtomicFile::Create(part_, 0600, &env_);
  ASSERT_TRUE(f->Write("data").ok());
  env_.fsync_errno = EIO;
  EXPECT_FALSE(f->Sync().ok());
  env_.fsync_errno = 0;
  EXPECT_EQ(f->Commit(path_).code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(Exists(path_));
  EXPECT_FALSE(Exists(part_));
}

TEST_F(AtomicFileTest, FailedRenameKeepsTheOldFile) {
  ASSERT_TRUE(WriteFileAtomically(path_, "old", 0600, &env_).ok());
  env_.rename_errno = EXDEV;
  absl::Status s = WriteFileAtomically(path_, "new", 0600, &env_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot rename into"), std::string::npos) << s;
  EXPECT_EQ(Contents(path_), "old");
  EXPECT_FALSE(Exists(part_));
}

// A crash between the rename and the directory's fsync could undo the
// rename: Commit says so instead of reporting success.
TEST_F(AtomicFileTest, FailedDirectorySyncIsReportedAfterTheRename) {
  env_.syncdir_errno = EIO;
  absl::Status s = WriteFileAtomically(path_, "new", 0600, &env_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_EQ(s.message().rfind("renamed, but cannot fsync directory", 0), 0u) << s;
  EXPECT_EQ(Contents(path_), "new");
}

TEST_F(AtomicFileTest, WriteFileAtomicallyReplacesALeftoverPart) {
  ASSERT_TRUE(WriteFileAtomically(part_, "left by a crash", 0600, &env_).ok());
  ASSERT_TRUE(WriteFileAtomically(path_, "fresh", 0600, &env_).ok());
  EXPECT_EQ(Contents(path_), "fresh");
}

TEST(ListDir, NamesWithoutDotsAndMissingIsNotFound) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/a", "1").ok());
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/b", "2").ok());
  auto names = ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ListDir(dir.path() + "/missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(DirName("/x/y/z"), "/x/y");
  EXPECT_EQ(DirName("/z"), "/");
  EXPECT_EQ(DirName("z"), ".");
}

TEST(CopyAll, CopiesToTheEndThroughASmallBuffer) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  StringSource src(data);
  std::string out;
  StringSink sink(&out);
  auto n = CopyAll(&src, &sink, 4096);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(out, data);
}

}  // namespace
}  // namespace snapshot
