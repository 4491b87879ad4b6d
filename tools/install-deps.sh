#!/usr/bin/env bash
# Installs every Debian 12 package snapshot-agent needs to build, test and run.
# Idempotent: when everything is already installed it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
  # Build system (offline Bazel 4 from Debian) and its local repositories.
  bazel-bootstrap bazel-platforms bazel-rules-java openjdk-17-jdk-headless
  g++ pkg-config
  # Libraries.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev zlib1g-dev libdeflate-dev libisal-dev libssl-dev nlohmann-json3-dev
  libraft-dev libuv1-dev liblz4-dev libsystemd-dev prometheus-cpp-dev
  # The remote store: HTTP(S) with libcurl (OpenSSL flavour), S3's XML with expat.
  libcurl4-openssl-dev libexpat1-dev
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  gzip pigz openssl util-linux systemd
  # The etcd engine's tests: real etcd members and etcdctl (3.4).
  etcd-server etcd-client
  # The fuzz targets (tools/fuzz.sh).
  clang libclang-rt-14-dev
  # Interoperability of the age encryption with the reference tool.
  age
  # A real S3 server for the remote store's tests (tools/rgw.sh: Ceph RGW on
  # loopback), and awscli as the benchmark's baseline.
  ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl awscli
  python3-grpcio python3-protobuf python3-yaml
  # The Go example client (client/go), built offline against Debian's Go packages
  # (grpc-go 1.33 marshals through github.com/golang/protobuf: 1.5, which
  # understands the messages protoc-gen-go 1.28 generates; 1.3 panics on them).
  golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
