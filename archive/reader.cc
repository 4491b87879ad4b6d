#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "archive/archive.h"
#include "base/status_macros.h"
#include "archive/tar.h"

namespace snapshot {

// Parses the decompressed tar stream as it arrives and keeps what the final
// checks need: hashes of meta.json and state.bin, the text of meta.json and
// SHA256SUMS, and the length of state.bin.
class ArchiveReader::TarParser : public ByteSink {
 public:
  TarParser(ByteSink* state_sink, const ReaderOptions* options)
      : state_sink_(state_sink), options_(options) {}

  absl::Status Write(absl::string_view data) override;

  // True once the two zero blocks that end the tar have been read.
  bool complete() const { return state_ == State::kEnd; }
  // Where an archive that ends now was cut off.
  std::string TruncationMessage() const;
  // The checks that need the whole archive; call once complete().
  absl::StatusOr<ArchiveInfo> Conclude();

 private:
  enum class State { kHeader, kData, kPadding, kSecondZero, kEnd };
  enum Entry { kMeta = 0, kState = 1, kSums = 2, kPax = 3 };

  absl::Status OnBlock();
  absl::Status OnHeader(const tar::Header& h);
  absl::Status OnData(absl::string_view data);
  absl::Status EndEntry();
  absl::Status CheckStateSize() const;
  absl::Status CheckSums() const;

  ByteSink* state_sink_;
  const ReaderOptions* options_;

  State state_ = State::kHeader;
  std::string block_;       // a header block being assembled
  uint64_t offset_ = 0;     // decompressed bytes consumed
  Entry entry_ = kMeta;     // the entry whose data is being read
  std::string entry_name_;  // its name, for messages
  uint64_t entry_size_ = 0;
  uint64_t remaining_ = 0;  // data bytes (kData) or padding bytes (kPadding)
  std::optional<tar::PaxRecords> pax_;  // applies to the next header

  bool seen_[3] = {false, false, false};
  std::string meta_json_, sums_, pax_body_;
  std::optional<SnapshotMeta> meta_;
  Sha256 meta_hash_;
  AsyncSha256 state_hash_;  // beside the inflating thread
  Digest meta_digest_{}, state_digest_{};
  uint64_t state_bytes_ = 0;
};

absl::Status ArchiveReader::TarParser::Write(absl::string_view data) {
  while (!data.empty()) {
    switch (state_) {
      case State::kHeader:
      case State::kSecondZero: {
        size_t n = std::min(tar::kBlockSize - block_.size(), data.size());
        block_.append(data.data(), n);
        data.remove_prefix(n);
        offset_ += n;
        if (block_.size() == tar::kBlockSize) {
          SA_RETURN_IF_ERROR(OnBlock());
          block_.clear();
        }
        break;
      }
      case State::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        SA_RETURN_IF_ERROR(OnData(data.substr(0, n)));
        data.remove_prefix(n);
        offset_ += n;
        remaining_ -= n;
        if (remaining_ == 0) SA_RETURN_IF_ERROR(EndEntry());
        break;
      }
      case State::kPadding: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        data.remove_prefix(n);
        offset_ += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kHeader;
        break;
      }
      case State::kEnd:
        return absl::DataLossError(absl::StrFormat(
            "trailing data after the end of the tar archive (at decompressed "
            "offset %d)",
            offset_));
    }
  }
  return absl::OkStatus();
}

absl::Status ArchiveReader::TarParser::OnBlock() {
  const uint64_t block_offset = offset_ - tar::kBlockSize;
  if (state_ == State::kSecondZero) {
    if (!tar::IsZeroBlock(block_)) {
      return absl::DataLossError(absl::StrFormat(
          "invalid tar: the zero block at decompressed offset %d is followed "
          "by data instead of a second zero block",
          block_offset - tar::kBlockSize));
    }
    state_ = State::kEnd;
    return absl::OkStatus();
  }
  if (tar::IsZeroBlock(block_)) {
    if (pax_) {
      return absl::DataLossError("invalid tar: a PAX header is not followed by "
                                 "the header it describes");
    }
    state_ = State::kSecondZero;
    return absl::OkStatus();
  }
  absl::StatusOr<tar::Header> h = tar::ParseHeader(block_);
  if (!h.ok()) {
    return absl::DataLossError(
        absl::StrFormat("%s (header at decompressed offset %d)",
                        h.status().message(), block_offset));
  }
  return OnHeader(*h);
}

