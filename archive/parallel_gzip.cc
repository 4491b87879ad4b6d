#include "archive/parallel_gzip.h"

#include <libdeflate.h>

#include <deque>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

// Compresses one block into one complete gzip member.
absl::StatusOr<std::string> CompressMember(int level, const std::string& in) {
  std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> c(
      libdeflate_alloc_compressor(level), libdeflate_free_compressor);
  if (!c) return absl::ResourceExhaustedError("cannot allocate a compressor");
  std::string out(libdeflate_gzip_compress_bound(c.get(), in.size()), '\0');
  size_t n = libdeflate_gzip_compress(c.get(), in.data(), in.size(), &out[0],
                                      out.size());
  if (n == 0) return absl::InternalError("libdeflate_gzip_compress failed");
  out.resize(n);
  return out;
}

class ParallelCompressor : public Compressor {
 public:
  ParallelCompressor(ByteSink* out, int level, int threads, size_t block)
      : out_(out), level_(level), max_inflight_(threads + 1), block_(block) {}

  ~ParallelCompressor() override {
    for (auto& f : inflight_) f.wait();  // never leave a worker running
  }

  absl::Status Write(absl::string_view data) override {
    while (!data.empty()) {
      size_t n = std::min(block_ - cur_.size(), data.size());
      cur_.append(data.data(), n);
      data.remove_prefix(n);
      if (cur_.size() == block_) SA_RETURN_IF_ERROR(Submit());
    }
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    // An empty input still yields one (empty) member: valid gzip.
    if (!cur_.empty() || !submitted_any_) SA_RETURN_IF_ERROR(Submit());
    while (!inflight_.empty()) SA_RETURN_IF_ERROR(WriteOldest());
    return absl::OkStatus();
  }

 private:
  absl::Status Submit() {
    if (inflight_.size() >= max_inflight_) SA_RETURN_IF_ERROR(WriteOldest());
    auto block = std::make_shared<std::string>(std::move(cur_));
    cur_ = std::string();
    cur_.reserve(block_);
    inflight_.push_back(std::async(std::launch::async, [level = level_, block] {
      return CompressMember(level, *block);
    }));
    submitted_any_ = true;
    return absl::OkStatus();
  }

  absl::Status WriteOldest() {
    absl::StatusOr<std::string> member = inflight_.front().get();
    inflight_.pop_front();
    if (!member.ok()) return member.status();
    return out_->Write(*member);
  }

  ByteSink* out_;
  const int level_;
  const size_t max_inflight_;
  const size_t block_;
  std::string cur_;
  bool submitted_any_ = false;
  std::deque<std::future<absl::StatusOr<std::string>>> inflight_;
};

}  // namespace

CompressorFactory ParallelGzipCompressor(int level, int threads,
                                         size_t block_bytes) {
  return [=](ByteSink* out) -> absl::StatusOr<std::unique_ptr<Compressor>> {
    SA_RETURN_IF_ERROR(CheckCompressionLevel(level));
    if (threads < 1 || block_bytes == 0) {
      return absl::InvalidArgumentError(
          "the parallel compressor needs at least one thread and a block size");
    }
    return std::unique_ptr<Compressor>(
        new ParallelCompressor(out, level, threads, block_bytes));
  };
}

}  // namespace snapshot
