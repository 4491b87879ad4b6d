#!/usr/bin/env bash
# Builds the archive reader's libFuzzer target (archive/fuzz/reader_fuzzer.cc)
# with Debian's clang and -fsanitize=fuzzer,address,undefined, seeds it from
# ../shared/interop, and runs it for SECONDS (default 60). Exit status 0 when
# nothing was found; otherwise libFuzzer's, with the crashing input saved in
# OUT_DIR (default: a temporary directory; printed).
#
#   tools/fuzz-archive.sh [SECONDS] [OUT_DIR]
#
# Needs: clang, libclang-rt-14-dev and the project's -dev packages
# (tools/install-deps.sh). Runs from a source tree or from Bazel runfiles.
set -euo pipefail
seconds="${1:-60}"
out="${2:-${TEST_UNDECLARED_OUTPUTS_DIR:-$(mktemp -d)}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
interop="${INTEROP_DIR:-$root/../shared/interop}"
[ -d "$interop" ] || interop="$root/external/shared/interop"
work="${TEST_TMPDIR:-$out}"  # the corpus and the binary (not kept by Bazel)
mkdir -p "$out" "$work/corpus"
cp "$interop"/*.snap "$interop"/*.tar "$work/corpus/" 2>/dev/null || true

srcs=(archive/fuzz/reader_fuzzer.cc archive/reader.cc archive/gzip.cc archive/tar.cc
      archive/meta.cc archive/writer.cc archive/parallel_gzip.cc base/io.cc base/sha256.cc
      base/deflate.cc)
# Bazel lays out runfiles as symlinks; clang only needs the paths.
cd "$root"
# shellcheck disable=SC2046
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I. "${srcs[@]}" -o "$work/reader_fuzzer" \
  $(pkg-config --cflags --libs absl_status absl_statusor absl_strings absl_str_format \
      absl_synchronization absl_time libcrypto zlib libdeflate) -lisal
echo "fuzz-archive: running for ${seconds}s; corpus in $work/corpus, findings in $out"
"$work/reader_fuzzer" "$work/corpus" -max_total_time="$seconds" -max_len=65536 \
  -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
  -artifact_prefix="$out/" 2>&1 | tail -n 25
exit "${PIPESTATUS[0]}"
