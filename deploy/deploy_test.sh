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

for u in snapshot-agent.service snapshot-agent-etcd.service snapshot-backup.service snapshot-backup.timer; do
  sed -e "s|/usr/local/bin/snapshot-agent|$(readlink -f "$agent")|" \
      -e "s|/usr/local/bin/snapshotctl|$(readlink -f "$ctl")|g" \
      "$deploy/systemd/$u" > "$work/units/$u"
done
out=$(cd "$work/units" && systemd-analyze verify --man=no \
        ./snapshot-agent.service ./snapshot-agent-etcd.service ./snapshot-backup.service \
        ./snapshot-backup.timer 2>&1 | grep -v "etcd.env" || true)
echo "$out"
check "systemd-analyze verify reports no problem" test -z "$out"
check "unit runs as a dedicated user with a state directory" \
  grep -q '^User=snapshot-agent' "$deploy/systemd/snapshot-agent.service"
check "unit waits for readiness and reloads with SIGHUP" \
  bash -c 'grep -q "^Type=notify" "$0" && grep -q "^ExecReload=/bin/kill -HUP \$MAINPID" "$0"' "$deploy/systemd/snapshot-agent.service"
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

check "every Service publishes not-ready addresses (Ready needs a leader)" /usr/bin/python3 - "$deploy/kubernetes/snapshot-agent-sidecar.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
services = [d for d in docs if d["kind"] == "Service"]
assert len(services) == 4, len(services)
for s in services:
    assert s["spec"].get("publishNotReadyAddresses") is True, s["metadata"]["name"]
PY

check "pods meet Pod Security 'restricted'" /usr/bin/python3 - "$deploy/kubernetes/snapshot-agent-sidecar.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
psc = pod["securityContext"]
assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault"
for c in pod["containers"] + pod["initContainers"]:
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False, c["name"]
    assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
PY

# The init and agent scripts, run as Kubernetes would (paths redirected into
# $work, getent faked): the peer list uses the per-pod Service IPs, is
# rewritten (not appended to) on a re-run, and each pod advertises its own.
/usr/bin/python3 - "$deploy/kubernetes/snapshot-agent-sidecar.yaml" "$work" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
work = sys.argv[2]
init = pod["initContainers"][0]["args"][0].replace("/peers/peers", work + "/peers/peers")
agent = next(c for c in pod["containers"] if c["name"] == "snapshot-agent")["args"][0]
agent = agent.replace("/peers/peers", work + "/peers/peers").replace("exec /usr/local/bin/snapshot-agent", "exec echo")
open(work + "/init.sh", "w").write(init)
open(work + "/agent.sh", "w").write(agent)
PY
mkdir -p "$work/peers" "$work/fakebin"
cat > "$work/fakebin/getent" <<'SH'
#!/bin/sh
case "$2" in app-0-raft) echo "10.96.0.10 $2";; app-1-raft) echo "10.96.0.11 $2";; app-2-raft) echo "10.96.0.12 $2";; esac
SH
chmod +x "$work/fakebin/getent"
PATH="$work/fakebin:$PATH" sh "$work/init.sh"
PATH="$work/fakebin:$PATH" sh "$work/init.sh"
expected_peers="1=10.96.0.10:7151@10.96.0.10:7150,2=10.96.0.11:7151@10.96.0.11:7150,3=10.96.0.12:7151@10.96.0.12:7150"
check "init renders the peer list from Service IPs, idempotently" test "$(cat "$work/peers/peers")" = "$expected_peers"
flags=$(POD_NAME=app-1 sh "$work/agent.sh")
check "pod app-1 is raft id 2 advertising its Service IP" \
  bash -c 'grep -q -- "--raft-id=2 --raft-address=10.96.0.11:7151 --raft-bind=0.0.0.0:7151" <<<"$0"' "$flags"
check "and gets the whole peer list" bash -c 'grep -q -- "--peers=$1" <<<"$0"' "$flags" "$expected_peers"
check "the agent binary accepts every flag the example passes" \
  bash -c '"$0" --helpfull 2>&1 | grep -q -- "-raft_bind"' "$agent"

check "etcd StatefulSet: valid YAML, restricted pods, data dir inside the volume" /usr/bin/python3 - "$deploy/kubernetes/etcd-statefulset.yaml" "$work/etcd-pod.sh" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
svc = next(d for d in docs if d["kind"] == "Service")
assert svc["spec"]["publishNotReadyAddresses"] is True
pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
assert pod["securityContext"]["runAsNonRoot"] is True
c = pod["containers"][0]
assert c["securityContext"]["allowPrivilegeEscalation"] is False
assert c["readinessProbe"]["grpc"]["port"] == 7152
args = c["args"][0]
assert "--data-dir /var/lib/etcd/data" in args and any(m["mountPath"] == "/var/lib/etcd" for m in c["volumeMounts"])
open(sys.argv[2], "w").write(args.replace("exec /usr/local/bin/snapshot-agent", "exec printf '%s\\n'"))
PY
flags=$(POD_NAME=etcd-1 sh "$work/etcd-pod.sh" 2>/dev/null || true)
check "etcd pod etcd-1 runs etcd as member etcd-1 at its own DNS name" \
  bash -c 'grep -q -- "--name etcd-1 .*--initial-advertise-peer-urls https://etcd-1.etcd:2380" <<<"$0"' "$flags"

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
