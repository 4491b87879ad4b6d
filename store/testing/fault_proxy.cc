#include "store/testing/fault_proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace snapshot {
namespace testing {
namespace {

void WriteAll(int fd, const std::string& s) {
  size_t at = 0;
  while (at < s.size()) {
    ssize_t n = write(fd, s.data() + at, s.size() - at);
    if (n <= 0) return;
    at += n;
  }
}

}  // namespace

FaultProxy::FaultProxy(int upstream_port, Fault fault)
    : upstream_port_(upstream_port), fault_(std::move(fault)) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  listen(fd_, 64);
  thread_ = std::thread([this] { Serve(); });
}

FaultProxy::~FaultProxy() {
  shutdown(fd_, SHUT_RDWR);
  close(fd_);
  thread_.join();
  std::vector<std::thread> handlers;
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    for (int c : open_) shutdown(c, SHUT_RDWR);  // a handler waiting on its client ends
    handlers.swap(handlers_);
  }
  for (std::thread& t : handlers) t.join();
}

std::string FaultProxy::endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }

void FaultProxy::Serve() {
  for (;;) {
    int c = accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    // One thread per connection: parts are sent in parallel.
    std::lock_guard<std::mutex> l(conns_mu_);
    open_.insert(c);
    handlers_.emplace_back([this, c] {
      Handle(c);
      std::lock_guard<std::mutex> l(conns_mu_);
      open_.erase(c);
      close(c);
    });
  }
}

void FaultProxy::Handle(int c) {
  char buf[65536];
  std::string req;
  size_t end;
  while ((end = req.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = read(c, buf, sizeof(buf));
    if (n <= 0) return;
    req.append(buf, n);
  }
  std::string head = req.substr(0, end + 2);  // lines, each ending in \r\n
  std::string body = req.substr(end + 4);
  size_t want = 0;
  std::string upstream_head;
  for (absl::string_view line : absl::StrSplit(head, "\r\n", absl::SkipEmpty())) {
    const size_t colon = line.find(':');
    const std::string name =
        colon == absl::string_view::npos ? "" : absl::AsciiStrToLower(line.substr(0, colon));
    if (name == "content-length") {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(colon + 1)), &want);
    }
    if (name == "connection") continue;
    absl::StrAppend(&upstream_head, line, "\r\n");
  }
  while (body.size() < want) {
    ssize_t n = read(c, buf, sizeof(buf));
    if (n <= 0) return;
    body.append(buf, n);
  }
  std::string what;
  {
    std::lock_guard<std::mutex> l(mu_);
    what = fault_(Request{head, body, requests_++});
  }
  if (what == "drop") return;
  if (absl::StartsWith(what, "HTTP/1.1 ")) {
    WriteAll(c, what);
    return;
  }
  if (what == "500" || what == "503") {
    const std::string code = what == "500" ? "InternalError" : "SlowDown";
    const std::string xml = absl::StrCat("<Error><Code>", code, "</Code></Error>");
    WriteAll(c, absl::StrCat("HTTP/1.1 ", what, what == "500" ? " Internal Server Error" : " Slow Down",
                             "\r\nContent-Length: ", xml.size(), "\r\nConnection: close\r\n\r\n",
                             xml));
    return;
  }
  if (upstream_port_ == 0) {
    WriteAll(c, "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  int u = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(upstream_port_);
  if (connect(u, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(u);
    return;
  }
  WriteAll(u, absl::StrCat(upstream_head, "Connection: close\r\n\r\n", body));
  for (;;) {
    ssize_t n = read(u, buf, sizeof(buf));
    if (n <= 0) break;
    WriteAll(c, std::string(buf, n));
  }
  close(u);
}

int PortOf(const std::string& endpoint) {
  int port = 0;
  (void)absl::SimpleAtoi(endpoint.substr(endpoint.rfind(':') + 1), &port);
  return port;
}

}  // namespace testing
}  // namespace snapshot
