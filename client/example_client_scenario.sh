# The scenario every example client (client/python, client/go) passes against
# a live agent, sourced by its test after it defined `client ARGS...` (the
# client's command line, given --address/-address by `client_at`). Needs
# $agent (the snapshot-agent binary) and $work (a scratch directory): starts
# the agent, then put, save, verify, change, restore, get; a corrupt archive
# is refused with DATA_LOSS (exit 3) and changes nothing.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); raft=$(free_port)
"$agent" --data-dir="$work/data" --listen=127.0.0.1:$port --raft-address=127.0.0.1:$raft \
  --log-level=warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
c() { client_at "127.0.0.1:$port" "$@"; }
for _ in $(seq 1 100); do c status >/dev/null 2>&1 && break; sleep 0.1; done

c put greeting hello
c save "$work/backup.snap"
test -f "$work/backup.snap"
test ! -e "$work/backup.snap.part"
gzip -t "$work/backup.snap"
c verify "$work/backup.snap"
c put greeting changed
test "$(c get greeting)" = changed
c restore "$work/backup.snap"
test "$(c get greeting)" = hello
head -c 100 "$work/backup.snap" > "$work/bad.snap"
set +e; c restore "$work/bad.snap" 2>"$work/err"; rc=$?; set -e
test "$rc" -eq 3 || { echo "expected exit 3, got $rc"; cat "$work/err"; exit 1; }
grep -q DATA_LOSS "$work/err"
test "$(c get greeting)" = hello
