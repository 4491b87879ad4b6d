#!/usr/bin/env bash
# A real S3 server for tests: Debian's Ceph RADOS Gateway with one monitor and
# one in-memory OSD, everything inside DIR and bound to 127.0.0.1.
#
#   tools/rgw.sh start DIR   starts it (about 2 s), creates a user and the
#                            bucket $RGW_BUCKET (default "backups"), and prints,
#                            one per line, ENDPOINT=http://127.0.0.1:PORT,
#                            ACCESS_KEY=..., SECRET_KEY=..., BUCKET=... (also
#                            written to DIR/env)
#   tools/rgw.sh stop DIR    stops every daemon started in DIR
#
# Ports: RGW_PORT and MON_PORT from the environment, else free ones below the
# kernel's ephemeral range (an RGW port inside it was once taken by a client
# socket). Packages: tools/install-deps.sh (ceph-mon ceph-osd radosgw
# ceph-common uuid-runtime curl). See ../shared/ENVIRONMENT.md for the shape.
set -euo pipefail

cmd=${1:?usage: rgw.sh start|stop DIR}
D=$(realpath -m "${2:?usage: rgw.sh start|stop DIR}")

stop() {
  for p in "$D"/run/*.pid; do
    [ -e "$p" ] || continue
    pid=$(cat "$p" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for p in "$D"/run/*.pid; do
    [ -e "$p" ] || continue
    pid=$(cat "$p" 2>/dev/null || true)
    for _ in $(seq 1 50); do
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -f "$p"
  done
}

free_port() {  # a port in 20000-32000 nobody listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: rgw.sh start|stop DIR" >&2; exit 2; }

for b in ceph-mon ceph-osd radosgw ceph ceph-authtool monmaptool radosgw-admin uuidgen curl; do
  command -v "$b" >/dev/null || { echo "rgw.sh: $b is missing: run tools/install-deps.sh" >&2; exit 3; }
done

mkdir -p "$D"/mon "$D"/osd/ceph-0 "$D"/rgw "$D"/run "$D"/log
MON_PORT=${MON_PORT:-$(free_port)}
MON_PORT_V1=$(free_port)
RGW_PORT=${RGW_PORT:-$(free_port)}
FSID=$(uuidgen)
conf="$D/ceph.conf"
cat > "$conf" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
paxos propose interval = 0.1
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
run dir = $D/run
mon data = $D/mon/\$cluster-\$id
osd data = $D/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-3221225472}
osd max object size = 1073741824

[mon]
keyring = $D/keyring

[client]
keyring = $D/keyring

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
rgw crypt require ssl = false
rgw enable usage log = false
EOF

ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
  --cap mgr 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.rgw --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]" --fsid "$FSID" "$D/monmap" >/dev/null
timeout 60 ceph-mon -c "$conf" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" 2>>"$D/log/setup.log"
ceph-mon -c "$conf" -i a

OSD_UUID=$(uuidgen)
OSD_KEY=$(ceph-authtool --gen-print-key)
echo "{\"cephx_secret\": \"$OSD_KEY\"}" > "$D/osd.json"
timeout 60 ceph -c "$conf" --connect-timeout 20 osd new "$OSD_UUID" -i "$D/osd.json" >/dev/null
ceph-authtool --create-keyring "$D/osd/ceph-0/keyring" --name osd.0 --add-key "$OSD_KEY" >/dev/null
timeout 60 ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$OSD_UUID" 2>>"$D/log/setup.log"
ceph-osd -c "$conf" -i 0 2>>"$D/log/setup.log"
radosgw -c "$conf" -n client.rgw

url="http://127.0.0.1:$RGW_PORT"
for _ in $(seq 1 300); do
  if curl -s -m 2 "$url/" 2>/dev/null | grep -q ListAllMyBucketsResult; then break; fi
  sleep 0.1
done
curl -s -m 2 "$url/" | grep -q ListAllMyBucketsResult || {
  echo "rgw.sh: the gateway did not come up; logs in $D/log" >&2
  stop
  exit 1
}
H=$(head -c 64 /dev/urandom | sha256sum)
ACCESS=${H:0:20}
ACCESS=${ACCESS^^}
SECRET=${H:20:40}
radosgw-admin -c "$conf" -n client.admin user create --uid=test --display-name=test \
  --access-key="$ACCESS" --secret-key="$SECRET" >/dev/null
BUCKET=${RGW_BUCKET:-backups}
# libcurl 7.88 signs this one right when x-amz-content-sha256 is sent.
code=$(curl -s -o "$D/log/bucket.xml" -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
  --user "$ACCESS:$SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$url/$BUCKET")
[ "$code" = 200 ] || { echo "rgw.sh: creating bucket $BUCKET: HTTP $code" >&2; stop; exit 1; }
{
  echo "ENDPOINT=$url"
  echo "ACCESS_KEY=$ACCESS"
  echo "SECRET_KEY=$SECRET"
  echo "BUCKET=$BUCKET"
} | tee "$D/env"
