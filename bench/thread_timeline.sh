#!/usr/bin/env bash
# thread_timeline: where a process's CPU time goes, thread by thread, over
# time — the per-thread timelines of docs/restore.md.
#
#   bench/thread_timeline.sh PID SECONDS [BUCKET_MS=100] [OUT=/tmp/thread_timeline.data]
#
# Samples PID's threads with `perf record -e task-clock -F 1000` (one sample
# per millisecond of CPU) for SECONDS, then prints one row per thread name
# (the agent names its threads "sa-...": base/thread_name.h; gRPC's are
# "grpcpp_sync_ser" and "...nexting_thread"): its CPU seconds, and a
# timeline with one character per bucket for how busy it was then
# (" " idle, ".:-=+*#" up to "@" = one core all the bucket). Threads of one
# name are summed, so a row can exceed one core ("@" then).
# Needs perf (Debian: linux-perf) and permission to trace PID.
set -euo pipefail
pid="$1"; secs="$2"; bucket_ms="${3:-100}"; out="${4:-/tmp/thread_timeline.data}"
perf record -q -e task-clock -F 1000 -p "$pid" -o "$out" -- sleep "$secs" >/dev/null 2>&1
perf script -i "$out" -F comm,tid,time 2>/dev/null | /usr/bin/python3 -c '
import collections, sys
bucket = int(sys.argv[1]) / 1000.0
rows = collections.defaultdict(collections.Counter)
t0 = None
for line in sys.stdin:
    parts = line.split()
    if len(parts) < 3: continue
    t = float(parts[-1].rstrip(":"))
    name = " ".join(parts[:-2])
    t0 = t if t0 is None else min(t0, t)
    rows[name][t] += 1
if t0 is None:
    sys.exit("thread_timeline: no samples (idle process, or perf not allowed)")
n = 0
per = {}
for name, ts in rows.items():
    c = collections.Counter()
    for t, k in ts.items():
        c[int((t - t0) / bucket)] += k
    per[name] = c
    n = max(n, max(c) + 1)
shades = " .:-=+*#@"
full = bucket * 1000  # samples in a bucket for one busy core
print("%-16s %7s  timeline, %d ms a character" % ("thread", "CPU s", bucket * 1000))
for name, c in sorted(per.items(), key=lambda kv: -sum(kv[1].values())):
    total = sum(c.values()) / 1000.0
    if total < 0.005: continue
    line = "".join(shades[min(8, int(round(8 * c.get(i, 0) / full)))] if c.get(i, 0) else " "
                   for i in range(n))
    print("%-16s %7.3f  |%s|" % (name[:16], total, line))
' "$bucket_ms"
