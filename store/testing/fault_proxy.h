// A fault-injecting HTTP/1.1 proxy on loopback, for tests only: each request
// is read whole (head and Content-Length body), then `fault` decides from its
// head what happens — "" forwards it to the upstream server (on a connection
// of its own, with "Connection: close") and relays the answer; "500" or
// "503" answers with that error (S3's InternalError / SlowDown XML);
// "drop" closes the connection without an answer; a string that starts with
// "HTTP/1.1 " is sent as the whole answer (a test's own server: metadata, STS).
// With no upstream (port 0), "" answers 200 with an ETag. Every connection
// carries one request.
#ifndef SNAPSHOT_AGENT_STORE_TESTING_FAULT_PROXY_H_
#define SNAPSHOT_AGENT_STORE_TESTING_FAULT_PROXY_H_

#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace snapshot {
namespace testing {

class FaultProxy {
 public:
  struct Request {
    std::string head;  // request line and headers, each line ending in \r\n
    std::string body;
    int n;  // from 0
  };
  // Called from the connections' threads, one at a time.
  using Fault = std::function<std::string(const Request& r)>;
  FaultProxy(int upstream_port, Fault fault);
  ~FaultProxy();

  int port() const { return port_; }
  std::string endpoint() const;
  int requests() const { return requests_; }

 private:
  void Serve();
  void Handle(int c);

  const int upstream_port_;
  Fault fault_;
  std::mutex mu_;  // one call of fault_ at a time
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
  std::mutex conns_mu_;
  std::vector<std::thread> handlers_;  // guarded by conns_mu_: joined by the destructor
  std::set<int> open_;                 // guarded by conns_mu_: client sockets being served
};

// The port of an "http://HOST:PORT" endpoint.
int PortOf(const std::string& endpoint);

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_TESTING_FAULT_PROXY_H_
