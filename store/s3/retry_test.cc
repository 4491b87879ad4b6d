// The client's retries against a loopback HTTP server that fails on purpose
// (503 SlowDown, then a dropped connection) before it answers. Signatures
// are not checked here: that is client_rgw_test's job against a real server.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "store/s3/client.h"

namespace snapshot {
namespace s3 {
namespace {

// Answers each connection's first request by the script, one entry per
// request: 503 SlowDown, "drop" (closes without answering), or 200.
class FlakyServer {
 public:
  explicit FlakyServer(std::vector<std::string> script) : script_(std::move(script)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FlakyServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[65536];
      std::string req;
      // Read the headers, then the whole body, so that an answer never
      // races the client's sending.
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, n);
      }
      size_t want = 0;
      const size_t cl = req.find("Content-Length: ");
      if (cl != std::string::npos) want = std::stoul(req.substr(cl + 16));
      const size_t end = req.find("\r\n\r\n");
      size_t have = end == std::string::npos ? 0 : req.size() - end - 4;
      while (have < want) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        have += n;
      }
      const size_t i = requests_++;
      const std::string what = i < script_.size() ? script_[i] : "200";
      std::string resp;
      if (what == "503") {
        const std::string body = "<Error><Code>SlowDown</Code></Error>";
        resp = absl::StrCat("HTTP/1.1 503 Slow Down\r\nContent-Length: ", body.size(),
                            "\r\nConnection: close\r\n\r\n", body);
      } else if (what == "200") {
        resp = "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      }
      if (!resp.empty()) (void)!write(c, resp.data(), resp.size());
      close(c);
    }
  }

  std::vector<std::string> script_;
  int fd_;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

ClientOptions Options(int port, int attempts) {
  ClientOptions o;
  o.endpoint = absl::StrCat("http://127.0.0.1:", port);
  o.bucket = "bucket";
  o.max_attempts = attempts;
  o.first_backoff = absl::Milliseconds(5);
  o.max_backoff = absl::Milliseconds(20);
  return o;
}

std::shared_ptr<CredentialsProvider> Creds() {
  Credentials c;
  c.access_key_id = "AKID";
  c.secret_access_key = "secret";
  return StaticCredentials(c, "test");
}

TEST(S3Retry, SlowDownAndDroppedConnectionsAreRetried) {
  FlakyServer server({"503", "drop", "503"});
  Client c(Options(server.port(), 6), Creds());
  absl::Status s = c.PutObject("k", "body");
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server.requests(), 4);
}

TEST(S3Retry, GivesUpAfterMaxAttemptsAsUnavailable) {
  FlakyServer server({"503", "503", "503", "503"});
  Client c(Options(server.port(), 3), Creds());
  absl::Status s = c.PutObject("k", "body");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("SlowDown"), std::string::npos) << s;
  EXPECT_NE(s.message().find("after 3 attempts"), std::string::npos) << s;
  EXPECT_EQ(server.requests(), 3);
}

TEST(S3Retry, UploadPartIsRetriedWithTheSameBytes) {
  FlakyServer server({"drop", "503"});
  Client c(Options(server.port(), 6), Creds());
  auto etag = c.UploadPart("k", "upload-1", 1, std::string(100000, 'x'));
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(*etag, "\"x\"");
  EXPECT_EQ(server.requests(), 3);
}

}  // namespace
}  // namespace s3
}  // namespace snapshot
