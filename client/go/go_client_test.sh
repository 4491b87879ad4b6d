#!/usr/bin/env bash
# Generates Go stubs from the .proto with Debian's protoc-gen-go and
# protoc-gen-go-grpc, builds client/go offline in GOPATH mode against
# Debian's golang-google-grpc-dev and golang-google-protobuf-dev, starts a
# real agent and drives it: put, save, verify, change, restore, get; a corrupt
# archive is refused with DATA_LOSS and changes nothing.
set -euo pipefail
agent="$1"; proto="$2"; src="$(dirname "$3")"  # $3: client/go/snapshotclient/client.go
work="${TEST_TMPDIR:-$(mktemp -d)}/go"
gopath="$work/gopath"
mkdir -p "$gopath/src/snapshotagent/gen/snapshotv1" "$gopath/src/snapshotagent/snapshotclient" \
  "$gopath/src/snapshotagent/cmd/snapshot-go" "$work/cache"
root="$(dirname "$(dirname "$(dirname "$proto")")")"
protoc --proto_path="$root" \
  --go_out="$gopath/src/snapshotagent/gen/snapshotv1" --go_opt=paths=source_relative \
  --go_opt=Msnapshot/v1/snapshot.proto=snapshotagent/gen/snapshotv1 \
  --go-grpc_out="$gopath/src/snapshotagent/gen/snapshotv1" --go-grpc_opt=paths=source_relative \
  --go-grpc_opt=Msnapshot/v1/snapshot.proto=snapshotagent/gen/snapshotv1 \
  "$proto"
# paths=source_relative keeps snapshot/v1/: flatten into the package dir.
mv "$gopath/src/snapshotagent/gen/snapshotv1/snapshot/v1/"*.go "$gopath/src/snapshotagent/gen/snapshotv1/"
cp "$src/client.go" "$gopath/src/snapshotagent/snapshotclient/"
cp "$src/../cmd/snapshot-go/main.go" "$gopath/src/snapshotagent/cmd/snapshot-go/"
# Offline: GOPATH mode, Debian's Go packages under /usr/share/gocode.
HOME="$work" GO111MODULE=off GOPROXY=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$work/cache" \
  go build -o "$work/snapshot-go" snapshotagent/cmd/snapshot-go

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); raft=$(free_port)
"$agent" --data-dir="$work/data" --listen=127.0.0.1:$port --raft-address=127.0.0.1:$raft \
  --log-level=warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
g() { "$work/snapshot-go" -address 127.0.0.1:$port "$@"; }
for _ in $(seq 1 100); do g status >/dev/null 2>&1 && break; sleep 0.1; done

g put greeting hello
g save "$work/backup.snap"
test -f "$work/backup.snap"
test ! -e "$work/backup.snap.part"
gzip -t "$work/backup.snap"
g verify "$work/backup.snap"
g put greeting changed
test "$(g get greeting)" = changed
g restore "$work/backup.snap"
test "$(g get greeting)" = hello
head -c 100 "$work/backup.snap" > "$work/bad.snap"
set +e; g restore "$work/bad.snap" 2>"$work/err"; rc=$?; set -e
test "$rc" -eq 3 || { echo "expected exit 3, got $rc"; cat "$work/err"; exit 1; }
grep -q DATA_LOSS "$work/err"
test "$(g get greeting)" = hello
echo "go client: all checks passed"
