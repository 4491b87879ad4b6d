#include "etcd/supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "base/thread_name.h"

namespace snapshot {
namespace {

absl::StatusOr<std::vector<std::string>> SplitWords(absl::string_view s) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < s.size()) {
        cur.push_back(s[++i]);
      } else {
        cur.push_back(c);
      }
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur.push_back(s[++i]);
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (quote) {
    return absl::InvalidArgumentError("--etcd-exec has an unterminated quote");
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

}  // namespace

std::map<std::string, std::string> AgentsOrSelf(const std::map<std::string, std::string>& agents,
                                                const EtcdCommand& command,
                                                const std::string& own_address) {
  if (!agents.empty()) return agents;
  std::vector<std::string> members = absl::StrSplit(command.initial_cluster, ',', absl::SkipEmpty());
  if (members.size() != 1 || !absl::StartsWith(members[0], command.name + "=")) return agents;
  return {{command.name, own_address}};
}

absl::StatusOr<EtcdCommand> ParseEtcdCommand(absl::string_view command_line) {
  absl::StatusOr<std::vector<std::string>> words = SplitWords(command_line);
  if (!words.ok()) return words.status();
  if (words->empty()) {
    return absl::InvalidArgumentError("--etcd-exec is empty");
  }
  EtcdCommand c;
  c.argv = *words;
  const std::pair<const char*, std::string*> flags[] = {
      {"name", &c.name},
      {"data-dir", &c.data_dir},
      {"initial-cluster", &c.initial_cluster},
      {"initial-cluster-token", &c.initial_cluster_token},
      {"initial-advertise-peer-urls", &c.initial_advertise_peer_urls},
  };
  for (size_t i = 1; i < c.argv.size(); ++i) {
    absl::string_view w = c.argv[i];
    if (!absl::ConsumePrefix(&w, "--") && !absl::ConsumePrefix(&w, "-")) continue;
    for (const auto& [name, out] : flags) {
      if (w == name && i + 1 < c.argv.size()) {
        *out = c.argv[i + 1];
      } else if (absl::StartsWith(w, absl::StrCat(name, "="))) {
        *out = std::string(w.substr(strlen(name) + 1));
      }
    }
  }
  for (const auto& [name, out] : flags) {
    if (out->empty() && std::string(name) != "initial-cluster-token") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--etcd-exec must give etcd's --", name,
          " (a restore rebuilds the member's data directory with it)"));
    }
  }
  return c;
}

Supervisor::Supervisor(EtcdCommand command, bool run)
    : command_(std::move(command)), want_running_(run) {
  monitor_ = std::thread([this] { Monitor(); });
}

Supervisor::~Supervisor() {
  Stop(absl::Seconds(30)).IgnoreError();
  {
    std::lock_guard<std::mutex> l(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  monitor_.join();
}

pid_t Supervisor::pid() const {
  std::lock_guard<std::mutex> l(mu_);
  return pid_;
}

void Supervisor::Resume() {
  {
    std::lock_guard<std::mutex> l(mu_);
    want_running_ = true;
  }
  cv_.notify_all();
}

absl::Status Supervisor::Stop(absl::Duration grace) {
  std::unique_lock<std::mutex> l(mu_);
  want_running_ = false;
  cv_.notify_all();
  if (pid_ <= 0) return absl::OkStatus();
  const pid_t p = pid_;
  kill(p, SIGTERM);
  if (!cv_.wait_for(l, absl::ToChronoNanoseconds(grace),
                    [&] { return pid_ != p; })) {
    Log(LogLevel::kWarning, "etcd did not stop in time; killing it",
        {{"pid", static_cast<int64_t>(p)}});
    kill(p, SIGKILL);
    if (!cv_.wait_for(l, std::chrono::seconds(10), [&] { return pid_ != p; })) {
      return absl::InternalError(
          absl::StrCat("etcd (pid ", p, ") did not exit after SIGKILL"));
    }
  }
  return absl::OkStatus();
}

void Supervisor::Monitor() {
  SetThreadName("sa-etcd-watch");
  absl::Duration backoff = absl::Seconds(1);
  absl::Time next_start = absl::InfinitePast();
  std::unique_lock<std::mutex> l(mu_);
  while (!shutdown_) {
    if (!want_running_ || absl::Now() < next_start) {
      if (want_running_) {
        cv_.wait_until(l, absl::ToChronoTime(next_start));
      } else {
        cv_.wait(l);
      }
      continue;
    }
    // Started from the monitor thread only, so that PR_SET_PDEATHSIG (which
    // follows the thread that forked) lasts as long as the supervisor.
    SubprocessOptions o;
    o.argv = command_.argv;
    o.death_signal = SIGTERM;
    absl::StatusOr<Subprocess> child = Subprocess::Start(o);
    if (!child.ok()) {
      Log(LogLevel::kError, "cannot start etcd", {{"error", child.status().message()}});
      next_start = absl::Now() + backoff;
      continue;
    }
    pid_ = child->pid();
    const absl::Time started = absl::Now();
    Log(LogLevel::kInfo, "etcd started",
        {{"pid", static_cast<int64_t>(pid_)}, {"data_dir", command_.data_dir}});
    l.unlock();
    absl::StatusOr<int> status = child->Wait();
    l.lock();
    pid_ = -1;
    cv_.notify_all();
    const std::string how = status.ok() ? DescribeExit(*status) : status.status().ToString();
    if (!want_running_) {
      Log(LogLevel::kInfo, "etcd stopped", {{"how", how}});
      continue;
    }
    if (absl::Now() - started > absl::Minutes(1)) backoff = absl::Seconds(1);
    Log(LogLevel::kWarning, "etcd exited; starting it again",
        {{"how", how}, {"after", absl::FormatDuration(backoff)}});
    next_start = absl::Now() + backoff;
    backoff = std::min(backoff * 2, absl::Seconds(30));
  }
}

}  // namespace snapshot
