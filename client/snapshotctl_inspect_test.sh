#!/usr/bin/env bash
# snapshotctl inspect on Nomad's fixtures: metadata and JSON for a valid
# archive, a one-line error and the documented exit code for corrupt ones.
set -uo pipefail
ctl="$1"
dir=external/shared/interop
fails=0
check() {  # check DESCRIPTION CONDITION...
  local what="$1"; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}

out=$("$ctl" inspect "$dir/small.snap"); rc=$?
check "inspect small.snap exits 0" test "$rc" -eq 0
check "text shows the index" grep -q '^Index: *18$' <<<"$out"
check "text shows the term" grep -q '^Term: *2$' <<<"$out"
check "text shows the ID" grep -q '^ID: *2-18-1795640819402$' <<<"$out"
check "text shows the state size" grep -q '^State size: *1075 bytes$' <<<"$out"
check "text shows the server" grep -q 'server-f6fd9a54-bcd0-1005-4499-b547214104d3 at f6fd9a54-bcd0-1005-4499-b547214104d3 (voter)' <<<"$out"

json=$("$ctl" inspect --json "$dir/small.snap"); rc=$?
check "inspect --json exits 0" test "$rc" -eq 0
expected_sum="sha-256=$(openssl dgst -sha256 -binary "$dir/small.snap" | base64 -w0)"
check "--json has index, term, size, archive_size, checksum" /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.argv[1])
assert j["index"] == 18 and j["term"] == 2 and j["size"] == 1075, j
assert j["archive_size"] == 1667, j
assert j["checksum"] == sys.argv[2], (j["checksum"], sys.argv[2])
' "$json" "$expected_sum"

err=$("$ctl" inspect "$dir/small-bad-crc.snap" 2>&1 >/dev/null); rc=$?
check "corrupt archive exits 3" test "$rc" -eq 3
check "error is one line naming the fault" test "$(wc -l <<<"$err")" -eq 1
check "error says CRC mismatch" grep -q 'gzip CRC mismatch' <<<"$err"

"$ctl" inspect "$dir/small-meta-size-mismatch.snap" >/dev/null 2>&1; rc=$?
check "size mismatch is rejected with exit 3" test "$rc" -eq 3

"$ctl" inspect /nonexistent/file.snap >/dev/null 2>&1; rc=$?
check "missing file exits 8" test "$rc" -eq 8
"$ctl" inspect >/dev/null 2>&1; rc=$?
check "missing argument exits 2" test "$rc" -eq 2
"$ctl" frobnicate >/dev/null 2>&1; rc=$?
check "unknown command exits 2" test "$rc" -eq 2
help=$("$ctl" --help); rc=$?
check "--help exits 0 and explains inspect and exit codes" \
  bash -c '[ "$0" -eq 0 ] && grep -q "inspect FILE" <<<"$1" && grep -q "Exit codes" <<<"$1"' "$rc" "$help"

echo "$fails failed"
[ "$fails" -eq 0 ]
