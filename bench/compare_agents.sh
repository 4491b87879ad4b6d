#!/usr/bin/env bash
# compare_agents: two builds of the agent side by side on several workloads,
# in one run, interleaved (old, new, old, new...), so that the machine's
# drift hits both alike; e2e_bench measures every row beside its own gzip
# baselines, and this prints the main rows of each pair.
#
#   bazel build -c opt //bench:e2e_bench //server:snapshot-agent
#   bench/compare_agents.sh bazel-bin/bench/e2e_bench OLD_AGENT NEW_AGENT \
#       [SIZE_MIB=128] [NODES=1] [WORKLOADS="65536 spread 1024 32"]
#
# OLD_AGENT is an agent built from another revision (e.g. in a git worktree).
# A workload is e2e_bench's --value_bytes: a value size, or spread (small
# records of 100 B to 16 KiB). The full output of every run goes to
# ${TMPDIR:-/tmp}/compare_agents.PID/.
set -euo pipefail
bench="$(readlink -f "$1")"; old="$(readlink -f "$2")"; new="$(readlink -f "$3")"
size="${4:-128}"; nodes="${5:-1}"; workloads="${6:-65536 spread 1024 32}"
out="${TMPDIR:-/tmp}/compare_agents.$$"
mkdir -p "$out"
rows='gzip -6 \(|gzip -d \(|Restore|Take, level 6|Take, fast|Verify|agent after'
for w in $workloads; do
  for side in old new; do
    agent=$old; [ "$side" = new ] && agent=$new
    echo "=== $w, $side agent ($agent)"
    "$bench" --agent="$agent" --size_mib="$size" --value_bytes="$w" --nodes="$nodes" \
      > "$out/$w.$side.txt" 2>&1 || { echo "FAILED: see $out/$w.$side.txt"; continue; }
    grep -E "$rows" "$out/$w.$side.txt" || true
  done
done
echo "full output: $out"
