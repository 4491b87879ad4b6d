#!/usr/bin/env bash
# Runs raft_snapshot_bench on 20,000 keys and checks that it printed every figure.
set -euo pipefail
out=$("$1" --keys=20000)
echo "$out"
for row in "view capture" "Snapshot() call" "serializing the view" "while snapshotting" "idle" "serialized on the loop"; do
  grep -qF "$row" <<<"$out" || { echo "missing row: $row"; exit 1; }
done
