#!/usr/bin/env bash
# Runs archive_bench on 4 MiB and checks that it printed every figure.
set -euo pipefail
out=$("$1" --size_mib=4 --dir="${TEST_TMPDIR:-/tmp}")
echo "$out"
for row in "write (snapshot-agent, zlib x1)" "write (snapshot-agent, libdeflate" "verify (snapshot-agent)" "gzip -6" "peak RSS"; do
  grep -qF "$row" <<<"$out" || { echo "missing row: $row"; exit 1; }
done
