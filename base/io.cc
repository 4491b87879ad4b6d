#include "base/io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace snapshot {

absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view path) {
  std::string msg = absl::StrCat(what, " ", path, ": ", strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(msg);
    case EISDIR:
      return absl::InvalidArgumentError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    default:
      return absl::InternalError(msg);
  }
}

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

absl::StatusOr<FileSource> FileSource::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot stat", path);
  }
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
                                          bool exclusive) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", path);
  return FileSink(fd, path);
}

absl::StatusOr<FileSink> FileSink::CreateUnique(const std::string& prefix) {
  std::string path = prefix + "XXXXXX";
  int fd = mkostemp(&path[0], O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot create a file named", path);
  return FileSink(fd, path);
}

FileSink::FileSink(FileSink&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status FileSink::Write(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("file sink is closed");
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t w = ::write(fd_, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write", path_);
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status FileSink::Close() {
  if (fd_ < 0) return absl::FailedPreconditionError("file sink is closed");
  if (::close(std::exchange(fd_, -1)) != 0) {
    return ErrnoStatus(errno, "cannot close", path_);
  }
  return absl::OkStatus();
}

absl::Status FileSink::SyncAndClose() {
  if (fd_ < 0) return absl::FailedPreconditionError("file sink is closed");
  int fd = std::exchange(fd_, -1);
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot fsync", path_);
  }
  if (::close(fd) != 0) return ErrnoStatus(errno, "cannot close", path_);
  return absl::OkStatus();
}

}  // namespace snapshot
