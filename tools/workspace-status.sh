#!/usr/bin/env bash
# Bazel's --workspace_status_command: the build's git revision, when known,
# for `snapshot-agent --version` and `snapshotctl version` (//base:version).
cd "$(dirname "$0")/.." || exit 0
rev=$(git rev-parse --short=12 HEAD 2>/dev/null) || exit 0
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  rev="$rev-dirty"
fi
echo "STABLE_GIT_REVISION $rev"
