#!/usr/bin/env bash
# `make install`: runs every install step (make install-steps) and fails if they changed the work
# tree. A fresh clone must stay clean: an install step that rewrites a tracked file (a lock file
# npm "fixes", a generated file) or leaves an unignored one behind shows up here, named, instead of
# as a surprise in the next commit. Compares `git status --porcelain` and the tracked diff before
# and after, so a checkout that was already dirty can still install.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "install: not a git checkout; the clean-tree check is skipped"
  exec make --no-print-directory install-steps
fi
snapshot() { git status --porcelain --untracked-files=all; git diff --no-ext-diff | sha256sum; }
before="$(snapshot)"
make --no-print-directory install-steps
after="$(snapshot)"
if [[ "$before" != "$after" ]]; then
  echo "install: the install steps changed the work tree (git status --porcelain before < / after >):" >&2
  diff <(echo "$before") <(echo "$after") | grep '^[<>]' >&2 || true
  echo "install: an install step must leave a clone as it found it; see which step wrote these files" >&2
  exit 1
fi
echo "install: the work tree is as it was before the install steps (git status --porcelain unchanged)"
