#include "raft/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace snapshot {

bool ParseHostPort(absl::string_view s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  int p;
  if (!absl::SimpleAtoi(s.substr(colon + 1), &p) || p <= 0 || p > 65535) {
    return false;
  }
  *host = std::string(s.substr(0, colon));
  *port = p;
  return true;
}

// libraft reports a port in use with an empty message (RAFT_NOTES, defect
// 6): try the bind ourselves first and say what is wrong.
absl::Status CheckAddressFree(const std::string& address) {
  std::string host;
  int port;
  if (!ParseHostPort(address, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Raft address \"", address, "\" is not HOST:PORT with a numeric port"));
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Raft address \"", address,
        "\" must use a numeric IPv4 host (libraft's TCP transport does not "
        "resolve names)"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa));
  int err = errno;
  close(fd);
  if (rc != 0) {
    if (err == EADDRINUSE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Raft address ", address,
          " is already in use (is another agent running with it?)"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on Raft address ", address, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status PrepareDataDir(const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("a data directory is required");
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || mkdir(dir.c_str(), 0700) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create data directory ", dir, ": ", strerror(errno),
          " (does its parent directory exist and is it writable?)"));
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data directory ", dir, " exists but is not a directory"));
  }
  std::string probe = dir + "/.write-probe";
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory ", dir, " is not writable: ", strerror(errno)));
  }
  close(fd);
  unlink(probe.c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Member>> ParsePeers(absl::string_view spec) {
  std::vector<Member> out;
  std::set<uint64_t> ids;
  std::set<std::string> addrs;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    auto bad = [&](const char* why) {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed peer \"", item, "\": ", why,
          " (expected ID=RAFT_HOST:PORT[@AGENT_HOST:PORT], e.g. "
          "1=127.0.0.1:7001@127.0.0.1:8001)"));
    };
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos) return bad("no '='");
    Member m;
    if (!absl::SimpleAtoi(item.substr(0, eq), &m.id) || m.id == 0) {
      return bad("the id must be a positive integer");
    }
    absl::string_view rest = item.substr(eq + 1);
    size_t at = rest.find('@');
    m.raft_address = std::string(rest.substr(0, at));
    if (at != absl::string_view::npos) {
      m.agent_address = std::string(rest.substr(at + 1));
    }
    std::string host;
    int port;
    if (!ParseHostPort(m.raft_address, &host, &port)) {
      return bad("the Raft address is not HOST:PORT");
    }
    if (!m.agent_address.empty() &&
        !ParseHostPort(m.agent_address, &host, &port)) {
      return bad("the agent address is not HOST:PORT");
    }
    if (!ids.insert(m.id).second) return bad("the id is listed twice");
    if (!addrs.insert(m.raft_address).second) {
      return bad("the Raft address is listed twice");
    }
    out.push_back(std::move(m));
  }
  if (out.empty()) return absl::InvalidArgumentError("the peer list is empty");
  return out;
}

absl::Status PrepareToStart(EmbeddedNodeConfig* config) {
  if (config->id == 0) {
    return absl::InvalidArgumentError("the node id must be a positive integer");
  }
  if (config->peers.empty()) {
    Member self;
    self.id = config->id;
    self.raft_address = config->raft_address;
    self.agent_address = config->agent_address;
    config->peers.push_back(self);
  }
  bool found = false;
  for (const Member& m : config->peers) {
    if (m.id == config->id) {
      found = true;
      if (m.raft_address != config->raft_address) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the peer list gives node ", config->id, " the Raft address ",
            m.raft_address, " but this node is configured with ",
            config->raft_address));
      }
    }
  }
  if (!found) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the peer list does not contain this node (id ", config->id, ")"));
  }
  SA_RETURN_IF_ERROR(PrepareDataDir(config->data_dir));
  const std::string& bind = config->raft_bind_address.empty()
                                ? config->raft_address
                                : config->raft_bind_address;
  if (!config->raft_bind_address.empty()) {
    std::string h1, h2;
    int p1 = 0, p2 = 0;
    if (!ParseHostPort(config->raft_address, &h1, &p1) ||
        !ParseHostPort(bind, &h2, &p2) || p1 != p2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the Raft bind address ", bind, " must be IPV4:PORT with the port of "
          "the Raft address ", config->raft_address));
    }
  }
  SA_RETURN_IF_ERROR(CheckAddressFree(bind));
  return absl::OkStatus();
}

}  // namespace snapshot
