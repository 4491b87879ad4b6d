#!/usr/bin/env bash
# Generates Python stubs from the .proto with protoc and grpc_python_plugin,
# starts a real agent, and drives it from /usr/bin/python3: put, save,
# verify, change, restore, and check the data through the key-value service.
set -euo pipefail
agent="$1"; proto="$2"; client="$3"
work="${TEST_TMPDIR:-$(mktemp -d)}/py"
mkdir -p "$work/gen"
protoc --proto_path="$(dirname "$(dirname "$(dirname "$proto")")")" \
  --python_out="$work/gen" --grpc_out="$work/gen" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" "$proto"
touch "$work/gen/snapshot/__init__.py" "$work/gen/snapshot/v1/__init__.py"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); raft=$(free_port)
"$agent" --data-dir="$work/data" --listen=127.0.0.1:$port --raft-address=127.0.0.1:$raft \
  --log-level=warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
py() { PYTHONPATH="$work/gen" /usr/bin/python3 "$client" --address 127.0.0.1:$port "$@"; }
for _ in $(seq 1 100); do py status >/dev/null 2>&1 && break; sleep 0.1; done

py put greeting hello
py save "$work/backup.snap"
test -f "$work/backup.snap"
test ! -e "$work/backup.snap.part"
py verify "$work/backup.snap"
py put greeting changed
test "$(py get greeting)" = changed
py restore "$work/backup.snap"
test "$(py get greeting)" = hello
# A corrupt archive is refused with DATA_LOSS (exit 3) and changes nothing.
head -c 100 "$work/backup.snap" > "$work/bad.snap"
set +e; py restore "$work/bad.snap" 2>"$work/err"; rc=$?; set -e
test "$rc" -eq 3 || { echo "expected exit 3, got $rc"; cat "$work/err"; exit 1; }
grep -q DATA_LOSS "$work/err"
test "$(py get greeting)" = hello
echo "python client: all checks passed"
