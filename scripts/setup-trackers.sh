#!/usr/bin/env bash
# Installs the experiment trackers' own tools into .venv/trackers (git-ignored), pinned, from PyPI: the
# full `mlflow` package (its tracking server) and `tensorboard` (its event-file reader). Only tests
# use them: test/integration/tracker.test.ts and trainer/tests/test_tracker.py start `mlflow server`
# on a free port with a SQLite backend and a file artifact store in a temp dir, and read TensorBoard
# event files back with tensorboard's EventAccumulator. They live apart from .venv/trainer because
# the server pulls Flask, SQLAlchemy, pandas, scikit-learn … that the trainer, which only needs the
# clients (mlflow-skinny, tensorboardX), must not carry.
# Idempotent: a stamp holding the hash of this script makes a second run a no-op (well under a second).
#   bash scripts/setup-trackers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEGFLOW_TRACKERS_VENV:-.venv/trackers}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
# mlflow 3.18.0 needs mlflow-tracing==3.18.0, which the index does not have yet
PINS=(mlflow==3.17.2 tensorboard==2.21.0)

want="$(sha256sum scripts/setup-trackers.sh | cut -d' ' -f1)"
stamp="$VENV/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/mlflow" ]]; then
  echo "scripts/setup-trackers.sh: $VENV is up to date"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q "${PINS[@]}"
echo "$want" > "$stamp"
echo "scripts/setup-trackers.sh: installed in $(( $(date +%s) - start ))s"
