#include "base/env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/io.h"

namespace snapshot {

Env* Env::Default() {
  static Env* env = new Env;
  return env;
}

int Env::Open(const std::string& path, int flags, int mode) {
  return ::open(path.c_str(), flags | O_CLOEXEC, mode);
}

ssize_t Env::Write(int fd, const char* data, size_t n) { return ::write(fd, data, n); }

int Env::Fsync(int fd) { return ::fsync(fd); }

int Env::Fdatasync(int fd) { return ::fdatasync(fd); }

int Env::Close(int fd) { return ::close(fd); }

int Env::Rename(const std::string& from, const std::string& to) {
  return ::rename(from.c_str(), to.c_str());
}

int Env::Unlink(const std::string& path) { return ::unlink(path.c_str()); }

int Env::SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  errno = err;
  return rc;
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "cannot list directory", dir);
  std::vector<std::string> out;
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) out.emplace_back(e->d_name);
  }
  const int err = errno;
  closedir(d);
  if (err != 0) return ErrnoStatus(err, "cannot list directory", dir);
  return out;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace snapshot
