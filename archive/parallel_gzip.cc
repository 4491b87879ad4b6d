#include "archive/parallel_gzip.h"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/deflate.h"
#include "base/status_macros.h"
#include "base/thread_name.h"

namespace snapshot {
namespace {

constexpr size_t kHeaderBytes = 20;      // 10 + XLEN(2) + SI1 SI2 LEN(4) + size(4)
constexpr size_t kTrailerBytes = 8;      // CRC-32, ISIZE
constexpr size_t kStoredBlock = 65535;   // largest stored deflate block

// Fast mode inside this file: ISA-L instead of libdeflate.
constexpr int kFastLevel = -1;

// One worker's compressors and scratch space, reused for every block.
class Engine {
 public:
  explicit Engine(int level) : level_(level) {
    if (level_ > 0) deflate_.reset(libdeflate_alloc_compressor(level_));
    if (level_ > 1) {
      quick_.reset(libdeflate_alloc_compressor(1));
      // Raw deflate (no zlib header), zlib's default memory level.
      zlib_ok_ = deflateInit2(&zlib_, level_, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    }
  }
  ~Engine() {
    if (zlib_ok_) deflateEnd(&zlib_);
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  bool ok() const {
    return level_ <= 0 ||
           (deflate_ != nullptr && (level_ == 1 || (quick_ != nullptr && zlib_ok_)));
  }

  // Compresses `in` into `out` (appended): members of runs of pieces.
  // `entropy`: FastDeflater::SampledEntropy of each piece of `in`, or empty.
  void CompressBlock(const std::string& in, const std::vector<double>& entropy,
                     std::string* out) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
    if (level_ == 0) {
      runs_.assign(1, Run{0, in.size(), true});
    } else {
      fast_.Classify(in, &runs_, entropy.empty() ? nullptr : &entropy);
    }
    if (runs_.empty()) runs_.push_back(Run{0, 0, false});
    libdeflate_compressor* c = ChooseCompressor(p);
    for (const Run& r : runs_) EmitMember(p + r.start, r.size, r.incompressible, c, out);
  }

 private:
  using Run = FastDeflater::Run;  // incompressible: stored

  // The level asked for is honoured as a ratio: where a faster encoder
  // compresses a sample of the block (64 KiB of its compressible runs) to
  // within 1% of the level's size, the block is compressed by it — ISA-L's
  // igzip (fast mode's; nullptr is returned for it), else libdeflate's
  // level 1, else the lowest of libdeflate's levels below the one asked for
  // that still is (tried downwards from the next one, until one is not) —
  // for the same archive within about 1%, at a fraction of the cost.
  // The level's size is libdeflate's at that level or, when libdeflate
  // does better than gzip does (zlib at the same level: what `gzip -N`
  // writes, what users compare with), gzip's: the archive is then as large
  // as gzip's within 1%, not smaller at several times the cost. On tiny
  // records, libdeflate's level 6 is 7.5% smaller than gzip -6 and 1.7
  // times slower than its level 1, which is as large as gzip -6; on
  // Kubernetes-like JSON objects, its level 6 is 2.5% smaller than gzip -6
  // and 1.5 times slower than its level 5, as large as gzip -6.
  //
  // A sample costs about what compressing a quarter of a block at the level
  // does, so a worker's choice holds for its next kReuse blocks (a state's
  // kind of data changes over megabytes, not from block to block): on tiny
  // records, sampling every block halved the gain of the lower level.
  libdeflate_compressor* ChooseCompressor(const uint8_t* p) {
    if (quick_ == nullptr) return deflate_.get();
    if (reuse_ > 0) {
      --reuse_;
      return chosen_;
    }
    const Run* run = LongestCompressibleRun();
    if (run == nullptr) return deflate_.get();
    chosen_ = Sampled(p + run->start, run->size);
    reuse_ = kReuse;
    return chosen_;
  }

  static constexpr int kReuse = 3;
  static constexpr size_t kSample = 64 << 10, kHistory = 32 << 10;

  // The block's longest compressible run of at least kSample bytes, or
  // nullptr (nothing worth sampling: the level asked for is used).
  const Run* LongestCompressibleRun() const {
    const Run* run = nullptr;
    for (const Run& r : runs_) {
      if (!r.incompressible && r.size >= kSample && (run == nullptr || r.size > run->size)) {
        run = &r;
      }
    }
    return run;
  }

  // The encoder for data like the `run_size` bytes at `start` (see
  // ChooseCompressor), judged on a sample of them.
  libdeflate_compressor* Sampled(const uint8_t* start, size_t run_size) {
    // Each encoder's size for the sample is measured with the 32 KiB before
    // it as history (deflate's window), as inside the block: a cold start
    // costs encoders unequally (on records with repeats 16 to 32 KiB back,
    // zlib's level 6 is 15% larger cold, libdeflate's level 6 1%), and
    // judged cold, level 1 passed for gzip -6's size on records where gzip
    // -6 is 10% smaller.
    const size_t history = std::min(kHistory, run_size - kSample);
    const uint8_t* sample = start + history;
    sample_.resize(2 * (history + kSample) + 1024);
    // Bytes `size` writes for the sample after its history (0: failed).
    auto warm = [&](auto size) -> size_t {
      const size_t both = size(start, history + kSample);
      const size_t before = history == 0 ? 0 : size(start, history);
      return both == 0 || (history > 0 && before == 0) || both <= before ? 0 : both - before;
    };
    auto libdeflate_with = [&](libdeflate_compressor* c) {
      return warm([&](const uint8_t* in, size_t n) {
        return libdeflate_deflate_compress(c, in, n, &sample_[0], sample_.size());
      });
    };
    auto within = [](size_t size, size_t reference) {
      return size != 0 && size * 100 <= reference * 101;
    };
    const size_t full = libdeflate_with(deflate_.get());
    if (full == 0) return deflate_.get();
    const size_t igzip = warm([&](const uint8_t* in, size_t n) {
      return fast_.Deflate(absl::string_view(reinterpret_cast<const char*>(in), n), &sample_[0],
                           sample_.size());
    });
    if (within(igzip, full)) return nullptr;
    const size_t quick = libdeflate_with(quick_.get());
    if (within(quick, full)) return quick_.get();
    // Against gzip's size, once libdeflate's level has proved the smaller
    // (only then: the sample costs about what libdeflate's level does).
    const size_t reference = std::max(full, ZlibSize(sample, kSample, history));
    if (reference > full) {
      if (within(igzip, reference)) return nullptr;
      if (within(quick, reference)) return quick_.get();
    }
    libdeflate_compressor* chosen = deflate_.get();
    for (int level = level_ - 1; level > 1; --level) {
      libdeflate_compressor* c = Between(level);
      if (c == nullptr || !within(libdeflate_with(c), reference)) break;
      chosen = c;
    }
    return chosen;
  }

  // libdeflate's compressor at `level` (between 1 and the level asked for),
  // allocated on first use; nullptr when out of memory.
  libdeflate_compressor* Between(int level) {
    auto& c = between_[level];
    if (c == nullptr) c.reset(libdeflate_alloc_compressor(level));
    return c.get();
  }

  // Bytes of raw deflate zlib writes for `n` bytes at `p` at the level, the
  // `history` bytes before them given as its dictionary (0 when it fails:
  // then libdeflate's level is kept).
  size_t ZlibSize(const uint8_t* p, size_t n, size_t history) {
    if (deflateReset(&zlib_) != Z_OK) return 0;
    if (history > 0 && deflateSetDictionary(&zlib_, p - history, static_cast<uInt>(history)) != Z_OK) {
      return 0;
    }
    zlib_.next_in = const_cast<uint8_t*>(p);
    zlib_.avail_in = static_cast<uInt>(n);
    zlib_.next_out = reinterpret_cast<Bytef*>(&sample_[0]);
    zlib_.avail_out = static_cast<uInt>(sample_.size());
    return deflate(&zlib_, Z_FINISH) == Z_STREAM_END ? zlib_.total_out : 0;
  }

  void EmitMember(const uint8_t* data, size_t n, bool store, libdeflate_compressor* c,
                  std::string* out) {
    const size_t start = out->size();
    // Header: magic, CM=8, FLG=FEXTRA, MTIME 0, XFL 0, OS unknown; then the
    // extra field: XLEN 8, subfield "SA" of 4 bytes (member size, below).
    static const char kHeader[kHeaderBytes] = {
        '\x1f', '\x8b', 8, 4, 0, 0, 0, 0, 0, '\xff', 8, 0, kMemberSizeSubfield[0], kMemberSizeSubfield[1], 4, 0, 0, 0, 0, 0};
    out->append(kHeader, kHeaderBytes);
    size_t body = 0;
    if (!store && n > 0) {
      // Room for the worst case, in scratch space that is zeroed only when
      // it grows (out would be zeroed on every resize); fall back to storing
      // when it does not fit.
      const size_t cap = n + n / 8 + 1024;
      if (scratch_.size() < cap) scratch_.resize(cap);
      char* dst = &scratch_[0];
      body = level_ == kFastLevel || c == nullptr
                 ? fast_.Deflate(absl::string_view(reinterpret_cast<const char*>(data), n), dst,
                                 cap)
                 : libdeflate_deflate_compress(c, data, n, dst, cap);
      out->append(dst, body);
    }
    if (store || body == 0) {
      // Stored blocks: BFINAL/BTYPE=00 byte, LEN, NLEN, then the bytes.
      size_t left = n;
      const uint8_t* q = data;
      do {
        const size_t k = std::min(left, kStoredBlock);
        out->push_back(static_cast<char>(k == left ? 1 : 0));
        const uint16_t len = static_cast<uint16_t>(k);
        out->push_back(static_cast<char>(len & 0xff));
        out->push_back(static_cast<char>(len >> 8));
        out->push_back(static_cast<char>(~len & 0xff));
        out->push_back(static_cast<char>((~len >> 8) & 0xff));
        out->append(reinterpret_cast<const char*>(q), k);
        q += k;
        left -= k;
      } while (left > 0);
    }
    PutFixed32(static_cast<uint32_t>(libdeflate_crc32(0, data, n)), out);
    PutFixed32(static_cast<uint32_t>(n), out);
    const uint32_t size = static_cast<uint32_t>(out->size() - start);
    for (int i = 0; i < 4; ++i) {
      (*out)[start + 16 + i] = static_cast<char>(size >> (8 * i));
    }
  }

  struct FreeDeflate {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  const int level_;
  std::unique_ptr<libdeflate_compressor, FreeDeflate> deflate_;
  std::unique_ptr<libdeflate_compressor, FreeDeflate> quick_;  // level 1
  std::unique_ptr<libdeflate_compressor, FreeDeflate> between_[10];  // by level, lazily
  libdeflate_compressor* chosen_ = nullptr;  // the last sample's choice (nullptr: igzip)
  int reuse_ = 0;        // blocks the choice still holds for
  z_stream zlib_{};      // gzip's compressor at the level (the ratio's reference)
  bool zlib_ok_ = false;
  FastDeflater fast_;
  std::vector<Run> runs_;
  std::string sample_;
  std::string scratch_;  // compressed output before it is appended
};

// A block on its way: filled by the writer, compressed by a worker, written
// out in order by the writer. Buffers keep their capacity between uses.
// Block buffers outlive a compressor: the next Take reuses them (already
// faulted in) instead of allocating fresh memory, whatever thread it runs
// on. At most kPooled are kept; the rest are freed.
class BufferPool {
 public:
  static BufferPool& Get() {
    static BufferPool* p = new BufferPool();
    return *p;
  }
  std::string Take() {
    std::lock_guard<std::mutex> l(mu_);
    if (free_.empty()) return std::string();
    std::string b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void Give(std::string b) {
    b.clear();
    std::lock_guard<std::mutex> l(mu_);
    if (free_.size() < kPooled) free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kPooled = 16;  // 2 × slots of a 4-thread compressor
  std::mutex mu_;
  std::vector<std::string> free_;
};

struct Slot {
  Slot() : in(BufferPool::Get().Take()), out(BufferPool::Get().Take()) {}
  ~Slot() {
    BufferPool::Get().Give(std::move(in));
    BufferPool::Get().Give(std::move(out));
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  std::string in, out;
  // FastDeflater::SampledEntropy of each piece of `in`, taken by the filling
  // thread as it writes them (the bytes are then in its cache; a worker's
  // sample of them would be cache misses).
  std::vector<double> entropy;
  bool ready = false;
};

class ParallelCompressor : public Compressor {
 public:
  ParallelCompressor(ByteSink* out, int level, int threads, size_t block)
      : out_(out), block_(block), classify_(level != 0), slots_(2 * threads) {
    for (auto& s : slots_) s.in.reserve(block_);
    for (int i = 0; i < threads; ++i) {
      engines_.push_back(std::make_unique<Engine>(level));
    }
    for (int i = 0; i < threads; ++i) {
      workers_.emplace_back([this, e = engines_[i].get()] { Work(e); });
    }
  }

  bool ok() const {
    for (const auto& e : engines_) {
      if (!e->ok()) return false;
    }
    return true;
  }

  ~ParallelCompressor() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  absl::Status Write(absl::string_view data) override {
    while (!data.empty()) {
      Slot& s = slots_[fill_ % slots_.size()];
      if (!slot_taken_) SA_RETURN_IF_ERROR(TakeSlot());
      size_t n = std::min(block_ - s.in.size(), data.size());
      if (classify_) {
        // A piece at a time, its entropy sampled right after it is written.
        const size_t piece = FastDeflater::kPiece;
        n = std::min(n, piece - s.in.size() % piece);
        s.in.append(data.data(), n);
        if (s.in.size() % piece == 0) SampleLastPiece(&s);
      } else {
        s.in.append(data.data(), n);
      }
      data.remove_prefix(n);
      if (s.in.size() == block_) Submit();
    }
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    // An empty input still yields one (empty) member: valid gzip.
    if (slot_taken_ || fill_ == 0) {
      if (!slot_taken_) SA_RETURN_IF_ERROR(TakeSlot());
      Submit();
    }
    while (written_ < fill_) SA_RETURN_IF_ERROR(WriteOldest());
    return absl::OkStatus();
  }

 private:
  // Makes the next slot free for filling, writing out the oldest first when
  // every slot is busy.
  absl::Status TakeSlot() {
    if (fill_ - written_ == slots_.size()) SA_RETURN_IF_ERROR(WriteOldest());
    Slot& s = slots_[fill_ % slots_.size()];
    s.in.clear();
    s.entropy.clear();
    slot_taken_ = true;
    return absl::OkStatus();
  }

  // Records the entropy of the slot's last piece (complete, or the block's
  // short tail).
  void SampleLastPiece(Slot* s) {
    const size_t piece = FastDeflater::kPiece, start = s->entropy.size() * piece;
    if (start >= s->in.size()) return;
    s->entropy.push_back(FastDeflater::SampledEntropy(
        absl::string_view(s->in).substr(start, piece)));
  }

  void Submit() {
    if (classify_) SampleLastPiece(&slots_[fill_ % slots_.size()]);
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(fill_);
    }
    cv_.notify_one();
    ++fill_;
    slot_taken_ = false;
  }

  absl::Status WriteOldest() {
    Slot& s = slots_[written_ % slots_.size()];
    {
      std::unique_lock<std::mutex> l(mu_);
      done_cv_.wait(l, [&] { return s.ready; });
      s.ready = false;
    }
    ++written_;
    return out_->Write(s.out);
  }

  void Work(Engine* e) {
    SetThreadName("sa-gzip");
    for (;;) {
      size_t index;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        index = queue_.front();
        queue_.pop_front();
      }
      Slot& s = slots_[index % slots_.size()];
      s.out.clear();
      e->CompressBlock(s.in, s.entropy, &s.out);
      {
        std::lock_guard<std::mutex> l(mu_);
        s.ready = true;
      }
      done_cv_.notify_all();
    }
  }

  ByteSink* out_;
  const size_t block_;
  const bool classify_;  // levels other than 0 classify pieces
  std::vector<Slot> slots_;
  std::vector<std::unique_ptr<Engine>> engines_;
  std::vector<std::thread> workers_;
  size_t fill_ = 0;      // blocks submitted (the next to fill)
  size_t written_ = 0;   // blocks written out
  bool slot_taken_ = false;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<size_t> queue_;
  bool stop_ = false;
};

}  // namespace

CompressorFactory ParallelGzipCompressor(Compression compression, int threads,
                                         size_t block_bytes) {
  return [=](ByteSink* out) -> absl::StatusOr<std::unique_ptr<Compressor>> {
    SA_RETURN_IF_ERROR(compression.Check());
    const int level = compression.fast() ? kFastLevel : compression.level();
    if (threads < 1 || block_bytes == 0) {
      return absl::InvalidArgumentError(
          "the parallel compressor needs at least one thread and a block size");
    }
    auto c = std::make_unique<ParallelCompressor>(out, level, threads, block_bytes);
    if (!c->ok()) return absl::ResourceExhaustedError("cannot allocate a compressor");
    return std::unique_ptr<Compressor>(std::move(c));
  };
}

}  // namespace snapshot
