#include "archive/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

constexpr size_t kOutBufferSize = 256 * 1024;

// The member header Go's compress/gzip writes: no name, no mtime, OS unknown.
constexpr unsigned char kGzipHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};

void PutLE32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

class ZlibCompressor : public Compressor {
 public:
  ZlibCompressor(ByteSink* out) : out_(out), buf_(new char[kOutBufferSize]) {
    memset(&zs_, 0, sizeof(zs_));
  }
  ~ZlibCompressor() override {
    if (initialized_) deflateEnd(&zs_);
  }

  absl::Status Init(int level) {
    // Raw deflate: the gzip framing is written here, so that the header is
    // byte-for-byte Go's and multi-member encoders can share it.
    if (deflateInit2(&zs_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
      return absl::InternalError("deflateInit2 failed");
    }
    initialized_ = true;
    return out_->Write(absl::string_view(
        reinterpret_cast<const char*>(kGzipHeader), sizeof(kGzipHeader)));
  }

  absl::Status Write(absl::string_view data) override {
    crc_ = crc32_z(crc_, reinterpret_cast<const Bytef*>(data.data()),
                   data.size());
    isize_ += static_cast<uint32_t>(data.size());
    return Deflate(data, Z_NO_FLUSH);
  }

  absl::Status Finish() override {
    SA_RETURN_IF_ERROR(Deflate(absl::string_view(), Z_FINISH));
    char trailer[8];
    PutLE32(static_cast<uint32_t>(crc_), trailer);
    PutLE32(isize_, trailer + 4);
    return out_->Write(absl::string_view(trailer, sizeof(trailer)));
  }

 private:
  absl::Status Deflate(absl::string_view data, int flush) {
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs_.avail_in = 0;
    size_t left = data.size();
    for (;;) {
      // avail_in is 32-bit: feed at most 1 GiB at a time.
      if (zs_.avail_in == 0 && left > 0) {
        uInt n = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
        zs_.avail_in = n;
        left -= n;
      }
      zs_.next_out = reinterpret_cast<Bytef*>(buf_.get());
      zs_.avail_out = kOutBufferSize;
      int rc = deflate(&zs_, (left > 0) ? Z_NO_FLUSH : flush);
      if (rc == Z_STREAM_ERROR) return absl::InternalError("deflate failed");
      size_t produced = kOutBufferSize - zs_.avail_out;
      if (produced > 0) {
        SA_RETURN_IF_ERROR(out_->Write(absl::string_view(buf_.get(), produced)));
      }
      if (flush == Z_FINISH && left == 0) {
        if (rc == Z_STREAM_END) return absl::OkStatus();
      } else if (zs_.avail_in == 0 && left == 0 && zs_.avail_out != 0) {
        return absl::OkStatus();
      }
    }
  }

  ByteSink* out_;
  std::unique_ptr<char[]> buf_;
  z_stream zs_;
  bool initialized_ = false;
  uLong crc_ = crc32_z(0, nullptr, 0);
  uint32_t isize_ = 0;
};

}  // namespace

absl::Status CheckCompressionLevel(int level) {
  if (level < 0 || level > 9) {
    return absl::InvalidArgumentError(
        absl::StrCat("the gzip compression level must be 0 to 9, got ", level));
  }
  return absl::OkStatus();
}

CompressorFactory ZlibGzipCompressor(int level) {
  return [level](ByteSink* out) -> absl::StatusOr<std::unique_ptr<Compressor>> {
    SA_RETURN_IF_ERROR(CheckCompressionLevel(level));
    auto c = std::make_unique<ZlibCompressor>(out);
    SA_RETURN_IF_ERROR(c->Init(level));
    return std::unique_ptr<Compressor>(std::move(c));
  };
}

GzipDecoder::GzipDecoder(ByteSink* out)
    : out_(out), zs_(new z_stream), buf_(new char[kOutBufferSize]) {
  memset(zs_.get(), 0, sizeof(z_stream));
  // 16 + 15: gzip framing only (no zlib or raw auto-detection).
  if (inflateInit2(zs_.get(), 16 + 15) != Z_OK) abort();  // out of memory
}

GzipDecoder::~GzipDecoder() { inflateEnd(zs_.get()); }

bool GzipDecoder::AtMemberBoundary() const {
  return state_ == State::kBetweenMembers;
}

absl::Status GzipDecoder::MapZlibError(int rc) {
  const char* msg = zs_->msg != nullptr ? zs_->msg : "";
  if (rc == Z_MEM_ERROR) {
    return absl::ResourceExhaustedError("out of memory while decompressing");
  }
  if (strcmp(msg, "incorrect header check") == 0) {
    if (members_ == 0) {
      return absl::DataLossError(
          "not a gzip archive: it does not start with the gzip magic bytes "
          "1f 8b (a plain tar or another file?)");
    }
    return absl::DataLossError(absl::StrFormat(
        "trailing data after the archive: the bytes at offset %d, after the "
        "end of the gzip stream, are not a gzip member",
        member_start_));
  }
  if (strcmp(msg, "incorrect data check") == 0) {
    return absl::DataLossError(absl::StrFormat(
        "gzip CRC mismatch: the data of gzip member %d does not match the "
        "CRC-32 in its trailer",
        members_ + 1));
  }
  if (strcmp(msg, "incorrect length check") == 0) {
    return absl::DataLossError(absl::StrFormat(
        "gzip length mismatch: gzip member %d does not have the length in "
        "its trailer",
        members_ + 1));
  }
  return absl::DataLossError(absl::StrFormat(
      "corrupt gzip data near compressed offset %d: %s", consumed_,
      *msg ? msg : "inflate failed"));
}

absl::Status GzipDecoder::Feed(absl::string_view data) {
  while (!data.empty()) {
    if (state_ != State::kInMember) {
      if (state_ == State::kBetweenMembers) inflateReset(zs_.get());
      member_start_ = consumed_;
      state_ = State::kInMember;
    }
    // avail_in is 32-bit: feed at most 1 GiB at a time.
    uInt n = static_cast<uInt>(std::min<size_t>(data.size(), 1u << 30));
    zs_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs_->avail_in = n;
    zs_->next_out = reinterpret_cast<Bytef*>(buf_.get());
    zs_->avail_out = kOutBufferSize;
    int rc = inflate(zs_.get(), Z_NO_FLUSH);
    size_t used = n - zs_->avail_in;
    size_t produced = kOutBufferSize - zs_->avail_out;
    consumed_ += used;
    data.remove_prefix(used);
    // Pass on what was decoded before looking at the result: the downstream
    // parser names a fault more precisely than a CRC check at the end can.
    if (produced > 0) {
      SA_RETURN_IF_ERROR(out_->Write(absl::string_view(buf_.get(), produced)));
    }
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      return MapZlibError(rc);
    }
    if (rc == Z_STREAM_END) {
      ++members_;
      state_ = State::kBetweenMembers;
    } else if (used == 0 && produced == 0) {
      return absl::InternalError("inflate made no progress");
    }
  }
  return absl::OkStatus();
}

}  // namespace snapshot
