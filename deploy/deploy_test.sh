#!/usr/bin/env bash
# Checks of deploy/: the systemd units pass `systemd-analyze verify` (with the
# ExecStart binaries pointed at the built ones), the Kubernetes example is
# valid YAML with the probe and secrets in place, the container recipe
# installs through tools/install-deps.sh, and make-dev-certs.sh makes
# certificates that verify against its CA.
set -euo pipefail
agent="$1"; ctl="$2"; deploy="$(dirname "$0")"
work="${TEST_TMPDIR:-$(mktemp -d)}/deploy"
mkdir -p "$work/units"
fails=0
check() { local what="$1"; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails+1)); fi; }

for u in snapshot-agent.service snapshot-backup.service snapshot-backup.timer; do
  sed -e "s|/usr/local/bin/snapshot-agent|$(readlink -f "$agent")|" \
      -e "s|/usr/local/bin/snapshotctl|$(readlink -f "$ctl")|g" \
      "$deploy/systemd/$u" > "$work/units/$u"
done
out=$(cd "$work/units" && systemd-analyze verify --man=no \
        ./snapshot-agent.service ./snapshot-backup.service ./snapshot-backup.timer 2>&1) \
  || echo "systemd-analyze exited non-zero"
echo "$out"
check "systemd-analyze verify reports no problem" test -z "$out"
check "unit runs as a dedicated user with a state directory" \
  grep -q '^User=snapshot-agent' "$deploy/systemd/snapshot-agent.service"
check "unit is hardened" grep -q '^ProtectSystem=strict' "$deploy/systemd/snapshot-agent.service"

check "kubernetes example is valid YAML with a gRPC probe and TLS secret" /usr/bin/python3 - "$deploy/kubernetes/snapshot-agent-sidecar.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sts = next(d for d in docs if d["kind"] == "StatefulSet")
agent = next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "snapshot-agent")
assert agent["readinessProbe"]["grpc"]["port"] == 7152
assert any(v.get("secret", {}).get("secretName") == "snapshot-agent-tls"
           for v in sts["spec"]["template"]["spec"]["volumes"])
assert len(sts["spec"]["template"]["spec"]["containers"]) == 2
PY
check "container recipe uses tools/install-deps.sh on Debian 12" \
  bash -c 'grep -q "^FROM debian:12" "$0" && grep -q "tools/install-deps.sh" "$0"' "$deploy/Containerfile"

"$deploy/make-dev-certs.sh" "$work/certs" localhost 127.0.0.1 >/dev/null
check "server certificate verifies against the CA" \
  openssl verify -CAfile "$work/certs/ca.crt" "$work/certs/server.crt"
check "client certificate verifies against the CA" \
  openssl verify -CAfile "$work/certs/ca.crt" "$work/certs/client.crt"
check "server certificate names 127.0.0.1" \
  bash -c 'openssl x509 -in "$0" -noout -text | grep -q "IP Address:127.0.0.1"' "$work/certs/server.crt"
echo "$fails failed"
[ "$fails" -eq 0 ]
