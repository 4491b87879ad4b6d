#!/usr/bin/env bash
# Makes development TLS certificates with openssl: a CA, a server certificate
# for the given names/addresses, and a client certificate for mutual TLS.
#
#   deploy/make-dev-certs.sh OUT_DIR [SERVER_NAME_OR_IP ...]
#
# Defaults to localhost and 127.0.0.1. For development and tests only: the CA
# key is left unencrypted in OUT_DIR.
set -euo pipefail
out="${1:?usage: make-dev-certs.sh OUT_DIR [NAME_OR_IP ...]}"; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
mkdir -p "$out"; cd "$out"
san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$|: ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san="${san%,}"
openssl req -x509 -newkey rsa:3072 -nodes -days 365 -subj "/CN=snapshot-agent dev CA" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=${names[0]}" \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile server.ext -out server.crt 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=snapshotctl" \
  -keyout client.key -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile client.ext -out client.crt 2>/dev/null
rm -f server.csr client.csr server.ext client.ext ca.srl
chmod 600 ./*.key
echo "made ca.crt, server.crt/key ($san), client.crt/key in $out"
