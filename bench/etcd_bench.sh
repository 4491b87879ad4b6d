#!/usr/bin/env bash
# etcd_bench: the etcd engine end to end, beside the standard tools on the same
# database in the same run.
#
#   bazel run -c opt //bench:etcd_bench -- [SIZE_MIB [values|objects [MEMBERS]]]
#                                               (256 values, 1 member)
#
# MEMBERS (1 or 3) etcd members, each run by its own snapshot-agent
# (supervised mode) on loopback, are filled with SIZE_MIB of values:
# "values", 1 MiB each, half random bytes and half repetitive text; or
# "objects", Kubernetes-like JSON objects of 1 to 6 KiB (pods: names,
# labels, a random uid and config hash, containers with 5 to 60 environment
# variables), many keys, loaded 128 to a transaction.
# Then, timed:
#   Take     snapshotctl save (agent + client, archive at the default level)
#   beside   etcdctl snapshot save, then gzip -6 / pigz -p 2 -6 of that file
#   Restore  snapshotctl restore of the archive (snapshotctl follows it to the
#            etcd leader's agent), as users run it (with the safety
#            snapshot): the whole cluster (verify, send to the other agents,
#            etcdctl snapshot restore on every member, stop, swap, start,
#            wait until every member serves)
#   beside   etcdctl snapshot restore of the same database alone, once (what
#            each member's machine does in a manual restore)
#   Off-host snapshotctl create, until the agent's scheduled-snapshot path has
#            taken, verified, stored, age-encrypted and uploaded it to a real
#            S3 server (Ceph RGW on loopback, tools/rgw.sh)
#   beside   etcdctl snapshot save + gzip -6 + aws s3 cp of the result
#            (one member only: with three, the agents share one machine's
#            two cores, and the off-host rows are left out)
# Figures are MB/s of database bytes (1 MB = 10^6 bytes) and ratios, and the
# agent's peak RSS.
set -euo pipefail
agent="$(readlink -f "$1")"; ctl="$(readlink -f "$2")"; rgw="$(readlink -f "$3")"; mib="${4:-256}"
mode="${5:-values}"; members="${6:-1}"
case "$mode" in values|objects) ;; *) echo "etcd_bench: the mode is values or objects" >&2; exit 2;; esac
case "$members" in 1|3) ;; *) echo "etcd_bench: MEMBERS is 1 or 3" >&2; exit 2;; esac
work="$(mktemp -d "${TMPDIR:-/tmp}/etcd_bench.XXXXXX")"
s3dir="$(mktemp -d /tmp/sa-rgw.XXXXXX)"  # Ceph's admin sockets need a short path
apids=()
# ETCD_BENCH_LOGS=DIR keeps the agents' logs (their timings) in DIR.
trap 'kill "${apids[@]}" 2>/dev/null; wait 2>/dev/null; [ -n "${ETCD_BENCH_LOGS:-}" ] && cp "$work"/agent*.log "$ETCD_BENCH_LOGS"/; bash "$rgw" stop "$s3dir" >/dev/null 2>&1; rm -rf "$work" "$s3dir"' EXIT
# The S3 server keeps objects in memory (memstore, 3 GiB by default): room for
# the agent's uploads (the on-demand and the safety snapshots) and aws's.
export MEMSTORE_BYTES=$(( (4 * mib + 3072) << 20 ))
bash "$rgw" start "$s3dir" >/dev/null
. "$s3dir/env"
export AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" AWS_DEFAULT_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true
age-keygen -o "$work/key.txt" 2>/dev/null; age-keygen -y "$work/key.txt" > "$work/key.pub"
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export ETCDCTL_API=3
cps=(); pps=(); aps=(); cluster=(); agents=()
for m in $(seq 1 "$members"); do
  cps+=($(port)); pps+=($(port)); aps+=($(port))
  cluster+=("b$m=http://127.0.0.1:${pps[-1]}"); agents+=("b$m=127.0.0.1:${aps[-1]}")
