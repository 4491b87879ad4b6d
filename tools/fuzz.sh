#!/usr/bin/env bash
# Builds one of the project's libFuzzer targets with Debian's clang and
# -fsanitize=fuzzer,address,undefined, seeds it, and runs it for SECONDS
# (default 60). Exit status 0 when nothing was found; otherwise libFuzzer's,
# with the crashing input saved in OUT_DIR (default: a temporary directory;
# printed).
#
#   tools/fuzz.sh TARGET [SECONDS] [OUT_DIR]
#
# TARGET: archive (archive/fuzz/reader_fuzzer.cc, seeded from
# ../shared/interop), age (age/fuzz/decrypt_fuzzer.cc, seeded with files
# Debian's `age` encrypts to the fuzzer's key), xml (store/fuzz/xml_fuzzer.cc,
# seeded with S3 answers) or etcd (etcd/fuzz/snapshot_stream_fuzzer.cc: etcd's
# Maintenance.Snapshot messages into the archive writer).
#
# Needs: clang, libclang-rt-14-dev and the project's -dev packages
# (tools/install-deps.sh). Runs from a source tree or from Bazel runfiles.
set -euo pipefail
target="${1:?usage: tools/fuzz.sh archive|age|xml|etcd [SECONDS] [OUT_DIR]}"
seconds="${2:-60}"
out="${3:-${TEST_UNDECLARED_OUTPUTS_DIR:-$(mktemp -d)}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${TEST_TMPDIR:-$out}"  # the corpus and the binary (not kept by Bazel)
mkdir -p "$out" "$work/corpus"
base_srcs=(base/io.cc base/env.cc base/sha256.cc base/thread_name.cc base/pipeline_sink.cc)
libs=()
case "$target" in
  archive)
    interop="${INTEROP_DIR:-$root/../shared/interop}"
    [ -d "$interop" ] || interop="$root/external/shared/interop"
    cp "$interop"/*.snap "$interop"/*.tar "$work/corpus/" 2>/dev/null || true
    srcs=(archive/fuzz/reader_fuzzer.cc archive/reader.cc archive/gzip.cc archive/tar.cc
          archive/meta.cc archive/writer.cc archive/parallel_gzip.cc base/deflate.cc)
    max_len=65536
    ;;
  age)
    # The fuzzer's identity is the age spec's example key (32 bytes of 0x42).
    recipient=age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj
    for n in 0 100 70000; do
      head -c "$n" /dev/urandom > "$work/plain"
      age -r "$recipient" -o "$work/corpus/seed-$n.age" "$work/plain"
    done
    srcs=(age/fuzz/decrypt_fuzzer.cc age/age.cc age/bech32.cc)
    max_len=200000
    ;;
  xml)
    printf '%s' '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Contents><Key>p/a.snap</Key><Size>12</Size><ETag>"x"</ETag></Contents><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken></ListBucketResult>' > "$work/corpus/list.xml"
    printf '%s' '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>m</Message></Error>' > "$work/corpus/error.xml"
    printf '%s' '<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u</UploadId><Initiated>2026-12-06T00:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>' > "$work/corpus/uploads.xml"
    printf '%s' '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>' > "$work/corpus/doctype.xml"
    srcs=(store/fuzz/xml_fuzzer.cc store/s3/xml.cc)
    libs=(expat)
    max_len=65536
    ;;
  etcd)
    # One whole stream: a 16-byte database in two messages, then its SHA-256.
    /usr/bin/python3 - "$work/corpus/whole" <<'PY'
import hashlib, struct, sys
db = b"0123456789abcdef"
msg = lambda remaining, blob: struct.pack("<QH", remaining, len(blob)) + blob
open(sys.argv[1], "wb").write(msg(6, db[:10]) + msg(0, db[10:]) + msg(0, hashlib.sha256(db).digest()))
PY
    srcs=(etcd/fuzz/snapshot_stream_fuzzer.cc etcd/snapshot_stream.cc archive/reader.cc
          archive/gzip.cc archive/tar.cc archive/meta.cc archive/writer.cc
          archive/parallel_gzip.cc base/deflate.cc)
    max_len=65536
    ;;
  *) echo "fuzz: unknown target $target (archive, age, xml or etcd)" >&2; exit 2 ;;
esac

# Bazel lays out runfiles as symlinks; clang only needs the paths.
cd "$root"
# shellcheck disable=SC2046
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I. "${srcs[@]}" "${base_srcs[@]}" -o "$work/fuzzer" \
  $(pkg-config --cflags --libs absl_status absl_statusor absl_strings absl_str_format \
      absl_synchronization absl_time libcrypto zlib libdeflate "${libs[@]}") -lisal
echo "fuzz $target: running for ${seconds}s; corpus in $work/corpus, findings in $out"
"$work/fuzzer" "$work/corpus" -max_total_time="$seconds" -max_len="$max_len" \
  -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
  -artifact_prefix="$out/" 2>&1 | tail -n 25
exit "${PIPESTATUS[0]}"
