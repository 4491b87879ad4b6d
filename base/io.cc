#include "base/io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "base/thread_name.h"

namespace snapshot {

namespace {

constexpr char kLocalFilePayload[] = "type.snapshot-agent/local-file-error";

absl::StatusCode ErrnoCode(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::StatusCode::kFailedPrecondition;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EISDIR:
      return absl::StatusCode::kInvalidArgument;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view path) {
  absl::Status s(ErrnoCode(err),
                 absl::StrCat(what, " ", path, ": ", strerror(err)));
  s.SetPayload(kLocalFilePayload, absl::Cord(absl::StrCat(err)));
  return s;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          uint64_t max_bytes) {
  absl::StatusOr<FileSource> src = FileSource::Open(path);
  if (!src.ok()) return src.status();
  if (src->size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is larger than ", max_bytes, " bytes: not the file expected"));
  }
  std::string out(src->size(), '\0');
  absl::StatusOr<size_t> filled = ReadFully(&*src, &out[0], out.size());
  if (!filled.ok()) return filled.status();
  out.resize(*filled);
  return out;
}

absl::Status StoppableSink::Write(absl::string_view data) {
  if (cancel_ != nullptr && cancel_->load()) {
    return absl::CancelledError(
        absl::StrCat("the ", what_, " was cancelled (the agent is stopping)"));
  }
  if (absl::Now() > deadline_) {
    return absl::DeadlineExceededError(
        absl::StrCat("the ", what_, " took longer than its deadline"));
  }
  return next_->Write(data);
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view what,
                                           uint64_t max_bytes) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("cannot read ", what), path);
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s %s is accessible to group or others (mode %04o): the secret it holds may have "
        "leaked; replace it if so, then chmod 600 %s",
        what, path, st.st_mode & 07777, path));
  }
  return ReadSmallFile(path, max_bytes);
}

absl::StatusOr<size_t> ReadFully(ByteSource* src, char* buf, size_t n) {
  size_t filled = 0;
  while (filled < n) {
    absl::StatusOr<size_t> got = src->Read(buf + filled, n - filled);
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    filled += *got;
  }
  return filled;
}

bool IsLocalFileError(const absl::Status& s) {
  return !s.ok() && s.GetPayload(kLocalFilePayload).has_value();
}

absl::Status SyncDirectoryOf(const std::string& path, Env* env) {
  const std::string dir = DirName(path);
  if (env->SyncDir(dir) != 0) return ErrnoStatus(errno, "cannot fsync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> CopyAll(ByteSource* src, ByteSink* sink, size_t buffer_bytes) {
  std::string buf(buffer_bytes, '\0');
  uint64_t total = 0;
  for (;;) {
    SA_ASSIGN_OR_RETURN(size_t n, src->Read(&buf[0], buf.size()));
    if (n == 0) return total;
    SA_RETURN_IF_ERROR(sink->Write(absl::string_view(buf.data(), n)));
    total += n;
  }
}

absl::StatusOr<std::unique_ptr<DirLock>> DirLock::Acquire(
    const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("a data directory is required");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    absl::Status s = ErrnoStatus(errno, "cannot create data directory", dir);
    return absl::Status(s.code(), absl::StrCat(s.message(),
                                               " (does its parent directory "
                                               "exist and is it writable?)"));
  }
  const std::string path = dir + "/LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "cannot open lock file", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder;
    if (err == EWOULDBLOCK) {
      char buf[32] = {};
      ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
      int pid = 0;
      if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(
                                        absl::string_view(buf, n)),
                                    &pid) && pid > 0) {
        holder = absl::StrCat(" (pid ", pid, ")");
      }
    }
    ::close(fd);
    if (err != EWOULDBLOCK) return ErrnoStatus(err, "cannot lock", path);
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory ", dir, " is in use by another process", holder,
        ": two agents on one data directory would destroy it; stop the other "
        "agent or give this one its own --data-dir"));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) !=
          static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot write", path);
  }
  return std::unique_ptr<DirLock>(new DirLock(fd));
}

DirLock::~DirLock() { ::close(fd_); }

absl::StatusOr<Digest> Sha256OfSource(ByteSource* source, uint64_t* bytes) {
  Sha256 h;
  std::string buf(1 << 20, '\0');
  uint64_t total = 0;
  for (;;) {
    absl::StatusOr<size_t> n = source->Read(&buf[0], buf.size());
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    total += *n;
    h.Update(absl::string_view(buf.data(), *n));
  }
  if (bytes != nullptr) *bytes = total;
  return h.Finish();
}

absl::StatusOr<size_t> StringSource::Read(char* buf, size_t n) {
  size_t k = std::min(n, data_.size());
  memcpy(buf, data_.data(), k);
  data_.remove_prefix(k);
  return k;
}

namespace {

// Opens `path` (a file created is mode 0600) and stats it; the descriptor is
// the caller's.
absl::StatusOr<int> OpenAndStat(const std::string& path, int flags, struct stat* st) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  if (fstat(fd, st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot stat", path);
  }
  return fd;
}

}  // namespace

