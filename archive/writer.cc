#include <algorithm>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "archive/archive.h"
#include "base/status_macros.h"
#include "archive/tar.h"

namespace snapshot {
namespace {


constexpr char kZeros[2 * tar::kBlockSize] = {};

absl::Status WriteFile(Compressor* c, absl::string_view name,
                       absl::string_view data, int64_t mtime) {
  SA_RETURN_IF_ERROR(c->Write(tar::EncodeFileHeader(name, data.size(), mtime)));
  SA_RETURN_IF_ERROR(c->Write(data));
  return c->Write(absl::string_view(kZeros, tar::PaddingFor(data.size())));
}

}  // namespace

absl::StatusOr<ArchiveInfo> WriteArchive(const SnapshotMeta& meta,
                                         ByteSource* state, ByteSink* out,
                                         const WriterOptions& options) {
  SA_ASSIGN_OR_RETURN(std::string meta_json, EncodeMetaJson(meta));
  const int64_t mtime = options.mtime >= 0 ? options.mtime : time(nullptr);
  CompressorFactory factory = options.compressor
                                  ? options.compressor
                                  : ZlibGzipCompressor(options.compression_level);
  HashingSink hashed_out(out);
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Compressor> gz, factory(&hashed_out));

  ArchiveInfo info;
  info.meta = meta;
  info.meta_sha256 = Sha256Of(meta_json);
  SA_RETURN_IF_ERROR(WriteFile(gz.get(), kMetaFile, meta_json, mtime));

  // state.bin streams from the source straight into the state hash's block
  // (no copy for hashing), from which the compressor takes it.
  SA_RETURN_IF_ERROR(
      gz->Write(tar::EncodeFileHeader(kStateFile, meta.size, mtime)));
  AsyncSha256 state_hash;  // beside reading and compressing
  uint64_t got = 0;
  for (;;) {
    size_t room;
    char* buf = state_hash.Space(&room);
    SA_ASSIGN_OR_RETURN(size_t n, state->Read(buf, room));
    if (n == 0) break;
    if (n > meta.size - got) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state source yields more than the ", meta.size,
          " bytes the snapshot metadata announces"));
    }
    got += n;
    SA_RETURN_IF_ERROR(gz->Write(absl::string_view(buf, n)));
    state_hash.Commit(n);
  }
  if (got != meta.size) {
    return absl::FailedPreconditionError(
        absl::StrCat("the state source ended after ", got, " of the ",
                     meta.size, " bytes the snapshot metadata announces"));
  }
  SA_RETURN_IF_ERROR(gz->Write(absl::string_view(kZeros, tar::PaddingFor(got))));
  info.state_sha256 = state_hash.Finish();

  std::string sums = absl::StrCat(HexLower(info.meta_sha256), "  ", kMetaFile,
                                  "\n", HexLower(info.state_sha256), "  ",
                                  kStateFile, "\n");
  SA_RETURN_IF_ERROR(WriteFile(gz.get(), kSumsFile, sums, mtime));
  SA_RETURN_IF_ERROR(gz->Write(absl::string_view(kZeros, sizeof(kZeros))));
  SA_RETURN_IF_ERROR(gz->Finish());

  info.archive_size = hashed_out.bytes();
  info.checksum = ChecksumString(hashed_out.Finish());
  return info;
}

}  // namespace snapshot
