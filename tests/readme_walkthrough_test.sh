#!/usr/bin/env bash
# Runs exactly the walkthrough of README.md (the sh block between the
# walkthrough markers) in an empty directory, with the built programs on the
# PATH, and checks what it promises: every command succeeds and the restored
# data is the old data.
set -euo pipefail
readme="$(readlink -f "$1")"; agent="$(readlink -f "$2")"; ctl="$(readlink -f "$3")"
work="${TEST_TMPDIR:-$(mktemp -d)}/walkthrough"
mkdir -p "$work/bin" && cd "$work"
ln -sf "$agent" bin/snapshot-agent
ln -sf "$ctl" bin/snapshotctl
export PATH="$work/bin:$PATH"
awk '/<!-- walkthrough:start -->/{on=1; next} /<!-- walkthrough:end -->/{on=0} on && !/^```/' \
  "$readme" > walkthrough.sh
echo "--- walkthrough.sh"; cat walkthrough.sh; echo "---"
test "$(wc -l < walkthrough.sh)" -ge 10
bash -euo pipefail walkthrough.sh > out.txt 2> err.txt || { cat out.txt err.txt agent.log; exit 1; }
wait 2>/dev/null || true
cat out.txt
test -f backup.snap
test ! -e backup.snap.part
# The last two lines are the two `kv get`s after the restore.
test "$(tail -n 2 out.txt)" = "$(printf 'alice\nbob')"
grep -q "is a valid snapshot archive" out.txt
grep -q "^Restored backup.snap" out.txt
# The agent stopped cleanly on SIGTERM.
for _ in $(seq 1 100); do grep -q "msg=stopped" agent.log && break; sleep 0.1; done
grep -q "msg=stopped" agent.log
echo "walkthrough: ok"
