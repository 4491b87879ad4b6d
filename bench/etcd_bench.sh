#!/usr/bin/env bash
# etcd_bench: the etcd engine end to end, beside the standard tools on the same
# database in the same run.
#
#   bazel run -c opt //bench:etcd_bench -- [SIZE_MIB]        (default 256)
#
# One etcd member, run by a snapshot-agent (supervised mode) on loopback, is
# filled with SIZE_MIB of values (1 MiB each, half random bytes and half
# repetitive text). Then, timed:
#   Take     snapshotctl save (agent + client, archive at the default level)
#   beside   etcdctl snapshot save, then gzip -6 / pigz -p 2 -6 of that file
#   Restore  snapshotctl restore of the archive (verify, etcdctl snapshot
#            restore, stop, swap, start, wait until etcd serves)
#   beside   etcdctl snapshot restore of the same database alone
# Figures are MB/s of database bytes (1 MB = 10^6 bytes) and ratios.
set -euo pipefail
agent="$(readlink -f "$1")"; ctl="$(readlink -f "$2")"; mib="${3:-256}"
work="$(mktemp -d "${TMPDIR:-/tmp}/etcd_bench.XXXXXX")"
trap 'kill $apid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cp=$(port); pp=$(port); ap=$(port)
export ETCDCTL_API=3
etcd_cmd="etcd --name b1 --data-dir $work/etcd --listen-client-urls http://127.0.0.1:$cp --advertise-client-urls http://127.0.0.1:$cp --listen-peer-urls http://127.0.0.1:$pp --initial-advertise-peer-urls http://127.0.0.1:$pp --initial-cluster b1=http://127.0.0.1:$pp --quota-backend-bytes=8589934592 --log-level error --logger zap"
"$agent" --engine=etcd --data-dir="$work/agent" --listen=127.0.0.1:$ap \
  --etcd-endpoint=http://127.0.0.1:$cp --etcd-exec="$etcd_cmd" --etcd-agents=b1=127.0.0.1:$ap \
  --log-level=warning --max-state-bytes=$(( (mib + 64) << 20 )) 2>"$work/agent.log" &
apid=$!
for _ in $(seq 1 100); do etcdctl --endpoints=127.0.0.1:$cp endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
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
etcdctl --endpoints=127.0.0.1:$cp snapshot save "$work/ref.db" >/dev/null
db=$(stat -c %s "$work/ref.db")
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
rate() { echo "scale=1; $db / $1 / 1000000" | bc -l; }
ratio() { echo "scale=2; $2 / $1" | bc -l; }

take=$(t "$ctl" --address=127.0.0.1:$ap save "$work/agent.snap")
ctl_save=$(t etcdctl --endpoints=127.0.0.1:$cp snapshot save "$work/plain.db")
gz=$(t bash -c "gzip -6 -c '$work/plain.db' > '$work/plain.db.gz'")
pz=$(t bash -c "pigz -p 2 -6 -c '$work/plain.db' > '$work/plain.db.pgz'")
restore=$(t "$ctl" --address=127.0.0.1:$ap restore --yes "$work/agent.snap")
ctl_restore=$(t etcdctl snapshot restore "$work/plain.db" --name b1 --data-dir "$work/manual" \
  --initial-cluster b1=http://127.0.0.1:$pp --initial-advertise-peer-urls http://127.0.0.1:$pp)

save_gz=$(echo "$ctl_save + $gz" | bc -l); save_pz=$(echo "$ctl_save + $pz" | bc -l)
printf 'etcd database: %d bytes (%d MiB of values)\n' "$db" "$mib"
printf '  %-52s %8s MB/s\n' "Take: snapshotctl save (agent, default level)" "$(rate $take)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot save" "$(rate $ctl_save)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot save + gzip -6" "$(rate $save_gz)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot save + pigz -p 2 -6" "$(rate $save_pz)"
printf '  %-52s %8s MB/s\n' "Restore: snapshotctl restore (whole cluster)" "$(rate $restore)"
printf '  %-52s %8s MB/s\n' "etcdctl snapshot restore (data dir only)" "$(rate $ctl_restore)"
printf '  %-52s %8s\n' "ratio Take / (etcdctl save + gzip -6)" "$(ratio $take $save_gz)"
printf '  %-52s %8s\n' "ratio Take / (etcdctl save + pigz)" "$(ratio $take $save_pz)"
printf '  %-52s %8s\n' "ratio Restore / etcdctl snapshot restore" "$(ratio $restore $ctl_restore)"
printf '  %-52s %8s / %s / %s bytes\n' "sizes: archive / gzip -6 / pigz" \
  "$(stat -c %s "$work/agent.snap")" "$(stat -c %s "$work/plain.db.gz")" "$(stat -c %s "$work/plain.db.pgz")"
