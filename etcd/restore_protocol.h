// The vocabulary of the etcd cluster restore's two-phase commit
// (etcd/cluster_restore.h, docs/etcd-engine.md), shared by the coordinator,
// the participants and the transport between agents — without any gRPC or
// agent API type, so that etcd/ does not depend on the agent's own API: the
// agent supplies the transport (a Participant for every other member).
//
// Threading: values; a Participant, and each of its PrepareStreams, is used
// by one thread at a time (a stream must not outlive its Participant).
#ifndef SNAPSHOT_AGENT_ETCD_RESTORE_PROTOCOL_H_
#define SNAPSHOT_AGENT_ETCD_RESTORE_PROTOCOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/io.h"

namespace snapshot {

// Where a participant's record of one restore stands.
enum class RestorePhase { kPrepared, kStopped, kCommitting, kCommitted };
const char* PhaseName(RestorePhase p);  // "prepared", ... (as records store it)
absl::StatusOr<RestorePhase> ParsePhase(absl::string_view name);

// What the coordinator knows of a restore.
enum class RestoreDecision { kUnknown, kPending, kCommit };

// The steps after prepare, as the coordinator asks them of a member.
enum class RestoreStep { kStop, kCommit, kAbort, kFinalize };
const char* StepName(RestoreStep s);  // "Stop", ...

// The prepare's protocol: 2 since the SHA-256 comes after the state (the
// state is forwarded while the coordinator still receives it). A member
// refuses a prepare of another protocol (FAILED_PRECONDITION: the agents run
// different releases).
inline constexpr uint32_t kPrepareProtocol = 2;

// What a prepare announces before the state bytes.
struct PrepareHeader {
  uint32_t protocol = kPrepareProtocol;
  std::string restore_id;   // letters and digits
  std::string coordinator;  // the coordinating member's etcd name
  uint64_t state_size = 0;  // database + its SHA-256
  std::string snapshot_id;  // for the logs
};
// The hex SHA-256 of a prepare's state bytes comes after them, with its
// end (PrepareStream::Finish): the coordinator forwards the state while it
// still receives and verifies the upload it comes from, and vouches for the
// bytes only once that upload has verified. A member builds nothing from
// bytes no SHA-256 came for.

// Another member, as the coordinator reaches it (through its agent). Errors
// are the remote agent's, with its address in the message; a credential of
// this agent that the remote refuses is FAILED_PRECONDITION (the caller's
// own token is not involved).
class Participant {
 public:
  virtual ~Participant() = default;
  // The state bytes of one prepare, as they come (Write), then Finish. Write
  // may return the member's error (it refused the prepare, or its agent is
  // gone) before Finish. Destroyed without Finish: the prepare is cancelled,
  // and the member drops what it received.
  class PrepareStream : public ByteSink {
   public:
    // Sends the end of the state with its hex SHA-256 and waits until the
    // member has prepared (or failed to).
    virtual absl::Status Finish(const std::string& state_sha256) = 0;
  };
  // Sends the header; the stream lasts until `deadline`.
  virtual absl::StatusOr<std::unique_ptr<PrepareStream>> BeginPrepare(
      const PrepareHeader& header, absl::Time deadline) = 0;
  virtual absl::Status Step(RestoreStep step, const std::string& restore_id,
                            absl::Time deadline) = 0;
  virtual absl::StatusOr<RestoreDecision> AskDecision(const std::string& restore_id,
                                                      absl::Time deadline) = 0;
  // Ends the call or prepare stream in progress, and every later one, with
  // CANCELLED (the agent is stopping, or the coordinator drops the member).
  // Called from another thread.
  virtual void Cancel() {}
};

// Connects to the agent of `member` at `address`.
using ParticipantFactory = std::function<absl::StatusOr<std::unique_ptr<Participant>>(
    const std::string& member, const std::string& address)>;

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_RESTORE_PROTOCOL_H_
