#include "archive/parallel_gzip.h"

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>

#include <cmath>
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
#include "base/status_macros.h"

namespace snapshot {
namespace {

constexpr size_t kPiece = 16 << 10;      // classification granularity
constexpr size_t kHeaderBytes = 20;      // 10 + XLEN(2) + SI1 SI2 LEN(4) + size(4)
constexpr size_t kTrailerBytes = 8;      // CRC-32, ISIZE
constexpr size_t kStoredBlock = 65535;   // largest stored deflate block
constexpr double kRandomEntropy = 7.8;   // bits per byte

// The byte entropy of a piece, in bits per byte, estimated from a sample:
// 64 bytes of every 256 (4 KiB of a 16 KiB piece), counted in four
// histograms to keep the increments independent. The sample's estimate runs
// about 0.05 bit low on random bytes (7.95), well clear of kRandomEntropy.
constexpr size_t kSampleRun = 64, kSampleStride = 256;
constexpr size_t kMaxSample = kPiece / kSampleStride * kSampleRun;

// c · log2(c) for every count a sample can hold: no log2 per piece.
const double* CountLogTable() {
  static const double* table = [] {
    double* t = new double[kMaxSample + 1];
    t[0] = 0;
    for (size_t c = 1; c <= kMaxSample; ++c) t[c] = c * std::log2(static_cast<double>(c));
    return t;
  }();
  return table;
}

double SampledEntropy(const uint8_t* p, size_t n) {
  uint32_t h[4][256] = {};
  size_t m = 0;
  for (size_t i = 0; i + kSampleRun <= n; i += kSampleStride) {
    const uint8_t* q = p + i;
    for (size_t j = 0; j < kSampleRun; j += 4) {
      ++h[0][q[j]];
      ++h[1][q[j + 1]];
      ++h[2][q[j + 2]];
      ++h[3][q[j + 3]];
    }
    m += kSampleRun;
  }
  if (m == 0) return 0;  // a piece under 64 bytes: compress it
  // H = log2(m) - (1/m) Σ c·log2(c)
  const double* t = CountLogTable();
  double sum = 0;
  for (int b = 0; b < 256; ++b) sum += t[h[0][b] + h[1][b] + h[2][b] + h[3][b]];
  return std::log2(static_cast<double>(m)) - sum / m;
}

// One worker's compressors and scratch space, reused for every block.
class Engine {
 public:
  explicit Engine(int level) : level_(level) {
    if (level_ > 0) {
      deflate_.reset(libdeflate_alloc_compressor(level_));
    }
    isal_buf_.resize(ISAL_DEF_LVL1_DEFAULT);
  }

  bool ok() const { return level_ <= 0 || deflate_ != nullptr; }

  // Compresses `in` into `out` (appended): members of runs of pieces.
  void CompressBlock(const std::string& in, std::string* out) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
    size_t run_start = 0;
    bool run_store = false;
    for (size_t off = 0; off < in.size(); off += kPiece) {
      const size_t n = std::min(kPiece, in.size() - off);
      const bool store = ShouldStore(p + off, n);
      if (off > 0 && store != run_store) {
        EmitMember(p + run_start, off - run_start, run_store, out);
        run_start = off;
      }
      run_store = store;
    }
    EmitMember(p + run_start, in.size() - run_start, run_store, out);
  }

 private:
  bool ShouldStore(const uint8_t* p, size_t n) {
    if (level_ == 0) return true;
    if (SampledEntropy(p, n) < kRandomEntropy) return false;
    // Looks random; but random bytes that repeat have high byte entropy and
    // still compress.
    return !HasRepeats(p, n);
  }

  // Whether some 3% of the piece repeats other bytes of it, judged from a
  // sample at a tenth of the cost of a trial deflate. Every 8-byte-aligned
  // word is entered in a hash table; then, at the start of every 128-byte
  // window, the words at its first 8 offsets are looked up. When a stretch
  // of 40 bytes or more from the window's start repeats bytes elsewhere in
  // the piece, one of those 8 offsets lines up with an aligned word of the
  // other copy and finds it; 32 equal bytes count the window as repeated.
  // Deflate gains 3% when about 3% of the windows are.
  bool HasRepeats(const uint8_t* p, size_t n) {
    constexpr size_t kWindow = 128, kMatch = 32;
    if (n < 2 * kWindow) return true;  // too small to judge: compress it
    std::fill(table_.begin(), table_.end(), kEmpty);
    for (size_t i = 0; i + 8 <= n; i += 8) table_[Hash(p + i)] = static_cast<uint16_t>(i);
    size_t hits = 0;
    for (size_t w = 0; w + kWindow <= n; w += kWindow) {
      for (size_t k = 0; k < 8; ++k) {
        const size_t at = w + k;
        const uint16_t j = table_[Hash(p + at)];
        if (j == kEmpty || j == at) continue;
        if (j + kMatch <= n && at + kMatch <= n && memcmp(p + j, p + at, kMatch) == 0) {
          ++hits;
          break;
        }
      }
    }
    return hits * kWindow * 100 >= n * 3;
  }

