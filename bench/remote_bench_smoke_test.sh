#!/usr/bin/env bash
# Runs remote_bench on 8 MiB, one round, and checks that it printed every row.
set -euo pipefail
out=$("$1" --agent="$2" --size_mib=8 --rounds=1 --dir="${TEST_TMPDIR:-/tmp}")
echo "$out"
for row in "aws s3 cp (baseline)" "agent upload (4 parts" "age-encrypted" "snapshot end to end"; do
  grep -qF "$row" <<<"$out" || { echo "missing row: $row"; exit 1; }
done
