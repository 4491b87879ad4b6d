#include "base/testing.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <mutex>

namespace snapshot {
namespace testing {

TempDir::TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/sa-XXXXXX";
  char* p = mkdtemp(&tmpl[0]);
  if (p == nullptr) abort();
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int FreePort() {
  // Ports below the kernel's ephemeral range (32768-60999 by default): a
  // port picked there cannot be taken meanwhile by an outgoing connection
  // (which is what made "bind port 0, close, reuse" racy). Each process
  // starts at its own offset and never hands out a port twice; a port that
  // another process holds is skipped.
  static std::mutex mu;
  static int next = 20000 + static_cast<int>(getpid() % 1200) * 10;
  std::lock_guard<std::mutex> l(mu);
  for (int tries = 0; tries < 12000; ++tries) {
    const int port = next;
    next = next + 1 >= 32000 ? 20000 : next + 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) == 0;
    close(fd);
    if (free) return port;
  }
  abort();  // no free port in 20000-32000: the machine is out of ports
}

std::string ReadAll(ByteSource* src) {
  std::string out, buf(65536, '\0');
  for (;;) {
    size_t n = *src->Read(&buf[0], buf.size());
    if (n == 0) return out;
    out.append(buf.data(), n);
  }
}

ssize_t FaultEnv::Write(int fd, const char* data, size_t n) {
  n = std::min(n, max_write.load());
  const uint64_t before = written_.load();
  if (before >= disk_bytes) {
    errno = ENOSPC;
    return -1;
  }
  n = static_cast<size_t>(std::min<uint64_t>(n, disk_bytes - before));
  std::string flipped;
  if (flip_at >= before && flip_at - before < n) {
    flipped.assign(data, n);
    flipped[flip_at - before] ^= 0x01;
    data = flipped.data();
  }
  ssize_t w = Env::Write(fd, data, n);
  if (w > 0) written_ += static_cast<uint64_t>(w);
  return w;
}

int FaultEnv::Fsync(int fd) {
  if (int e = fsync_errno.load()) {
    errno = e;
    return -1;
  }
  return Env::Fsync(fd);
}

int FaultEnv::Fdatasync(int fd) {
  ++fdatasync_calls;
  if (int e = fdatasync_errno.load()) {
    errno = e;
    return -1;
  }
  return Env::Fdatasync(fd);
}

int FaultEnv::Rename(const std::string& from, const std::string& to) {
  if (int e = rename_errno.load()) {
    errno = e;
    return -1;
  }
  return Env::Rename(from, to);
}

int FaultEnv::SyncDir(const std::string& dir) {
  if (int e = syncdir_errno.load()) {
    errno = e;
    return -1;
  }
  return Env::SyncDir(dir);
}

}  // namespace testing
}  // namespace snapshot
