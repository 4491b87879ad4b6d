#!/usr/bin/env bash
# Runs every test of the project: installs missing Debian packages, then
# `bazel test //...`, then prints "N passed, N failed" counted from Bazel's
# test summary. Extra arguments go to `bazel test` (e.g. a target pattern).
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

# The Nomad interop fixtures come from the project's shared folder: ../shared,
# or the folder named by SNAPSHOT_AGENT_SHARED (WORKSPACE's @shared, which
# fails with a clear message when it is missing).

log=$(mktemp)
trap 'rm -f "$log"' EXIT
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(//...)
bazel test --test_summary=short "${targets[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FLAKY|FAILED TO BUILD)' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # the build itself failed before any test ran
fi
echo "$passed passed, $failed failed"
exit "$rc"
