#!/usr/bin/env bash
# Generates Python stubs from the .proto with protoc and grpc_python_plugin,
# and drives a real agent from /usr/bin/python3 through the scenario of
# client/example_client_scenario.sh.
set -euo pipefail
agent="$1"; proto="$2"; client="$3"; scenario="$4"
work="${TEST_TMPDIR:-$(mktemp -d)}/py"
mkdir -p "$work/gen"
protoc --proto_path="$(dirname "$(dirname "$(dirname "$proto")")")" \
  --python_out="$work/gen" --grpc_out="$work/gen" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" "$proto"
touch "$work/gen/snapshot/__init__.py" "$work/gen/snapshot/v1/__init__.py"

client_at() { PYTHONPATH="$work/gen" /usr/bin/python3 "$client" --address "$1" "${@:2}"; }
. "$scenario"
echo "python client: all checks passed"
