#!/usr/bin/env bash
# Installs the /retrieve search server's engine into .venv/search (git-ignored), pinned, from PyPI:
# `tantivy` (scripts/search-server/requirements.txt). segflow's embedded search needs none of it
# (its BM25 index is TypeScript); the venv serves scripts/search-server/retrieve_tantivy.py, the
# scale-out path past one machine that README's "Search at scale" describes, and
# test/activity/search/retrieval-server.test.ts, which runs segflow's retrieval client against it.
# Idempotent: a stamp holding the hash of this script and the requirements makes a second run a
# no-op (well under a second).
#   bash scripts/setup-search.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEGFLOW_SEARCH_VENV:-.venv/search}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
REQS=scripts/search-server/requirements.txt

want="$(cat scripts/setup-search.sh "$REQS" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  echo "scripts/setup-search.sh: $VENV is up to date"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQS"
"$VENV/bin/python" -c 'import tantivy' || { echo "scripts/setup-search.sh: tantivy does not import in $VENV" >&2; exit 1; }
echo "$want" > "$stamp"
echo "scripts/setup-search.sh: installed in $(( $(date +%s) - start ))s"