done
cluster=$(IFS=,; echo "${cluster[*]}"); agents=$(IFS=,; echo "${agents[*]}")
cp=${cps[0]}; pp=${pps[0]}; ap=${aps[0]}
# The database is larger than the values (keys, revisions, bbolt pages: ~1.6x for objects).
for m in $(seq 1 "$members"); do
  i=$((m - 1))
  etcd_cmd="etcd --name b$m --data-dir $work/etcd$m --listen-client-urls http://127.0.0.1:${cps[$i]} --advertise-client-urls http://127.0.0.1:${cps[$i]} --listen-peer-urls http://127.0.0.1:${pps[$i]} --initial-advertise-peer-urls http://127.0.0.1:${pps[$i]} --initial-cluster $cluster --quota-backend-bytes=8589934592 --log-level error --logger zap"
  remote=()
  # The off-host rows use the first agent only.
  [ "$m" = 1 ] && remote=(--remote="s3://$BUCKET/etcd" --remote-cluster=bench --s3-endpoint="$ENDPOINT"
    --encrypt-to="$work/key.pub" --remote-interval=1h)
  "$agent" --engine=etcd --data-dir="$work/agent$m" --listen=127.0.0.1:${aps[$i]} \
    --etcd-endpoint=http://127.0.0.1:${cps[$i]} --etcd-exec="$etcd_cmd" --etcd-agents="$agents" \
    "${remote[@]}" --log-level=info --max-state-bytes=$(( (3 * mib + 64) << 20 )) \
    2>"$work/agent$m.log" &
  apids+=($!)
done
apid=${apids[0]}
for _ in $(seq 1 300); do etcdctl --endpoints=127.0.0.1:$cp endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
if [ "$mode" = values ]; then
# Values: 512 KiB random (base64 would be text; raw bytes via a file) + 512 KiB text.
/usr/bin/python3 - "$work/value" <<'PY'
import os, sys
half = 512 * 1024
text = (b'{"user":"alice","role":"admin","note":"repetitive text"} ' * (half // 56 + 1))[:half]
open(sys.argv[1], "wb").write(os.urandom(half) + text)
PY
for i in $(seq 1 "$mib"); do
  etcdctl --endpoints=127.0.0.1:$cp put "bench/$i" < "$work/value" >/dev/null
done
else
# Kubernetes-like objects, 128 puts to an `etcdctl txn` (etcd's --max-txn-ops).
/usr/bin/python3 - "$mib" "127.0.0.1:$cp" <<'PY'
import json, os, random, subprocess, sys, uuid
target, endpoint = int(sys.argv[1]) << 20, sys.argv[2]
rng = random.Random(7)
def pod(i):
    app = f"app-{i % 500}"
    return json.dumps({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": f"{app}-{i}", "namespace": f"ns-{i % 40}",
                     "uid": str(uuid.UUID(bytes=os.urandom(16))), "resourceVersion": str(100000 + i),
                     "labels": {"app": app, "tier": rng.choice(["web", "db", "cache"])},
                     "annotations": {"checksum/config": os.urandom(32).hex()}},
        "spec": {"nodeName": f"node-{i % 64}", "containers": [{
            "name": "main", "image": f"registry.example.com/{app}:v{i % 7}",
            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
            "env": [{"name": f"VAR_{k}", "value": f"value-{(i * k) % 97}"}
                    for k in range(rng.randint(5, 60))]}]},
        "status": {"phase": "Running", "podIP": f"10.{i % 256}.{(i // 256) % 256}.{i % 200}"}},
        separators=(",", ":"))
total, i = 0, 0
while total < target:
    ops = []
    for _ in range(128):
        v = pod(i)
        key = f"/registry/pods/ns-{i % 40}/app-{i % 500}-{i}"
        ops.append(f'put {key} "' + v.replace('"', '\\"') + '"')
        total += len(key) + len(v)
        i += 1
    body = "\n" + "\n".join(ops) + "\n\n\n"
    subprocess.run(["etcdctl", f"--endpoints={endpoint}", "txn"], input=body.encode(),
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, ETCDCTL_API="3"))
print(f"loaded {i} objects, {total} bytes", file=sys.stderr)
PY
fi
etcdctl --endpoints=127.0.0.1:$cp snapshot save "$work/ref.db" >/dev/null
db=$(stat -c %s "$work/ref.db")
# A step that fails is reported and its rows say "failed"; the others go on,
# and the bench exits 1 at the end.
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; touch "$work/failed"; echo 0; return 0; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
rate() { if [ "$(echo "$1 > 0" | bc -l)" = 1 ]; then echo "scale=1; $db / $1 / 1000000" | bc -l; else echo failed; fi; }
plus() { if [ "$(echo "$1 > 0 && $2 > 0" | bc -l)" = 1 ]; then echo "$1 + $2" | bc -l; else echo 0; fi; }
ratio() { if [ "$(echo "$1 > 0 && $2 > 0" | bc -l)" = 1 ]; then echo "scale=2; $2 / $1" | bc -l; else echo failed; fi; }

