#!/usr/bin/env bash
# Installs the trainer's Python environment into .venv/trainer (git-ignored): torch==2.13.0 first and
# on its own (the machine's CPU wheel; resolving it through another package would pull a CUDA build
# of several GB), then the pinned requirements. Idempotent: a stamp holding the hash of this script
# and the requirement files makes a second run a no-op (well under a second).
#   bash trainer/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEGFLOW_TRAINER_VENV:-.venv/trainer}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_PIN="torch==2.13.0"

want="$(cat trainer/setup.sh trainer/requirements.txt trainer/requirements-dev.txt | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  echo "trainer/setup.sh: $VENV is up to date"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/pip" install --disable-pip-version-check -q)
"${pip[@]}" "$TORCH_PIN"
# The constraint keeps torch where it is if any requirement would like another version.
"${pip[@]}" -r trainer/requirements.txt -r trainer/requirements-dev.txt --constraint <(echo "$TORCH_PIN")
echo "$want" > "$stamp"
echo "trainer/setup.sh: installed in $(( $(date +%s) - start ))s"