absl::StatusOr<FileSource> FileSource::Open(const std::string& path) {
  struct stat st;
  SA_ASSIGN_OR_RETURN(int fd, OpenAndStat(path, O_RDONLY, &st));
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return ErrnoStatus(EISDIR, "cannot read", path);
  }
  return FileSource(fd, path, static_cast<uint64_t>(st.st_size));
}

FileSource::FileSource(FileSource&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      size_(other.size_) {}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<size_t> FileSource::Read(char* buf, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd_, buf, n);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EINTR) return ErrnoStatus(errno, "cannot read", path_);
  }
}

absl::StatusOr<FileSink> FileSink::Create(const std::string& path, int mode,
                                          bool exclusive, Env* env) {
  int flags = O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC);
  int fd = env->Open(path, flags, mode);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", path);
  return FileSink(fd, path, env);
}

absl::StatusOr<FileSink> FileSink::Append(const std::string& path, Env* env) {
  struct stat st;
  SA_ASSIGN_OR_RETURN(int fd, OpenAndStat(path, O_WRONLY | O_CREAT | O_APPEND, &st));
  FileSink sink(fd, path, env);
  sink.written_ = sink.kicked_ = static_cast<uint64_t>(st.st_size);  // write-behind offsets
  return sink;
}

absl::StatusOr<FileSink> FileSink::CreateUnique(const std::string& prefix) {
  std::string path = prefix + "XXXXXX";
  int fd = mkostemp(&path[0], O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot create a file named", path);
  return FileSink(fd, path, Env::Default());
}

// Calls fdatasync on the file, again and again while Request()s come in, on
// a thread of its own, so that the disk's cache flush runs beside the writes.
class FileSink::Syncer {
 public:
  Syncer(int fd, Env* env) : fd_(fd), env_(env), thread_([this] { Run(); }) {}
  ~Syncer() { Stop(); }

  // Asks for one more fdatasync after the one under way (requests coalesce).
  void Request() {
    absl::MutexLock lock(&mu_);
    pending_ = true;
  }

  // Joins the thread; returns the errno of the first failed fdatasync, or 0.
  int Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
    return error_;
  }

 private:
  void Run() {
    SetThreadName("sa-fsync");
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Syncer* s) { return s->pending_ || s->stop_; }, this));
        if (stop_) return;  // the final fsync does the rest
        pending_ = false;
      }
      if (env_->Fdatasync(fd_) != 0 && error_ == 0) error_ = errno;
    }
  }

  const int fd_;
  Env* const env_;
  absl::Mutex mu_;
  bool pending_ = false;  // guarded by mu_
  bool stop_ = false;     // guarded by mu_
  int error_ = 0;         // written by the thread only, read after the join
  std::thread thread_;    // last: starts once the members above exist
};

FileSink::FileSink(int fd, std::string path, Env* env)
    : fd_(fd), path_(std::move(path)), env_(env) {}

FileSink::FileSink(FileSink&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      env_(other.env_),
      written_(other.written_),
      write_behind_(other.write_behind_),
      kicked_(other.kicked_),
      syncer_(std::move(other.syncer_)) {}

FileSink::~FileSink() {
  StopSyncer();
  if (fd_ >= 0) env_->Close(fd_);
}

void FileSink::EnableWriteBehind(uint64_t every) {
  write_behind_ = every;
  if (fd_ >= 0 && syncer_ == nullptr) syncer_ = std::make_unique<Syncer>(fd_, env_);
}

int FileSink::StopSyncer() {
  if (syncer_ == nullptr) return 0;
  int err = syncer_->Stop();
  syncer_.reset();
  return err;
}

absl::Status FileSink::Write(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("file sink is closed");
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t w = env_->Write(fd_, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write", path_);
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  written_ += data.size();
  if (write_behind_ > 0 && written_ - kicked_ >= write_behind_) {
    // Best effort: a failure here shows again at the fsync.
    (void)::sync_file_range(fd_, static_cast<off64_t>(kicked_),
                            static_cast<off64_t>(written_ - kicked_), SYNC_FILE_RANGE_WRITE);
    kicked_ = written_;
    if (syncer_ != nullptr) syncer_->Request();
  }
  return absl::OkStatus();
}

absl::Status FileSink::Close() {
  if (fd_ < 0) return absl::FailedPreconditionError("file sink is closed");
  StopSyncer();  // a file closed without fsync does not care how far it got
  if (env_->Close(std::exchange(fd_, -1)) != 0) {
    return ErrnoStatus(errno, "cannot close", path_);
  }
  return absl::OkStatus();
}

absl::Status FileSink::SyncAndClose() {
  if (fd_ < 0) return absl::FailedPreconditionError("file sink is closed");
  const int background = StopSyncer();
  int fd = std::exchange(fd_, -1);
  if (env_->Fsync(fd) != 0 || background != 0) {
    int err = background != 0 ? background : errno;
    env_->Close(fd);
    return ErrnoStatus(err, "cannot fsync", path_);
  }
  if (env_->Close(fd) != 0) return ErrnoStatus(errno, "cannot close", path_);
  return absl::OkStatus();
}

}  // namespace snapshot