take=$(t "$ctl" --address=127.0.0.1:$ap save "$work/agent.snap")
fast=$(t "$ctl" --address=127.0.0.1:$ap save --level=fast "$work/agent-fast.snap")
ctl_save=$(t etcdctl --endpoints=127.0.0.1:$cp snapshot save "$work/plain.db")
gz=$(t bash -c "gzip -6 -c '$work/plain.db' > '$work/plain.db.gz'")
pz=$(t bash -c "pigz -p 2 -6 -c '$work/plain.db' > '$work/plain.db.pgz'")
restore=$(t "$ctl" --address=127.0.0.1:$ap restore --yes "$work/agent.snap")
ctl_restore=$(t etcdctl snapshot restore "$work/plain.db" --name b1 --data-dir "$work/manual" \
  --initial-cluster "$cluster" --initial-advertise-peer-urls http://127.0.0.1:$pp)

if [ "$members" = 1 ]; then
  uploaded() { grep -c 'msg="snapshot uploaded"' "$work/agent1.log" || true; }
  before=$(uploaded)
  off_start=$(date +%s.%N)
  "$ctl" --address=127.0.0.1:$ap create >/dev/null
  for _ in $(seq 1 6000); do [ "$(uploaded)" -gt "$before" ] && break; sleep 0.1; done
  [ "$(uploaded)" -gt "$before" ] || { echo "FAILED: no upload; see the agent's log" >&2; tail "$work/agent1.log" >&2; exit 1; }
  off=$(echo "$(date +%s.%N) - $off_start" | bc -l)
  aws_cp=$(t /usr/bin/aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$work/plain.db.gz" "s3://$BUCKET/aws/plain.db.gz")
fi
peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$apid/status)

save_gz=$(plus "$ctl_save" "$gz"); save_pz=$(plus "$ctl_save" "$pz")
printf 'etcd database: %d bytes (%d MiB of %s), %d member(s)\n' "$db" "$mib" "$mode" "$members"
printf '  %-52s %8s MB/s\n' "Take: snapshotctl save (agent, default level)" "$(rate $take)"
printf '  %-52s %8s MB/s\n' "Take: snapshotctl save --level=fast" "$(rate $fast)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot save" "$(rate $ctl_save)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot save + gzip -6" "$(rate $save_gz)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot save + pigz -p 2 -6" "$(rate $save_pz)"
printf '  %-52s %8s MB/s\n' "Restore: snapshotctl restore (whole cluster)" "$(rate $restore)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot restore (data dir only)" "$(rate $ctl_restore)"
if [ "$members" = 1 ]; then
  save_gz_cp=$(plus "$save_gz" "$aws_cp")
  printf '  %-52s %8s MB/s\n' "Off-host: create+verify+store+age+upload (agent)" "$(rate $off)"
  printf '  %-52s %8s MB/s\n' "etcdctl snapshot save + gzip -6 + aws s3 cp" "$(rate $save_gz_cp)"
fi
printf '  %-52s %8s MiB\n' "agent peak RSS (the first agent)" "$peak"
printf '  %-52s %8s\n' "ratio Take / (etcdctl save + gzip -6)" "$(ratio $take $save_gz)"
printf '  %-52s %8s\n' "ratio Take / etcdctl save (time: 1.25 at most)" "$(ratio $ctl_save $take)"
printf '  %-52s %8s\n' "ratio fast Take / etcdctl save (time: 1 at most)" "$(ratio $ctl_save $fast)"
[ "$members" = 1 ] && printf '  %-52s %8s\n' "ratio Off-host / (etcdctl save + gzip + aws s3 cp)" "$(ratio $off $save_gz_cp)"
printf '  %-52s %8s\n' "ratio Take / (etcdctl save + pigz)" "$(ratio $take $save_pz)"
printf '  %-52s %8s\n' "ratio Restore / etcdctl snapshot restore" "$(ratio $restore $ctl_restore)"
printf '  %-52s %8s / %s / %s bytes\n' "sizes: archive / gzip -6 / pigz" \
  "$(stat -c %s "$work/agent.snap")" "$(stat -c %s "$work/plain.db.gz")" "$(stat -c %s "$work/plain.db.pgz")"
if [ -e "$work/failed" ]; then
  echo "etcd_bench: some steps failed (FAILED above)" >&2
  exit 1
fi