absl::Status ArchiveReader::TarParser::OnHeader(const tar::Header& h) {
  uint64_t size = h.size;
  std::string name = h.name;
  if (h.typeflag == 'x') {
    if (pax_) {
      return absl::DataLossError("invalid tar: two PAX headers in a row");
    }
    if (size > options_->max_sums_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "PAX header of %d bytes is over the limit of %d", size,
          options_->max_sums_bytes));
    }
    entry_ = kPax;
    pax_body_.clear();
  } else {
    if (pax_) {
      if (pax_->has_size) size = pax_->size;
      if (pax_->has_path) name = pax_->path;
      pax_.reset();
    }
    if (h.typeflag != '0' && h.typeflag != '\0') {
      return absl::DataLossError(absl::StrFormat(
          "unexpected entry \"%s\" of tar type '%c' in snapshot (only the "
          "regular files meta.json, state.bin and SHA256SUMS belong there)",
          absl::CEscape(name), h.typeflag));
    }
    if (name == kMetaFile) {
      entry_ = kMeta;
      if (size > options_->max_meta_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "meta.json is %d bytes, over the limit of %d", size,
            options_->max_meta_bytes));
      }
    } else if (name == kStateFile) {
      entry_ = kState;
      if (size > options_->max_state_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "state.bin is %d bytes, over the limit of %d", size,
            options_->max_state_bytes));
      }
    } else if (name == kSumsFile) {
      entry_ = kSums;
      if (size > options_->max_sums_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "SHA256SUMS is %d bytes, over the limit of %d", size,
            options_->max_sums_bytes));
      }
    } else {
      return absl::DataLossError(absl::StrFormat(
          "unexpected file \"%s\" in snapshot", absl::CEscape(name)));
    }
    if (seen_[entry_]) {
      return absl::DataLossError(
          absl::StrFormat("duplicate file \"%s\" in snapshot", name));
    }
    seen_[entry_] = true;
    if (entry_ == kState) {
      entry_size_ = size;
      SA_RETURN_IF_ERROR(CheckStateSize());
    }
  }
  entry_name_ = name;
  entry_size_ = size;
  remaining_ = size;
  state_ = State::kData;
  if (size == 0) return EndEntry();
  return absl::OkStatus();
}

