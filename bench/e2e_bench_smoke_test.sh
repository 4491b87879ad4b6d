#!/usr/bin/env bash
# Runs e2e_bench on 8 MiB and two nodes, and checks that it printed every row.
set -euo pipefail
out=$("$1" --agent="$2" --size_mib=8 --nodes=2 --dir="${TEST_TMPDIR:-/tmp}")
echo "$out"
for row in "gzip -6" "pigz -p 2 -6" "gzip -d" "Restore, one node" "Take, level 6 (default" \
           "Take, fast" "Verify over gRPC" "Verify offline" "Restore, 2 nodes (first)" "Restore, 2 nodes, replacing" "after 4 restores" \
           "with the safety snapshot"; do
  grep -qF "$row" <<<"$out" || { echo "missing row: $row"; exit 1; }
done
