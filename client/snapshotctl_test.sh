#!/usr/bin/env bash
# snapshotctl against live agents: every command, --json output, the
# documented exit codes, the progress line only on a terminal, restore's
# confirmation, pipes, the environment, Ctrl-C.
set -uo pipefail
ctl="$1"; agent="$2"; make_archive="$3"
dir=external/shared/interop
work="${TEST_TMPDIR:-$(mktemp -d)}/ctl"
mkdir -p "$work"
fails=0
check() {  # check DESCRIPTION COMMAND...
  local what="$1"; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null' EXIT
start_agent() {  # start_agent NAME EXTRA_FLAGS... ; sets ADDR
  local name="$1"; shift
  local port raft
  port=$(free_port); raft=$(free_port)
  "$agent" --data-dir="$work/agent-$name" --listen=127.0.0.1:$port --raft-address=127.0.0.1:$raft \
    --log-level=warning "$@" >/dev/null 2>>"$work/agents.log" &
  pids+=($!)
  ADDR="127.0.0.1:$port"
}
wait_up() {  # wait_up ADDRESS [FLAGS...]: until the last agent started answers
  for _ in $(seq 1 100); do
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/agents.log"; return 1; }
    "$ctl" status --address="$1" "${@:2}" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

start_agent plain; A=$ADDR
check "agent is up" wait_up "$A"
export SNAPSHOTCTL_ADDRESS=$A

"$ctl" kv put user/1 alice && "$ctl" kv put user/2 bob
check "kv get" test "$("$ctl" kv get user/1)" = alice
check "kv list" test "$("$ctl" kv list user/ | wc -l)" -eq 2
json=$("$ctl" save "$work/a.snap" --json 2>"$work/save.err"); rc=$?
check "save exits 0" test $rc -eq 0
check "save prints nothing on stderr without a terminal" test ! -s "$work/save.err"
check "save --json has index, term, size, archive_size, checksum" /usr/bin/python3 -c '
import json, sys, base64, hashlib
j = json.loads(sys.argv[1])
for k in ("index", "term", "size", "archive_size", "checksum"): assert k in j, k
data = open(sys.argv[2], "rb").read()
assert j["archive_size"] == len(data)
assert j["checksum"] == "sha-256=" + base64.b64encode(hashlib.sha256(data).digest()).decode()
' "$json" "$work/a.snap"
check "no .part left" test ! -e "$work/a.snap.part"
"$ctl" save "$work/a.snap" >/dev/null 2>&1; rc=$?
check "save over an existing file exits 8" test $rc -eq 8
check "verify --json" bash -c '"$0" verify "$1" --json | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); assert j[\"valid\"] and j[\"size\"] > 0"' "$ctl" "$work/a.snap"
"$ctl" verify "$dir/small-bad-crc.snap" >/dev/null 2>"$work/err"; rc=$?
check "verify of a corrupt archive exits 3" test $rc -eq 3
check "its error is one line" test "$(wc -l < "$work/err")" -eq 1
"$ctl" verify "$work/missing.snap" >/dev/null 2>&1; rc=$?
check "verify of a missing file exits 8" test $rc -eq 8

check "save --level=fast" "$ctl" save "$work/fast.snap" --level=fast
check "a fast archive passes gzip -t" gzip -t "$work/fast.snap"
check "and tar t" test "$(gzip -dc "$work/fast.snap" | tar tf - | tr '\n' ' ')" = "meta.json state.bin SHA256SUMS "
check "and verify" "$ctl" verify "$work/fast.snap"
"$ctl" save "$work/bad-level.snap" --level=fastest >/dev/null 2>"$work/err"; rc=$?
check "save --level=fastest exits 2" test $rc -eq 2
check "and names the choices" grep -q "0 to 9 or fast" "$work/err"
"$ctl" kv put user/1 mallory >/dev/null
"$ctl" restore "$work/a.snap" </dev/null >/dev/null 2>"$work/err"; rc=$?
check "restore without a terminal and without --yes exits 2" test $rc -eq 2
check "and changes nothing" test "$("$ctl" kv get user/1)" = mallory
check "restore --yes" "$ctl" restore --yes "$work/a.snap"
check "old data is back" test "$("$ctl" kv get user/1)" = alice
"$ctl" restore --yes "$dir/small.snap" >/dev/null 2>&1; rc=$?
check "restore of a Nomad archive exits 6 (not this engine's state)" test $rc -eq 6

# The catalog: create, list, fetch (and resume), restore by id, undo, delete.
"$ctl" kv put cat/k before >/dev/null
id=$("$ctl" create --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
check "create prints the new entry's id" test -n "$id"
check "list shows it" bash -c '"$0" list | grep -q "$1"' "$ctl" "$id"
check "list --json" bash -c '"$0" list --json | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); assert j[\"snapshots\"][0][\"origin\"] == \"on-demand\""' "$ctl"
check "fetch" "$ctl" fetch "$id" "$work/fetched.snap"
check "the fetched archive inspects" "$ctl" inspect "$work/fetched.snap"
head -c 300 "$work/fetched.snap" > "$work/again.snap.part"
check "fetch --resume continues a part" "$ctl" fetch "$id" "$work/again.snap" --resume
check "to the same bytes" cmp "$work/fetched.snap" "$work/again.snap"
"$ctl" kv put cat/k after >/dev/null
out=$("$ctl" restore --id="$id" --yes)
check "restore --id" test "$("$ctl" kv get cat/k)" = before
undo=$(sed -n 's/.*to undo: snapshotctl restore --id=//p' <<<"$out")
check "restore names its safety snapshot" test -n "$undo"
check "which undoes it" "$ctl" restore --id="$undo" --yes
check "the state is back" test "$("$ctl" kv get cat/k)" = after
check "delete" "$ctl" delete "$id"
"$ctl" delete "$id" >/dev/null 2>&1; rc=$?
check "deleting it again exits 10 (no such snapshot)" test $rc -eq 10
"$ctl" fetch "$undo" "$work/fetched.snap" >/dev/null 2>&1; rc=$?
check "fetch onto an existing FILE exits 8" test $rc -eq 8
check "status --json" bash -c '"$0" status --json | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); assert j[\"role\"] == \"leader\""' "$ctl"

# age, both directions with Debian's age: what save encrypts opens with
# `age -d`, what `age -r` encrypts restores through snapshotctl.
age-keygen -o "$work/age.key" 2>/dev/null
age-keygen -y "$work/age.key" > "$work/age.pub"
"$ctl" kv put enc/k one >/dev/null
check "save --encrypt-to" "$ctl" save --encrypt-to="$work/age.pub" "$work/enc.snap.age"
check "is an age file" bash -c 'head -c 22 "$0" | grep -q "age-encryption.org/v1"' "$work/enc.snap.age"
check "that Debian's age opens into the archive" test "$(age -d -i "$work/age.key" "$work/enc.snap.age" | tar tzf - | tr '\n' ' ')" = "meta.json state.bin SHA256SUMS "
check "inspect --identity" "$ctl" inspect --identity="$work/age.key" "$work/enc.snap.age"
"$ctl" inspect "$work/enc.snap.age" >/dev/null 2>"$work/err"; rc=$?
check "inspect without a key exits 2" test $rc -eq 2
check "and asks for --identity" grep -q -- "--identity" "$work/err"
"$ctl" kv put enc/k two >/dev/null
check "restore --identity of what save encrypted" "$ctl" restore --yes --identity="$work/age.key" "$work/enc.snap.age"
check "brings it back" test "$("$ctl" kv get enc/k)" = one
"$ctl" save "$work/plain.snap" >/dev/null
age -R "$work/age.pub" -o "$work/by-age.snap.age" "$work/plain.snap"
"$ctl" kv put enc/k three >/dev/null
check "verify --identity of what age encrypted" "$ctl" verify --identity="$work/age.key" "$work/by-age.snap.age"
check "restore of it" "$ctl" restore --yes --identity="$work/age.key" - < "$work/by-age.snap.age"
check "brings it back" test "$("$ctl" kv get enc/k)" = one
"$ctl" kv put enc/k four >/dev/null
size=$(stat -c %s "$work/by-age.snap.age")
head -c $((size - 5)) "$work/by-age.snap.age" > "$work/cut.snap.age"
"$ctl" restore --yes --identity="$work/age.key" "$work/cut.snap.age" >/dev/null 2>"$work/err"; rc=$?
check "a truncated encrypted file exits 3" test $rc -eq 3
check "and applies nothing" test "$("$ctl" kv get enc/k)" = four
age-keygen -o "$work/other.key" 2>/dev/null
"$ctl" verify --identity="$work/other.key" "$work/by-age.snap.age" >/dev/null 2>"$work/err"; rc=$?
check "the wrong key exits 6" test $rc -eq 6
check "and says so" grep -q "identit" "$work/err"
printf 'correct horse battery\n' > "$work/pass"; chmod 600 "$work/pass"
check "save --passphrase-file" "$ctl" save --passphrase-file="$work/pass" "$work/pass.snap.age"
check "inspect --passphrase-file" "$ctl" inspect --passphrase-file="$work/pass" "$work/pass.snap.age"
chmod 644 "$work/age.key"
"$ctl" inspect --identity="$work/age.key" "$work/enc.snap.age" >/dev/null 2>"$work/err"; rc=$?
check "an identity readable by others is refused" grep -q "chmod 600" "$work/err"
chmod 600 "$work/age.key"

# A follower's agent: the commands that need the leader's agent follow to it
# once, saying so on stderr; --no-follow refuses (exit 6, naming the leader).
r1=$(free_port); r2=$(free_port); r3=$(free_port); g1=$(free_port); g2=$(free_port); g3=$(free_port)
peers="1=127.0.0.1:$r1@127.0.0.1:$g1,2=127.0.0.1:$r2@127.0.0.1:$g2,3=127.0.0.1:$r3@127.0.0.1:$g3"
for i in 1 2 3; do
  eval "rp=\$r$i; gp=\$g$i"
  "$agent" --data-dir="$work/cluster-$i" --raft-id=$i --raft-address=127.0.0.1:$rp \
    --listen=127.0.0.1:$gp --peers="$peers" --log-level=warning >/dev/null 2>>"$work/agents.log" &
  pids+=($!)
done
leader=""
for _ in $(seq 1 100); do
  for gp in $g1 $g2 $g3; do
    role=$("$ctl" status --json --address=127.0.0.1:$gp 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])' 2>/dev/null)
    [ "$role" = leader ] && leader=127.0.0.1:$gp
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
check "the cluster elected a leader" test -n "$leader"
follower=127.0.0.1:$g1; [ "$follower" = "$leader" ] && follower=127.0.0.1:$g2
"$ctl" --address="$follower" kv put follow/k yes >/dev/null 2>"$work/follow.err"; rc=$?
check "kv put through a follower's agent reaches the leader" test $rc -eq 0
check "and says so" grep -q "following to the leader's agent at $leader" "$work/follow.err"
check "save through a follower's agent" "$ctl" --address="$follower" save "$work/followed.snap"
check "is the leader's state" "$ctl" inspect "$work/followed.snap"
"$ctl" --address="$follower" --no-follow save "$work/stay.snap" >/dev/null 2>"$work/err"; rc=$?
check "--no-follow on a follower exits 6" test $rc -eq 6
check "naming the leader's agent" grep -q "$leader" "$work/err"

# Progress only on a terminal (script(1) gives the command a pseudo-terminal).
script -qec "$ctl save $work/tty.snap" /dev/null > "$work/tty.out" 2>&1
check "a terminal gets a progress line" grep -q "MiB" "$work/tty.out"

"$ctl" status --address=127.0.0.1:1 >/dev/null 2>&1; rc=$?
check "unreachable agent exits 4" test $rc -eq 4

# Tokens: read role may save, not restore.
printf 'read reader-token-0123456789\nadmin admin-token-0123456789\n' > "$work/tokens"
chmod 600 "$work/tokens"
echo reader-token-0123456789 > "$work/read.token"
start_agent tokens --token-file="$work/tokens"; B=$ADDR
echo admin-token-0123456789 > "$work/admin.token"
check "token agent is up" wait_up "$B" --token-file="$work/read.token"
"$ctl" status --address="$B" >/dev/null 2>&1; rc=$?
check "no token exits 5" test $rc -eq 5
check "read token may save" "$ctl" save --address="$B" --token-file="$work/read.token" "$work/b.snap"
"$ctl" restore --yes --address="$B" --token-file="$work/read.token" "$work/b.snap" >/dev/null 2>&1; rc=$?
check "read token may not restore: exits 5" test $rc -eq 5
check "admin token may restore" "$ctl" restore --yes --address="$B" --token-file="$work/admin.token" "$work/b.snap"

# Limits: a state over the agent's limit exits 7, and the agent does not take
# a snapshot its own verify would refuse (nor store a file for it).
start_agent small --max-state-bytes=100000; C=$ADDR
check "limited agent is up" wait_up "$C"
"$ctl" verify --address="$C" "$dir/medium.snap" >/dev/null 2>&1; rc=$?
check "state over the limit exits 7" test $rc -eq 7
"$ctl" kv put --address="$C" big "$(head -c 120000 /dev/zero | tr '\0' x)" >/dev/null
out=$("$ctl" save --address="$C" "$work/too-big.snap" 2>&1); rc=$?
check "a take over the limit exits 7" test $rc -eq 7
check "it says which limit" grep -q -- "--max-state-bytes" <<<"$out"
check "and leaves no file" test ! -e "$work/too-big.snap" -a ! -e "$work/too-big.snap.part"
# Limits that disagree stop the agent at start-up.
out=$("$agent" --data-dir="$work/agent-bad" --max-state-bytes=1000000 --max-archive-bytes=1000 2>&1); rc=$?
check "an archive limit below the state limit is refused at start-up" test $rc -eq 2
check "naming both flags" grep -q -- "--max-archive-bytes=1000 cannot hold" <<<"$out"

# --json never fails on bytes that are not UTF-8: they come as base64.
"$ctl" kv put bin $'\xff\xfe' >/dev/null
out=$("$ctl" kv get bin --json); rc=$?
check "kv get --json of binary exits 0" test $rc -eq 0
check "and gives value_base64" /usr/bin/python3 -c '
import json, sys; j = json.loads(sys.argv[1]); assert j["value_base64"] == "//4=", j' "$out"
out=$("$ctl" kv list --json); rc=$?
check "kv list --json of binary is valid JSON" /usr/bin/python3 -c '
import json, sys; j = json.loads(sys.argv[1]); assert any(e.get("value_base64") == "//4=" for e in j), j' "$out"

# Pipes: save to stdout, verify and restore from stdin.
"$ctl" save - > "$work/piped.snap" 2>"$work/err"; rc=$?
check "save - exits 0" test $rc -eq 0
check "save - writes an archive to stdout" "$ctl" inspect "$work/piped.snap"
check "save - reports on stderr" grep -q "Saved to standard output" "$work/err"
check "no file named -" test ! -e ./- -a ! -e ./-.part
check "verify - reads stdin" bash -c 'cat "$1" | "$0" verify - >/dev/null' "$ctl" "$work/piped.snap"
"$ctl" kv put user/1 changed >/dev/null
"$ctl" restore - < "$work/piped.snap" >/dev/null 2>&1; rc=$?
check "restore - without --yes exits 2" test $rc -eq 2
head -c 300 "$work/piped.snap" | "$ctl" restore --yes - >/dev/null 2>"$work/err"; rc=$?
check "restore - of a truncated stream exits 3" test $rc -eq 3
check "and changes nothing" test "$("$ctl" kv get user/1)" = changed
check "restore --yes - from stdin" bash -c '"$0" restore --yes - < "$1" >/dev/null' "$ctl" "$work/piped.snap"
check "its data is back" test "$("$ctl" kv get user/1)" = alice
"$ctl" save - > /dev/full 2>"$work/err"; rc=$?
check "save - to a full disk exits 8" test $rc -eq 8
"$ctl" save /sys/not-writable.snap >/dev/null 2>"$work/err"; rc=$?
check "save where the client may not write exits 8 (not 5)" test $rc -eq 8

# Settings from the environment and global flags before the command.
check "token from SNAPSHOTCTL_TOKEN_FILE" env SNAPSHOTCTL_TOKEN_FILE="$work/read.token" "$ctl" status --address="$B"
check "global flags before the command" "$ctl" --address="$B" --token-file="$work/read.token" status
out=$("$ctl" save --help); rc=$?
check "per-command help" bash -c '[ "$0" -eq 0 ] && grep -q "snapshotctl save FILE" <<<"$1"' "$rc" "$out"
check "help restore" bash -c '"$0" help restore | grep -q "snapshotctl restore FILE"' "$ctl"
check "version" bash -c '"$0" version | grep -q "^snapshotctl 0\.[0-9]*\.[0-9]* (git "' "$ctl"
check "--version" bash -c '"$0" --version | grep -q "^snapshotctl 0\."' "$ctl"

# The progress line is cleared before the result line, and says what its
# percentage is of.
script -qec "$ctl save $work/tty2.snap" /dev/null > "$work/tty2.out" 2>&1
check "progress shows the share of the state" grep -q "% of the state" "$work/tty2.out"
check "progress is cleared before the result" grep -q $'\033\[KSaved' "$work/tty2.out"

# TLS: a failed handshake says so at once, in one line, exit 9.
bash -c 'cd "$0" && openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null && chmod 600 k.pem && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 1 -subj /CN=other 2>/dev/null' "$work"
start_agent tls --tls-cert="$work/c.pem" --tls-key="$work/k.pem"; T=$ADDR
check "TLS agent is up" wait_up "$T" --ca="$work/c.pem"
start=$(date +%s%N)
"$ctl" status --address="$T" --ca="$work/other.pem" >/dev/null 2>"$work/err"; rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "wrong CA exits 9" test $rc -eq 9
check "the message names the TLS failure" grep -q "TLS handshake with the agent at $T failed: .*certificate verify failed" "$work/err"
check "in one line, no gRPC log lines" test "$(wc -l < "$work/err")" -eq 1
check "without retrying for seconds ($elapsed_ms ms)" test $elapsed_ms -lt 4000

# Ctrl-C during save removes FILE.part and exits 130.
"$make_archive" "$work/big.snap" 100 || echo "FAIL make_archive"
start_agent big --compress-threads=1; D=$ADDR
check "big agent is up" wait_up "$D"
check "restore a 100 MiB state" "$ctl" restore --yes --address="$D" "$work/big.snap"
# About 1600 values of 64 KiB: a hundred pages of the agent's List.
entries=$("$ctl" inspect --json "$work/big.snap" | /usr/bin/python3 -c 'import json,sys; print((json.load(sys.stdin)["size"] - 16) // (8 + 14 + 65536))')
count() { /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
check "kv list follows every page ($entries entries)" test "$("$ctl" kv list --json --address="$D" key/ | count)" -eq "$entries"
check "kv list --limit stops early" test "$("$ctl" kv list --json --address="$D" --limit=1500 key/ | count)" -eq 1500
set -m  # job control: a background job must not ignore SIGINT
"$ctl" save --address="$D" --level=9 "$work/int.snap" 2>"$work/int.err" &
spid=$!
for _ in $(seq 1 200); do [ -s "$work/int.snap.part" ] && break; sleep 0.02; done
check "save in progress writes int.snap.part" test -s "$work/int.snap.part"
kill -INT $spid; wait $spid; rc=$?
set +m
check "Ctrl-C exits 130" test $rc -eq 130
check "and says it removed the .part" grep -q "interrupted; removed .*int.snap.part" "$work/int.err"
check "no int.snap.part left" test ! -e "$work/int.snap.part"
check "no int.snap" test ! -e "$work/int.snap"

"$ctl" bogus >/dev/null 2>&1; rc=$?
check "unknown command exits 2" test $rc -eq 2
"$ctl" save >/dev/null 2>&1; rc=$?
check "missing argument exits 2" test $rc -eq 2

echo "$fails failed"
[ "$fails" -eq 0 ]
