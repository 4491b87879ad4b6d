#include "archive/gzip.h"

#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/coding.h"
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

std::string Compression::Name() const {
  return fast_ ? "fast" : absl::StrCat("level ", level_);
}

CompressorFactory ZlibGzipCompressor(int level) {
  return [level](ByteSink* out) -> absl::StatusOr<std::unique_ptr<Compressor>> {
    SA_RETURN_IF_ERROR(CheckCompressionLevel(level));
    auto c = std::make_unique<ZlibCompressor>(out);
    SA_RETURN_IF_ERROR(c->Init(level));
    return std::unique_ptr<Compressor>(std::move(c));
  };
}

namespace {

constexpr size_t kMaxHeaderBytes = 128 << 10;  // any FEXTRA, and names

// Parses a complete gzip member header at the start of `h`. Returns its
// length, 0 when more bytes are needed, or an error.
absl::StatusOr<size_t> ParseHeader(absl::string_view h, bool first_member,
                                   uint64_t offset) {
  if (h.size() >= 1 && static_cast<unsigned char>(h[0]) != 0x1f) {
    goto not_gzip;
  }
  if (h.size() >= 2 && static_cast<unsigned char>(h[1]) != 0x8b) goto not_gzip;
  if (h.size() < 10) return 0;
  {
    if (h[2] != 8) {
      return absl::DataLossError(absl::StrFormat(
          "corrupt gzip header at offset %d: compression method %d is not "
          "deflate",
          offset, static_cast<unsigned char>(h[2])));
    }
    const unsigned char flg = static_cast<unsigned char>(h[3]);
    if (flg & 0xe0) {
      return absl::DataLossError(absl::StrFormat(
          "corrupt gzip header at offset %d: reserved flag bits are set", offset));
    }
    size_t pos = 10;
    if (flg & 4) {  // FEXTRA
      if (h.size() < pos + 2) return 0;
      pos += 2 + (static_cast<unsigned char>(h[pos]) |
                  static_cast<unsigned char>(h[pos + 1]) << 8);
      if (h.size() < pos) return 0;
    }
    for (unsigned char bit : {8, 16}) {  // FNAME, FCOMMENT: NUL-terminated
      if (!(flg & bit)) continue;
      size_t nul = h.find('\0', pos);
      if (nul == absl::string_view::npos) return 0;
      pos = nul + 1;
    }
    if (flg & 2) {  // FHCRC: the low 16 bits of the header's CRC-32
      if (h.size() < pos + 2) return 0;
      const uint32_t crc = crc32_z(0, reinterpret_cast<const Bytef*>(h.data()), pos);
      const uint16_t want = static_cast<unsigned char>(h[pos]) |
                            static_cast<unsigned char>(h[pos + 1]) << 8;
      if ((crc & 0xffff) != want) {
        return absl::DataLossError(absl::StrFormat(
            "corrupt gzip header at offset %d: header CRC mismatch", offset));
      }
      pos += 2;
    }
    return pos;
  }
not_gzip:
  if (first_member) {
    return absl::DataLossError(
        "not a gzip archive: it does not start with the gzip magic bytes "
        "1f 8b (a plain tar or another file?)");
  }
  return absl::DataLossError(absl::StrFormat(
      "trailing data after the archive: the bytes at offset %d, after the "
      "end of the gzip stream, are not a gzip member",
      offset));
}

}  // namespace

GzipDecoder::GzipDecoder(ByteSink* out)
    : out_(out), inflate_(new inflate_state), buf_(new char[kOutBufferSize]) {}

GzipDecoder::~GzipDecoder() = default;

bool GzipDecoder::AtMemberBoundary() const {
  return state_ == State::kBetweenMembers;
}

absl::Status GzipDecoder::Header(absl::string_view* data, bool* done) {
  *done = false;
  const size_t before = pending_.size();
  const size_t take = std::min(data->size(), kMaxHeaderBytes - before);
  pending_.append(data->data(), take);
  SA_ASSIGN_OR_RETURN(size_t len, ParseHeader(pending_, members_ == 0, member_start_));
  if (len == 0) {
    if (pending_.size() >= kMaxHeaderBytes) {
      return absl::DataLossError(absl::StrFormat(
          "corrupt gzip header at offset %d: longer than %d bytes",
          member_start_, kMaxHeaderBytes));
    }
    consumed_ += take;
    data->remove_prefix(take);
    return absl::OkStatus();
  }
  // Only the header's own bytes are consumed.
  const size_t used = len - before;
  consumed_ += used;
  data->remove_prefix(used);
  pending_.clear();
  isal_inflate_init(inflate_.get());
  // Raw deflate, then the trailer: ISA-L checks CRC-32 and length itself.
  inflate_->crc_flag = ISAL_GZIP_NO_HDR_VER;
  *done = true;
  return absl::OkStatus();
}

absl::Status GzipDecoder::Body(absl::string_view* data) {
  inflate_state* z = inflate_.get();
  // avail_in is 32-bit: feed at most 1 GiB at a time.
  const uint32_t n = static_cast<uint32_t>(std::min<size_t>(data->size(), 1u << 30));
  z->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data->data()));
  z->avail_in = n;
  for (;;) {
    z->next_out = reinterpret_cast<uint8_t*>(buf_.get());
    z->avail_out = kOutBufferSize;
    int rc = isal_inflate(z);
    const size_t produced = kOutBufferSize - z->avail_out;
    // Pass on what was decoded before looking at the result: the downstream
    // parser names a fault more precisely than a CRC check at the end can.
    if (produced > 0) {
      SA_RETURN_IF_ERROR(out_->Write(absl::string_view(buf_.get(), produced)));
    }
    if (rc == ISAL_INCORRECT_CHECKSUM) {
      return absl::DataLossError(absl::StrFormat(
          "gzip CRC mismatch: the data of gzip member %d does not match the "
          "CRC-32 and length in its trailer",
          members_ + 1));
    }
    if (rc < 0) {
      // Name the member, not the byte: how far ISA-L had read when it saw
      // the fault depends on how the input was split.
      return absl::DataLossError(absl::StrFormat(
          "corrupt gzip data in member %d (starting at compressed offset %d): %s",
          members_ + 1, member_start_,
          rc == ISAL_INVALID_BLOCK    ? "invalid deflate block"
          : rc == ISAL_INVALID_SYMBOL ? "invalid code"
          : rc == ISAL_INVALID_LOOKBACK ? "invalid distance too far back"
                                        : "inflate failed"));
    }
    if (z->block_state == ISAL_BLOCK_FINISH || z->avail_in == 0) {
      if (z->block_state == ISAL_BLOCK_FINISH || produced < kOutBufferSize) break;
    }
  }
  const size_t used = n - z->avail_in;
  consumed_ += used;
  data->remove_prefix(used);
  if (z->block_state == ISAL_BLOCK_FINISH) {
    ++members_;
    state_ = State::kBetweenMembers;
  }
  return absl::OkStatus();
}

absl::Status GzipDecoder::Feed(absl::string_view data) {
  while (!data.empty()) {
    switch (state_) {
      case State::kStart:
      case State::kBetweenMembers:
        member_start_ = consumed_;
        state_ = State::kHeader;
        break;
      case State::kHeader: {
        bool done = false;
        SA_RETURN_IF_ERROR(Header(&data, &done));
        if (done) state_ = State::kBody;
        break;
      }
      case State::kBody:
        SA_RETURN_IF_ERROR(Body(&data));
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace snapshot
