#include "engine/state_check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

class PassThrough : public StateCheck {
 public:
  explicit PassThrough(ByteSink* next) : next_(next) {}
  absl::Status Write(absl::string_view data) override {
    return next_ ? next_->Write(data) : absl::OkStatus();
  }
  absl::Status Finish() override { return absl::OkStatus(); }

 private:
  ByteSink* next_;
};

// The database's SHA-256 trails the database: hash all but the last 32
// bytes seen, which are kept aside until more arrive.
class EtcdDbCheck : public StateCheck {
 public:
  explicit EtcdDbCheck(ByteSink* next) : next_(next) {}

  absl::Status Write(absl::string_view data) override {
    total_ += data.size();
    if (data.size() >= kDigest) {
      hash_.Update(tail_);
      hash_.Update(data.substr(0, data.size() - kDigest));
      tail_.assign(data.data() + data.size() - kDigest, kDigest);
    } else {
      std::string joined = tail_;
      joined.append(data.data(), data.size());
      const size_t spill = joined.size() > kDigest ? joined.size() - kDigest : 0;
      hash_.Update(absl::string_view(joined.data(), spill));
      tail_ = joined.substr(spill);
    }
    return next_ ? next_->Write(data) : absl::OkStatus();
  }

  absl::Status Finish() override {
    if (total_ < kDigest) {
      return absl::DataLossError(absl::StrCat(
          "state.bin of an etcd snapshot must end with the database's 32-byte "
          "SHA-256, but it has only ", total_, " bytes"));
    }
    const Digest got = hash_.Finish();
    if (absl::string_view(reinterpret_cast<const char*>(got.data()), kDigest) !=
        tail_) {
      return absl::DataLossError(
          "etcd database hash mismatch: the SHA-256 at the end of state.bin "
          "does not match the database before it");
    }
    return absl::OkStatus();
  }

 private:
  static constexpr size_t kDigest = 32;
  ByteSink* next_;
  Sha256 hash_;
  std::string tail_;
  uint64_t total_ = 0;
};

}  // namespace

std::unique_ptr<StateCheck> StateCheck::For(const SnapshotMeta& meta,
                                            ByteSink* next) {
  if (meta.engine == kEngineEtcd) return std::make_unique<EtcdDbCheck>(next);
  return std::make_unique<PassThrough>(next);
}

}  // namespace snapshot