absl::Status ArchiveReader::TarParser::OnData(absl::string_view data) {
  switch (entry_) {
    case kMeta:
      meta_hash_.Update(data);
      meta_json_.append(data.data(), data.size());
      return absl::OkStatus();
    case kState:
      state_hash_.Update(data);
      state_bytes_ += data.size();
      return state_sink_ ? state_sink_->Write(data) : absl::OkStatus();
    case kSums:
      sums_.append(data.data(), data.size());
      return absl::OkStatus();
    case kPax:
      pax_body_.append(data.data(), data.size());
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status ArchiveReader::TarParser::EndEntry() {
  switch (entry_) {
    case kMeta: {
      meta_digest_ = meta_hash_.Finish();
      SA_ASSIGN_OR_RETURN(meta_, ParseMetaJson(meta_json_));
      SA_RETURN_IF_ERROR(CheckStateSize());
      if (options_->on_meta) SA_RETURN_IF_ERROR(options_->on_meta(*meta_));
      break;
    }
    case kState:
      state_digest_ = state_hash_.Finish();
      break;
    case kSums:
      break;
    case kPax: {
      SA_ASSIGN_OR_RETURN(pax_, tar::ParsePax(pax_body_));
      break;
    }
  }
  remaining_ = tar::PaddingFor(entry_size_);
  state_ = remaining_ > 0 ? State::kPadding : State::kHeader;
  return absl::OkStatus();
}

// Once both meta.json and the state.bin header are known, their sizes must
// agree (stricter than Nomad, whose restore fails on this much later).
absl::Status ArchiveReader::TarParser::CheckStateSize() const {
  if (!meta_ || !seen_[kState]) return absl::OkStatus();
  uint64_t actual = entry_ == kState ? entry_size_ : state_bytes_;
  if (meta_->size != actual) {
    return absl::DataLossError(absl::StrFormat(
        "meta.json says the state is %d bytes but state.bin holds %d bytes",
        meta_->size, actual));
  }
  return absl::OkStatus();
}

std::string ArchiveReader::TarParser::TruncationMessage() const {
  switch (state_) {
    case State::kHeader:
      if (block_.empty()) {
        return absl::StrFormat(
            "archive truncated: the tar stream ends at decompressed offset %d "
            "without its end marker",
            offset_);
      }
      return absl::StrFormat(
          "archive truncated inside a tar header (decompressed offset %d)",
          offset_ - block_.size());
    case State::kData:
      return absl::StrFormat("archive truncated inside %s after %d of %d bytes",
                             entry_ == kPax ? "a PAX header" : entry_name_,
                             entry_size_ - remaining_, entry_size_);
    case State::kPadding:
      return absl::StrFormat("archive truncated in the padding after %s",
                             entry_name_);
    case State::kSecondZero:
    case State::kEnd:
      break;
  }
  return "archive truncated inside the tar end marker";
}

absl::Status ArchiveReader::TarParser::CheckSums() const {
  bool listed[2] = {false, false};
  const Digest* actual[2] = {&meta_digest_, &state_digest_};
  int line_no = 0;
  std::vector<absl::string_view> lines = absl::StrSplit(sums_, '\n');
  // A final newline leaves one empty piece at the end; that is not a line.
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (absl::string_view line : lines) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // "<64 hex>  <name>" (sha256sum's form); any run of blanks separates.
    size_t blank = line.find_first_of(" \t");
    absl::string_view hex = line.substr(0, blank);
    absl::string_view name =
        blank == absl::string_view::npos
            ? absl::string_view()
            : absl::StripAsciiWhitespace(line.substr(blank));
    if (!name.empty() && name[0] == '*') name.remove_prefix(1);  // binary mode
    Digest listed_digest;
    if (name.empty() || !ParseHexDigest(hex, &listed_digest)) {
      return absl::DataLossError(absl::StrFormat(
          "SHA256SUMS line %d is not \"<64 hex digits>  <file name>\"",
          line_no));
    }
    int which;
    if (name == kMetaFile) {
      which = kMeta;
    } else if (name == kStateFile) {
      which = kState;
    } else {
      return absl::DataLossError(absl::StrFormat(
          "SHA256SUMS lists a hash for \"%s\", which is not in the snapshot",
          absl::CEscape(name)));
    }
    if (listed[which]) {
      return absl::DataLossError(
          absl::StrFormat("SHA256SUMS lists %s twice", name));
    }
    listed[which] = true;
    if (listed_digest != *actual[which]) {
      return absl::DataLossError(absl::StrFormat(
          "hash mismatch for %s: SHA256SUMS says %s, the content hashes to %s",
          name, HexLower(listed_digest), HexLower(*actual[which])));
    }
  }
  for (int which : {kMeta, kState}) {
    if (!listed[which]) {
      return absl::DataLossError(absl::StrFormat(
          "SHA256SUMS has no hash for %s",
          which == kMeta ? kMetaFile : kStateFile));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ArchiveInfo> ArchiveReader::TarParser::Conclude() {
  for (int which : {kMeta, kState, kSums}) {
    if (!seen_[which]) {
      const char* names[] = {kMetaFile, kStateFile, kSumsFile};
      return absl::DataLossError(absl::StrFormat(
          "file missing from snapshot: %s", names[which]));
    }
  }
  SA_RETURN_IF_ERROR(CheckSums());
  SA_RETURN_IF_ERROR(CheckStateSize());
  ArchiveInfo info;
  info.meta = *meta_;
  info.meta_sha256 = meta_digest_;
  info.state_sha256 = state_digest_;
  return info;
}

ArchiveReader::ArchiveReader(ByteSink* state_sink, ReaderOptions options)
    : options_(std::move(options)) {
  tar_ = std::make_unique<TarParser>(state_sink, &options_);
  gzip_ = std::make_unique<GzipDecoder>(tar_.get());
}

ArchiveReader::~ArchiveReader() = default;


absl::Status ArchiveReader::Feed(absl::string_view data) {
  if (!error_.ok()) return error_;
  if (data.size() > options_.max_archive_bytes - archive_bytes_) {
    error_ = absl::ResourceExhaustedError(absl::StrFormat(
        "archive is larger than the limit of %d bytes",
        options_.max_archive_bytes));
    return error_;
  }
  archive_hash_.Update(data);
  archive_bytes_ += data.size();
  error_ = gzip_->Feed(data);
  return error_;
}

absl::StatusOr<ArchiveInfo> ArchiveReader::Finish() {
  if (!error_.ok()) return error_;
  // Whatever happens below, the reader is used up.
  error_ = absl::FailedPreconditionError("ArchiveReader::Finish was called");
  if (archive_bytes_ == 0) return absl::DataLossError("archive is empty");
  if (!tar_->complete()) return absl::DataLossError(tar_->TruncationMessage());
  if (!gzip_->AtMemberBoundary() && gzip_->members() > 0) {
    return absl::DataLossError(absl::StrFormat(
        "trailing data after the archive: the %d bytes after the end of the "
        "gzip stream (offset %d) are not a complete gzip member",
        archive_bytes_ - gzip_->member_start(), gzip_->member_start()));
  }
  if (!gzip_->AtMemberBoundary()) {
    return absl::DataLossError(absl::StrFormat(
        "archive truncated: the gzip stream ends after %d bytes, before its "
        "trailer",
        archive_bytes_));
  }
  SA_ASSIGN_OR_RETURN(ArchiveInfo info, tar_->Conclude());
  info.archive_size = archive_bytes_;
  info.checksum = ChecksumString(archive_hash_.Finish());
  return info;
}

absl::StatusOr<ArchiveInfo> ReadArchive(ByteSource* source,
                                        ByteSink* state_sink,
                                        const ReaderOptions& options) {
  ArchiveReader reader(state_sink, options);
  constexpr size_t kBufferSize = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kBufferSize]);
  for (;;) {
    SA_ASSIGN_OR_RETURN(size_t n, source->Read(buf.get(), kBufferSize));
    if (n == 0) break;
    SA_RETURN_IF_ERROR(reader.Feed(absl::string_view(buf.get(), n)));
  }
  return reader.Finish();
}

}  // namespace snapshot
