#include "base/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/io.h"

extern char** environ;

namespace snapshot {

absl::StatusOr<Subprocess> Subprocess::Start(const SubprocessOptions& o) {
  if (o.argv.empty()) return absl::InvalidArgumentError("no program to run");
  // Everything the child needs is built before fork: between fork and exec
  // only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const absl::string_view var(*e);
    const bool replaced = std::any_of(o.env.begin(), o.env.end(), [&](const std::string& n) {
      const size_t eq = n.find('=');
      return absl::StartsWith(var, n.substr(0, eq + 1));
    });
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& e : o.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int out_fd = -1;
  if (!o.output_path.empty()) {
    out_fd = ::open(o.output_path.c_str(),
                    O_WRONLY | O_CREAT | O_CLOEXEC | (o.append_output ? O_APPEND : O_TRUNC), 0600);
    if (out_fd < 0) return ErrnoStatus(errno, "cannot create", o.output_path);
  }
  if (o.death_signal == 0) {
    // posix_spawn (clone with CLONE_VFORK in glibc): no fork handlers run, so
    // the parent's gRPC threads are not stalled, and a failed exec comes
    // back as the error.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (out_fd >= 0) {
      posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
      posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
    }
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, pipe_default;
    sigemptyset(&none);
    sigemptyset(&pipe_default);
    sigaddset(&pipe_default, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);  // the agent blocks some
    posix_spawnattr_setsigdefault(&attr, &pipe_default);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (out_fd >= 0) ::close(out_fd);
    if (rc != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run ", o.argv[0], ": ", strerror(rc)));
    }
    return Subprocess(pid);
  }
  // A death signal needs prctl in the child: fork. The child reports a failed
  // exec through this pipe (closed on success).
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    const int err = errno;
    if (out_fd >= 0) ::close(out_fd);
    return ErrnoStatus(err, "cannot create a pipe for", o.argv[0]);
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, o.death_signal);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the agent blocks some
    signal(SIGPIPE, SIG_DFL);
    if (out_fd >= 0) {
      dup2(out_fd, STDOUT_FILENO);
      dup2(out_fd, STDERR_FILENO);
    }
    execvpe(argv[0], argv.data(), envp.data());
    const int err = errno;
    (void)!write(report[1], &err, sizeof(err));
    _exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  if (out_fd >= 0) ::close(out_fd);
  if (pid < 0) {
    ::close(report[0]);
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start ", o.argv[0], ": fork: ", strerror(fork_errno)));
  }
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == sizeof(child_errno)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", o.argv[0], ": ", strerror(child_errno)));
  }
  return Subprocess(pid);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exited_(other.exited_.load()) {}

Subprocess::~Subprocess() {
  if (pid_ <= 0 || exited_) return;
  ::kill(pid_, SIGKILL);
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

absl::StatusOr<int> Subprocess::Wait(absl::Time deadline) {
  if (pid_ <= 0) return absl::FailedPreconditionError("no child process");
  absl::Duration nap = absl::Milliseconds(1);
  for (;;) {
    int status = 0;
    const int flags = deadline == absl::InfiniteFuture() ? 0 : WNOHANG;
    const pid_t r = waitpid(pid_, &status, flags);
    if (r == pid_) {
      exited_ = true;
      return status;
    }
    if (r < 0 && errno != EINTR) {
      return ErrnoStatus(errno, "cannot wait for process", absl::StrCat(pid_));
    }
    if (r == 0) {
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("process ", pid_, " still runs at its deadline"));
      }
      absl::SleepFor(std::min(nap, deadline - now));
      nap = std::min(nap * 2, absl::Milliseconds(50));
    }
  }
}

pid_t Subprocess::Release() {
  exited_ = true;  // not ours to kill or reap any more
  return std::exchange(pid_, -1);
}

void Subprocess::Signal(int sig) {
  if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

absl::Status RunToCompletion(const SubprocessOptions& options, absl::Time deadline) {
  absl::StatusOr<Subprocess> p = Subprocess::Start(options);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->Wait(deadline);
  if (!status.ok()) return status.status();  // the destructor kills it
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return absl::OkStatus();
  std::string out;
  if (!options.output_path.empty()) {
    // The end of the output: where programs say why they failed.
    int fd = ::open(options.output_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const off_t end = ::lseek(fd, 0, SEEK_END);
      const off_t from = std::max<off_t>(0, end - 600);
      out.resize(static_cast<size_t>(end - from));
      const ssize_t n = ::pread(fd, &out[0], out.size(), from);
      out.resize(n > 0 ? static_cast<size_t>(n) : 0);
      ::close(fd);
    }
  }
  return absl::InternalError(absl::StrCat(absl::StrJoin(options.argv, " "), " failed (",
                                          DescribeExit(*status), ")",
                                          out.empty() ? "" : ": ", out));
}

}  // namespace snapshot