  static constexpr int kHashBits = 12;
  static constexpr uint16_t kEmpty = 0xffff;
  static uint32_t Hash(const uint8_t* q) {
    uint64_t v;
    memcpy(&v, q, 8);
    return static_cast<uint32_t>((v * 0x9e3779b97f4a7c15ull) >> (64 - kHashBits));
  }

  // Raw deflate with ISA-L level 1; 0 when the output does not fit.
  size_t IsalDeflate(const uint8_t* in, size_t n, uint8_t* out, size_t cap) {
    isal_zstream z;
    isal_deflate_stateless_init(&z);
    z.level = 1;
    z.level_buf = reinterpret_cast<uint8_t*>(&isal_buf_[0]);
    z.level_buf_size = static_cast<uint32_t>(isal_buf_.size());
    z.gzip_flag = IGZIP_DEFLATE;
    z.end_of_stream = 1;
    z.flush = NO_FLUSH;
    z.next_in = const_cast<uint8_t*>(in);
    z.avail_in = static_cast<uint32_t>(n);
    z.next_out = out;
    z.avail_out = static_cast<uint32_t>(cap);
    if (isal_deflate_stateless(&z) != COMP_OK) return 0;
    return z.total_out;
  }

  void EmitMember(const uint8_t* data, size_t n, bool store, std::string* out) {
    const size_t start = out->size();
    // Header: magic, CM=8, FLG=FEXTRA, MTIME 0, XFL 0, OS unknown; then the
    // extra field: XLEN 8, subfield "SA" of 4 bytes (member size, below).
    static const char kHeader[kHeaderBytes] = {
        '\x1f', '\x8b', 8, 4, 0, 0, 0, 0, 0, '\xff', 8, 0, 'S', 'A', 4, 0, 0, 0, 0, 0};
    out->append(kHeader, kHeaderBytes);
    size_t body = 0;
    if (!store && n > 0) {
      // Room for the worst case; fall back to storing when it does not fit.
      const size_t cap = n + n / 8 + 1024;
      out->resize(start + kHeaderBytes + cap);
      uint8_t* dst = reinterpret_cast<uint8_t*>(&(*out)[start + kHeaderBytes]);
      body = level_ == kFastCompression
                 ? IsalDeflate(data, n, dst, cap)
                 : libdeflate_deflate_compress(deflate_.get(), data, n, dst, cap);
      out->resize(start + kHeaderBytes + body);
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
  std::string isal_buf_;
  std::vector<uint16_t> table_ = std::vector<uint16_t>(size_t{1} << kHashBits);
};

// A block on its way: filled by the writer, compressed by a worker, written
// out in order by the writer. Buffers keep their capacity between uses.
struct Slot {
  std::string in, out;
  bool ready = false;
};

class ParallelCompressor : public Compressor {
 public:
  ParallelCompressor(ByteSink* out, int level, int threads, size_t block)
      : out_(out), block_(block), slots_(2 * threads) {
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
      s.in.append(data.data(), n);
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
    slot_taken_ = true;
    return absl::OkStatus();
  }

  void Submit() {
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
      e->CompressBlock(s.in, &s.out);
      {
        std::lock_guard<std::mutex> l(mu_);
        s.ready = true;
      }
      done_cv_.notify_all();
    }
  }

  ByteSink* out_;
  const size_t block_;
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

CompressorFactory ParallelGzipCompressor(int level, int threads,
                                         size_t block_bytes) {
  return [=](ByteSink* out) -> absl::StatusOr<std::unique_ptr<Compressor>> {
    if (level != kFastCompression) SA_RETURN_IF_ERROR(CheckCompressionLevel(level));
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
