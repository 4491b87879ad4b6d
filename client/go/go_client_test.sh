#!/usr/bin/env bash
# Generates Go stubs from the .proto with Debian's protoc-gen-go and
# protoc-gen-go-grpc, builds client/go offline in GOPATH mode against
# Debian's golang-google-grpc-dev and golang-google-protobuf-dev, and drives a
# real agent through the scenario of client/example_client_scenario.sh.
set -euo pipefail
agent="$1"; proto="$2"; src="$(dirname "$3")"; scenario="$4"  # $3: client/go/snapshotclient/client.go
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

client_at() { "$work/snapshot-go" -address "$1" "${@:2}"; }
. "$scenario"
echo "go client: all checks passed"
