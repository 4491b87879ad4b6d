// A real child process writes through an embedded node and is killed with
// SIGKILL mid-write; every write it saw acknowledged must be there when the
// node restarts on the same data directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "raft/embedded_node.h"
#include "raft/testing/cluster.h"

namespace snapshot {
namespace {

const char* g_writer = nullptr;

// Kills and reaps the child however the test ends.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

TEST(Crash, AcknowledgedWritesSurviveKill9) {
  ASSERT_NE(g_writer, nullptr);
  testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string addr = absl::StrCat("127.0.0.1:", testing::FreePort());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Child child;
  child.pid = fork();
  ASSERT_GE(child.pid, 0);
  if (child.pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    execl(g_writer, g_writer, data.c_str(), addr.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  FILE* out = fdopen(fds[0], "r");
  long last_acked = -1;
  char line[128];
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (last_acked < 700 && absl::Now() < deadline &&
         fgets(line, sizeof(line), out) != nullptr) {
    long n;
    if (sscanf(line, "acked %ld", &n) == 1) last_acked = n;
  }
  ASSERT_GE(last_acked, 700) << "the writer did not get far enough";
  kill(child.pid, SIGKILL);
  waitpid(child.pid, nullptr, 0);
  child.pid = -1;
  // Whatever it printed before dying was acknowledged too.
  while (fgets(line, sizeof(line), out) != nullptr) {
    long n;
    if (sscanf(line, "acked %ld", &n) == 1) last_acked = n;
  }
  fclose(out);

  EmbeddedNodeConfig c;
  c.id = 1;
  c.data_dir = data;
  c.raft_address = addr;
  auto node = EmbeddedNode::Start(c);
  ASSERT_TRUE(node.ok()) << node.status();
  ASSERT_TRUE((*node)->WaitForLeader(absl::Now() + absl::Seconds(10)).ok());
  long missing = 0;
  for (long i = 0; i <= last_acked; ++i) {
    auto v = (*node)->Get(absl::StrCat("k/", i), false,
                          absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(v.ok()) << v.status();
    if (v->value_or("") != absl::StrCat("v", i)) ++missing;
  }
  EXPECT_EQ(missing, 0) << "of " << last_acked + 1 << " acknowledged writes";
  std::cout << last_acked + 1 << " acknowledged writes, all present after kill -9\n";
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) snapshot::g_writer = argv[1];
  return RUN_ALL_TESTS();
}
