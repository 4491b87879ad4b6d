#include "base/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "base/io.h"
#include "base/testing.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace {

TEST(Subprocess, RunsWithEnvironmentAndCapturesOutput) {
  testing::TempDir dir;
  SubprocessOptions o;
  o.argv = {"sh", "-c", "echo \"$SA_TEST_VAR\"; echo to-stderr >&2; exit 0"};
  o.env = {"SA_TEST_VAR=hello"};
  o.output_path = dir.path() + "/out.log";
  ASSERT_TRUE(RunToCompletion(o).ok());
  EXPECT_EQ(*ReadSmallFile(o.output_path), "hello\nto-stderr\n");
}

TEST(Subprocess, EnvironmentEntriesReplaceTheInheritedOnes) {
  testing::TempDir dir;
  setenv("SA_TEST_REPLACED", "old", 1);
  SubprocessOptions o;
  o.argv = {"sh", "-c", "env | grep '^SA_TEST_REPLACED='"};
  o.env = {"SA_TEST_REPLACED=new"};
  o.output_path = dir.path() + "/out.log";
  ASSERT_TRUE(RunToCompletion(o).ok());
  EXPECT_EQ(*ReadSmallFile(o.output_path), "SA_TEST_REPLACED=new\n");
}

TEST(Subprocess, FailureNamesTheCommandHowItEndedAndItsOutput) {
  testing::TempDir dir;
  SubprocessOptions o;
  o.argv = {"sh", "-c", "echo something went wrong; exit 3"};
  o.output_path = dir.path() + "/out.log";
  absl::Status s = RunToCompletion(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("exit code 3"), std::string::npos) << s;
  EXPECT_NE(s.message().find("something went wrong"), std::string::npos) << s;
}

TEST(Subprocess, AMissingProgramIsAFailedPrecondition) {
  SubprocessOptions o;
  o.argv = {"no-such-program-snapshot-agent"};
  absl::Status s = RunToCompletion(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s;
  o.death_signal = SIGTERM;  // the fork path
  s = RunToCompletion(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s;
}

TEST(Subprocess, DeadlineKillsAndSignalReachesTheChild) {
  SubprocessOptions o;
  o.argv = {"sleep", "30"};
  const absl::Time start = absl::Now();
  absl::Status s = RunToCompletion(o, absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Wait(absl::Now() + absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  p->Signal(SIGTERM);
  auto status = p->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(DescribeExit(*status), "signal 15");
}

TEST(Subprocess, DeathSignalStopsTheChildWhenItsThreadEnds) {
  testing::TempDir dir;
  const std::string pid_file = dir.path() + "/pid";
  pid_t child = -1;
  std::thread([&] {
    SubprocessOptions o;
    o.argv = {"sh", "-c", "echo $$ > " + pid_file + "; exec sleep 30"};
    o.death_signal = SIGKILL;
    auto p = Subprocess::Start(o);
    ASSERT_TRUE(p.ok());
    child = p->pid();
    // Dropping the handle would kill it; keep it alive past the thread.
    new Subprocess(std::move(*p));
    while (access(pid_file.c_str(), F_OK) != 0) usleep(1000);
  }).join();
  // The thread ended: the kernel sends the child SIGKILL.
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << DescribeExit(status);
}

}  // namespace
}  // namespace snapshot
